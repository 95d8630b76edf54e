"""``%load_ext nbflow``, then ``%nbflow inputs``: a notebook's inputs in its live kernel.

While a notebook is edited, its ``upstream`` is a list of names and it cannot run on its
own. ``%nbflow inputs`` runs, in this kernel, the injected cell a pipeline run would give
it (:func:`nbflow.authoring.inputs.task_inputs`): ``upstream`` as the upstreams' products,
``product``, the ``-p`` parameters and the secrets, read from the environment. The notebook
file is never changed, and no upstream runs unless ``--run-upstream`` asks for it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbflow.authoring.inputs import TaskInputs, find_task, pipeline_folder, task_inputs
from nbflow.errors import NbflowError

USAGE = """\
Usage: %nbflow inputs [TASK] [-p [TASK.]NAME=VALUE ...] [--run-upstream]

  inputs          Run, in this kernel, the injected cell a pipeline run would give this
                  notebook: upstream (the upstreams' products), product, the parameters
                  (-p as in nbflow run) and the secrets (from the environment). The notebook
                  file is not changed, and no upstream runs.
  TASK            The task (default: this notebook, when the kernel can tell which it is).
  -p NAME=VALUE   Set a parameter, as `nbflow run -p` does. Repeatable.
  --run-upstream  First run the upstreams that are not up to date (nbflow run --only), then load.
"""


class _UsageError(Exception):
    """A ``%nbflow`` line nbflow cannot read: the usage is shown."""


@dataclass
class _Line:
    task: str | None = None
    params: list[str] = field(default_factory=list)
    run_upstream: bool = False


def parse_line(line: str) -> _Line:
    """Read ``inputs [TASK] [-p NAME=VALUE ...] [--run-upstream]``."""
    try:
        words = shlex.split(line)
    except ValueError as e:
        raise _UsageError(str(e)) from None
    if not words or words[0] != "inputs":
        raise _UsageError(f"unknown subcommand {words[0]!r}" if words else "")
    parsed = _Line()
    rest = iter(words[1:])
    for word in rest:
        if word in ("-p", "--param"):
            value = next(rest, None)
            if value is None:
                raise _UsageError(f"{word} needs NAME=VALUE")
            parsed.params.append(value)
        elif word.startswith("-p") and len(word) > 2:
            parsed.params.append(word[2:])
        elif word.startswith("--param="):
            parsed.params.append(word.removeprefix("--param="))
        elif word == "--run-upstream":
            parsed.run_upstream = True
        elif word in ("-h", "--help") or word.startswith("-"):
            raise _UsageError("" if word in ("-h", "--help") else f"unknown option {word!r}")
        elif parsed.task is None:
            parsed.task = word
        else:
            raise _UsageError(f"one task only (got {parsed.task!r} and {word!r})")
    return parsed


def current_notebook(user_ns: dict[str, Any], environ: Any = os.environ) -> Path | None:
    """The notebook this kernel runs for, if it can tell: ``JPY_SESSION_NAME`` (Jupyter
    Server's: absolute, or relative to the server's root, which is at or above the kernel's
    working directory), or VS Code's ``__vsc_ipynb_file__``."""
    session = environ.get("JPY_SESSION_NAME")
    if session:
        path = Path(session)
        if path.is_absolute():
            if path.is_file():
                return path
        else:
            here = Path.cwd()
            found = [base / path for base in (here, *here.parents) if (base / path).is_file()]
            beside = [p for p in found if p.parent.resolve() == here.resolve()]
            if beside or found:
                return (beside or found)[0]
    vscode = user_ns.get("__vsc_ipynb_file__")
    if isinstance(vscode, str) and Path(vscode).is_file():
        return Path(vscode)
    return None


def _locate(task: str | None, user_ns: dict[str, Any]) -> tuple[Path, str]:
    """The pipeline folder and the task the magic is about."""
    notebook = current_notebook(user_ns)
    if notebook is not None:
        folder, name = find_task(notebook) if task is None else (pipeline_folder(notebook.parent), task)
        return folder, name
    if task is None:
        raise NbflowError(
            "nbflow cannot tell which notebook this kernel runs (no JPY_SESSION_NAME, no VS Code notebook): "
            "pass the task name, as in %nbflow inputs train"
        )
    return pipeline_folder(Path.cwd()), task


def run_upstreams(inputs: TaskInputs, params: list[str]) -> int:
    """``nbflow run FOLDER --only UP ...`` with this Python, its output streamed here; its exit code.
    Up-to-date upstreams are not run again (a run is incremental)."""
    if not inputs.upstreams:
        return 0
    args = ["run", str(inputs.folder), *(a for up in inputs.upstreams for a in ("--only", up))]
    args += [a for p in params for a in ("-p", p)]
    print(f"nbflow: running the upstreams that are not up to date: nbflow {shlex.join(args)}", flush=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "nbflow", *args],
        cwd=inputs.folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    try:
        assert process.stdout is not None
        for text in process.stdout:
            print(text, end="", flush=True)
        return process.wait()
    except KeyboardInterrupt:  # the kernel was interrupted: so is the run (it records itself interrupted)
        process.send_signal(2)
        process.wait()
        raise
    finally:
        if process.stdout is not None:
            process.stdout.close()


def summary(inputs: TaskInputs, cwd: Path) -> list[str]:
    """What the magic says after loading: the names set, the missing upstreams and what to do."""
    lines = []
    if inputs.code:
        lines.append(f"nbflow: loaded the inputs of {inputs.task!r}: {', '.join(inputs.names)}")
    else:
        lines.append(f"nbflow: a run injects nothing into {inputs.task!r} (no upstream, product or parameter set)")
    for missing in inputs.missing:
        lines.append(f"nbflow: upstream {missing.task!r} is missing: {missing.reason}.")
    if inputs.missing:
        only = " ".join(f"--only {shlex.quote(m.task)}" for m in inputs.missing)
        lines.append(
            f"  Run it with `nbflow run {shlex.quote(str(inputs.folder))} {only}` in a terminal,"
            " or here with `%nbflow inputs --run-upstream`."
        )
    if inputs.unchecked:
        lines.append(f"nbflow: not checked (their upstream's last success vouches): {', '.join(inputs.unchecked)}")
    if cwd.resolve() != inputs.cwd.resolve():
        lines.append(f"nbflow: note: a run starts this notebook in {inputs.cwd}; this kernel is in {cwd}.")
    return lines


def inputs_magic(shell: Any, line: str) -> None:
    """``%nbflow inputs ...``: load a notebook's inputs into this kernel."""
    from nbflow.project.params import parse_assignments

    try:
        parsed = parse_line(line)
    except _UsageError as e:
        print((f"%nbflow: {e}\n\n" if str(e) else "") + USAGE, end="")
        return
    try:
        folder, task = _locate(parsed.task, shell.user_ns)
        overrides = parse_assignments(parsed.params)
        inputs = task_inputs(folder, task, overrides)
        if inputs.language != "python":
            raise NbflowError(f"{inputs.task!r} is a {inputs.language} notebook; %nbflow loads Python inputs only")
        if parsed.run_upstream:
            code = run_upstreams(inputs, parsed.params)
            if code != 0:
                print(
                    f"nbflow: error: running the upstreams of {task!r} failed (nbflow run exited with {code});"
                    f" the inputs were not loaded. See the output above, or `nbflow status {inputs.folder}`.",
                    file=sys.stderr,
                )
                return
            inputs = task_inputs(folder, task, overrides)
        unset = inputs.unset_secrets(os.environ)
        if unset:
            names = "; ".join(f"{p!r} comes from {v}" for p, v in unset)
            raise NbflowError(
                f"secrets not set in this kernel's environment: {names}. Set them where Jupyter starts and restart the kernel"
            )
    except NbflowError as e:
        print(f"nbflow: error: {e}", file=sys.stderr)
        return
    if inputs.code:
        result = shell.run_cell(inputs.code, store_history=False)
        if not result.success:
            print(
                "nbflow: error: the injected cell failed (see above); the inputs may be partly loaded.", file=sys.stderr
            )
            return
    print("\n".join(summary(inputs, Path.cwd())))


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%nbflow`` line magic."""

    def nbflow(line: str) -> None:
        inputs_magic(ipython, line)

    nbflow.__doc__ = USAGE
    ipython.register_magic_function(nbflow, magic_kind="line", magic_name="nbflow")
