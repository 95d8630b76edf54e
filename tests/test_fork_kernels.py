"""Kernels forked from the kernel template (``kernel_start = "fork"``, the default).

Each task still gets a new kernel process; these tests check that it sees what a fresh
kernel sees (its own pid, folder, environment, ``sys.argv``/``sys.path``, random numbers),
that the executed notebook is the same, that secrets stay in their own kernel, that a
template that dies takes its kernels with it, and the fall-backs: other kernelspecs, and
``preload`` modules that cannot be forked (refused, exit 2). Timeouts, kernel death,
Ctrl-C, SIGTERM and SIGKILL of the runner with resume run with forked kernels in
``test_faults.py``, ``test_processes.py`` and ``test_operations.py`` (it is the default).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from nbflow.errors import KernelTemplateError
from nbflow.execution.base import KernelStart
from nbflow.execution.fork import KernelTemplate, split_command
from nbflow.execution.kernels import KernelLauncher
from nbflow.executors.local import LocalExecutor
from nbflow.pipeline import Pipeline
from tests.conftest import live_kernels, nbflow_process, write_notebook

#: a cell that records what the kernel sees of itself, in ``<task>.json`` beside the notebook
PROBE = """
import json, os, random, sys, pathlib
import numpy, psutil
import helper
parent = psutil.Process(os.getppid())
pathlib.Path(f"{name}.json").write_text(json.dumps({
    "pid": os.getpid(),
    "ppid": os.getppid(),
    "parent_name": parent.name(),
    "grandparent": parent.ppid(),
    "cwd": os.getcwd(),
    "argv": sys.argv,
    "path": sys.path,
    "env": sorted(os.environ),
    "random": random.random(),
    "numpy": float(numpy.random.random()),
    "helper": helper.VALUE,
    "main": sys.modules["__main__"].__name__,
}))
"""


def _probe_pipeline(root: Path, names: tuple[str, ...] = ("a", "b"), settings: str = "") -> Path:
    folder = root / "steps"
    folder.mkdir(parents=True)
    (folder / "helper.py").write_text("VALUE = 'from the notebook folder'\n")
    (root / "nbflow.toml").write_text(settings)
    for name in names:
        write_notebook(folder, name, f"upstream = None\nname = {name!r}", PROBE)
    return folder


def _seen(folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}.json").read_text())


@pytest.mark.slow
def test_each_forked_kernel_is_a_new_process_that_sees_what_a_fresh_one_sees(tmp_path: Path) -> None:
    forked_dir = _probe_pipeline(tmp_path / "forked", settings='preload = ["numpy"]\n')
    fresh_dir = _probe_pipeline(tmp_path / "fresh", names=("a",), settings='kernel_start = "fresh"\n')
    assert set(Pipeline.from_dir(tmp_path / "forked").run(workers=2).states.values()) == {"success"}
    assert set(Pipeline.from_dir(tmp_path / "fresh").run(workers=1).states.values()) == {"success"}
    a, b, fresh = _seen(forked_dir, "a"), _seen(forked_dir, "b"), _seen(fresh_dir, "a")

    # forked: a child of the template, itself a child of this runner; a fresh kernel is our child
    assert a["parent_name"] == b["parent_name"] == "nbflow-template"
    assert a["grandparent"] == b["grandparent"] == os.getpid()
    assert fresh["ppid"] == os.getpid() and fresh["parent_name"] != "nbflow-template"
    assert len({a["pid"], b["pid"], a["ppid"], os.getpid()}) == 4, "each kernel is a process of its own"

    # what a fresh kernel sees, in its own folder
    for seen, folder in ((a, forked_dir), (b, forked_dir), (fresh, fresh_dir)):
        assert seen["cwd"] == str(folder)
        assert seen["helper"] == "from the notebook folder", "the notebook's folder is importable"
        assert Path(seen["argv"][0]).name == "ipykernel_launcher.py" and seen["argv"][1] == "-f"
        assert seen["main"] == "__main__"
    assert a["path"] == fresh["path"], "sys.path as a fresh kernel has it"
    assert a["argv"][3:] == fresh["argv"][3:] and a["argv"][0] == fresh["argv"][0]
    assert a["argv"][2] != b["argv"][2], "each kernel has its own connection file"
    assert set(a["env"]) ^ set(fresh["env"]) == set(), "the same environment variables as a fresh kernel"

    # random generators are seeded per kernel, NumPy's (preloaded in the template) included
    assert a["random"] != b["random"]
    assert a["numpy"] != b["numpy"]


def _timeless(path: Path) -> dict:
    """An executed notebook without what differs from one execution to the next (times, paths,
    the random id papermill gives the cell it injects)."""
    nb = nbformat.read(path, as_version=4)
    for key in ("start_time", "end_time", "duration", "input_path", "output_path"):
        nb.metadata.papermill.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.pop("id")
        for key in ("start_time", "end_time", "duration"):
            cell.metadata.get("papermill", {}).pop(key, None)
    return dict(nb)


@pytest.mark.slow
def test_an_executed_notebook_is_the_same_forked_or_fresh(tmp_path: Path) -> None:
    write_notebook(
        tmp_path,
        "report",
        "upstream = None\nn = 3",
        "print('n is', n)\nimport sys; print('to stderr', file=sys.stderr)",
        "from IPython.display import HTML, Markdown, display\ndisplay(HTML('<b>bold</b>'), Markdown('*md*'))\n{'k': [1, 2]}",
        "import os\nsorted(p for p in os.listdir('.') if p.endswith('.ipynb'))",
        "def f(x):\n    return x * n\n[f(i) for i in range(4)]",
    )
    pipeline = Pipeline.from_dir(tmp_path)
    forked = pipeline.run(params={"n": 4}, kernel_start="fork")
    fresh = pipeline.run(params={"n": 4}, kernel_start="fresh", force=True)
    notebooks = [Path(r.tasks["report"].output_notebook) for r in (forked, fresh)]
    assert notebooks[0] != notebooks[1]
    assert _timeless(notebooks[0]) == _timeless(notebooks[1])


@pytest.mark.slow
def test_a_secret_reaches_only_its_own_forked_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nbflow.toml").write_text('[secrets]\ntoken = "FORK_TEST_TOKEN"\n')
    record = (
        "import json, os, psutil\n"
        "parent = psutil.Process(os.getppid())\n"
        "open(f'{me}.json', 'w').write(json.dumps({'has': 'NBFLOW_SECRET_TOKEN' in os.environ,"
        " 'parent': parent.name(), 'template_env': sorted(parent.environ())}))"
    )
    write_notebook(tmp_path, "uses", "upstream = None\ntoken = None\nme = 'uses'", "assert len(token) == 11", record)
    write_notebook(tmp_path, "other", "upstream = None\nme = 'other'", record)
    monkeypatch.setenv("FORK_TEST_TOKEN", "eleven-char")
    assert Pipeline.from_dir(tmp_path).run(workers=2).states == {"uses": "success", "other": "success"}
    uses, other = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("uses", "other"))
    assert uses["parent"] == other["parent"] == "nbflow-template"
    assert uses["has"] and not other["has"]
    assert "NBFLOW_SECRET_TOKEN" not in uses["template_env"], "the template never holds a task's secret"


THREADED = "import threading\nthreading.Thread(target=threading.Event().wait, name='ticker', daemon=True).start()\n"


def _run_with_path(root: Path, modules: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(modules)}
    return subprocess.run(
        [sys.executable, "-m", "nbflow", "run", str(root), "--no-progress", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _preloading(tmp_path: Path, module: str, source: str, preload: list[str], cell: str) -> tuple[Path, Path]:
    """A pipeline folder whose settings preload ``module`` (written to a folder of modules
    that goes on the runner's PYTHONPATH), with one notebook running ``cell``."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / f"{module}.py").write_text(source)
    root = tmp_path / "pipe"
    root.mkdir()
    (root / "nbflow.toml").write_text(f"preload = {json.dumps(preload)}\n")
    write_notebook(root, "task", "upstream = None", cell)
    return root, modules


@pytest.mark.slow
def test_a_preload_module_that_starts_a_thread_is_refused_before_anything_runs(tmp_path: Path) -> None:
    cell = "open('ran.txt', 'w').write('ran')"
    root, modules = _preloading(tmp_path, "threaded_at_import", THREADED, ["json", "threaded_at_import"], cell)

    refused = _run_with_path(root, modules)
    assert refused.returncode == 2, refused.stderr
    assert "preload module 'threaded_at_import' started 1 thread(s) at import (ticker)" in refused.stderr
    assert "Take it out of `preload`" in refused.stderr and 'kernel_start = "fresh"' in refused.stderr
    assert not (root / "ran.txt").exists()

    # the same settings with fresh kernels: preload means nothing, the task runs
    fresh = _run_with_path(root, modules, "--kernel-start", "fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert (root / "ran.txt").read_text() == "ran"


@pytest.mark.slow
def test_a_preload_module_that_cannot_be_imported_is_named(tmp_path: Path) -> None:
    (tmp_path / "nbflow.toml").write_text('preload = ["no_such_module_here"]\n')
    write_notebook(tmp_path, "task", "upstream = None")
    proc = nbflow_process("run", str(tmp_path), "--no-progress")
    assert proc.returncode == 2
    assert "preload module 'no_such_module_here' could not be imported: ModuleNotFoundError" in proc.stderr


def test_bad_kernel_start_settings_are_named(tmp_path: Path) -> None:
    write_notebook(tmp_path, "task", "upstream = None")
    (tmp_path / "nbflow.toml").write_text('kernel_start = "zygote"\n')
    proc = nbflow_process("dag", str(tmp_path))
    assert proc.returncode == 2
    assert """nbflow.toml: setting 'kernel_start' must be "fork" or "fresh" (got 'zygote')""" in proc.stderr
    (tmp_path / "nbflow.toml").write_text('preload = "numpy"\n')
    proc = nbflow_process("dag", str(tmp_path))
    assert proc.returncode == 2 and "setting 'preload' must be a list of module names" in proc.stderr


def test_only_this_pythons_ipykernel_is_forked() -> None:
    env = dict(os.environ)
    python = sys.executable
    assert split_command([python, "-m", "ipykernel_launcher", "-f", "c.json"], env, python) == ((), ["-f", "c.json"])
    assert split_command([python, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "c"], env, python) == (
        ("-Xfrozen_modules=off",),
        ["-f", "c"],
    )
    assert split_command([python, "-X", "utf8", "-m", "ipykernel_launcher"], env, python) == (("-X", "utf8"), [])
    assert "another program" in str(split_command(["R", "--slave", "-e", "IRkernel::main()"], env, python))
    assert "another program" in str(split_command(["/usr/bin/python3-other", "-m", "ipykernel_launcher"], env, python))
    assert "not start ipykernel_launcher" in str(split_command([python, "-m", "other_kernel", "-f", "c"], env, python))
    assert "runs '-c'" in str(split_command([python, "-c", "pass"], env, python))
    seeded = {**env, "PYTHONHASHSEED": "7" if env.get("PYTHONHASHSEED") != "7" else "8"}
    assert "PYTHONHASHSEED" in str(split_command([python, "-m", "ipykernel_launcher"], seeded, python))


@pytest.mark.slow
def test_kernels_the_template_cannot_make_start_fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "kernels" / "seeded"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "seeded",
                "language": "python",
                "env": {"PYTHONHASHSEED": "7"},
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    write_notebook(
        tmp_path,
        "seeded",
        "upstream = None",
        "import os\nopen('seeded.txt', 'w').write(f'{os.getppid()} {os.environ[\"PYTHONHASHSEED\"]} {hash(\"nbflow\")}')",
        kernel="seeded",
    )
    executor = LocalExecutor(workers=1, kernel_start=KernelStart("fork"))
    try:
        assert Pipeline.from_dir(tmp_path).run(executor=executor).states == {"seeded": "success"}
        counts = executor._launcher.counts
    finally:
        executor.close()
    seeded = subprocess.run(
        [sys.executable, "-c", "print(hash('nbflow'))"], env={**os.environ, "PYTHONHASHSEED": "7"}, capture_output=True
    )
    expected = f"{os.getpid()} 7 {int(seeded.stdout)}"
    assert (tmp_path / "seeded.txt").read_text() == expected, "a fresh interpreter, seeded as asked"
    assert counts["fresh"] == 1 and counts["forked"] == 0


@pytest.mark.slow
def test_kernels_started_ahead_of_time_are_forked_too(tmp_path: Path) -> None:
    write_notebook(tmp_path, "n0", "upstream = None", "x = 1")
    for i in range(1, 4):
        write_notebook(tmp_path, f"n{i}", f"upstream = ['n{i - 1}']", "import time; time.sleep(0.3)")
    executor = LocalExecutor(workers=1, warm_kernels=2, kernel_start=KernelStart("fork"))
    try:
        result = Pipeline.from_dir(tmp_path).run(executor=executor)
        counts = executor._launcher.counts
    finally:
        executor.close()
    assert set(result.states.values()) == {"success"}
    assert counts["warm"] >= 2, counts
    assert counts["forked"] == counts["ahead"] + counts["on demand"] and counts["fresh"] == 0, counts
    assert live_kernels() == []
    assert not [p for p in psutil.Process().children(recursive=True) if p.name() == "nbflow-template"]


@pytest.mark.slow
def test_a_template_that_dies_takes_its_kernels_and_the_retry_forks_from_a_new_one(tmp_path: Path) -> None:
    (tmp_path / "nbflow.toml").write_text("[tasks.slow]\nretries = 1\nretry_delay = 0\n")
    write_notebook(
        tmp_path,
        "slow",
        "upstream = None",
        "import os, pathlib, psutil\n"
        "me = f'{os.getpid()} {os.getppid()} {psutil.Process(os.getppid()).name()}'\n"
        "if not pathlib.Path('first.txt').exists():\n"
        "    pathlib.Path('first.txt').write_text(me)\n"
        "    import time; time.sleep(120)\n"
        "pathlib.Path('second.txt').write_text(me)",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbflow", "run", str(tmp_path), "--no-progress", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    first = tmp_path / "first.txt"
    deadline = time.monotonic() + 120
    while not (first.exists() and first.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    kernel, template, name = first.read_text().split()
    assert name == "nbflow-template"
    os.kill(int(template), signal.SIGKILL)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert not psutil.pid_exists(int(kernel)) or psutil.Process(int(kernel)).status() == psutil.STATUS_ZOMBIE
    report = json.loads(out)
    assert report["tasks"]["slow"]["attempts"] == 2
    _, new_template, new_name = (tmp_path / "second.txt").read_text().split()
    assert new_name == "nbflow-template" and new_template != template


@pytest.mark.slow
def test_the_r_kernel_starts_fresh_beside_forked_python_kernels(tmp_path: Path) -> None:
    if not Path("/usr/share/jupyter/kernels/ir").exists() and not os.environ.get("NBFLOW_SETUP_R"):
        pytest.skip("no R kernel here (NBFLOW_SETUP_R=1 scripts/setup installs it)")
    launcher = KernelLauncher(2, 0, KernelStart("fork"))
    try:
        started = []
        for name in ("ir", "python3"):
            km, client = launcher.start(name, str(tmp_path), tmp_path / f"{name}.log")
            started.append((km, client))
        counts = dict(launcher.counts)
        fresh_because = started[0][0].provisioner.fresh_because
    finally:
        for km, client in started:
            client.stop_channels()
            launcher.shutdown(km)
        launcher.close()
    assert counts == {"on demand": 2, "fresh": 1, "forked": 1}
    assert "another program" in fresh_because


@pytest.mark.slow
def test_a_template_that_cannot_start_is_not_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    template = KernelTemplate(options=["-c", "import sys; print('broken interpreter', file=sys.stderr); sys.exit(3)"])
    with pytest.raises(KernelTemplateError, match="the kernel template did not start: broken interpreter") as first:
        template.start()
    assert not first.value.refused, "not the settings' fault: kernels start fresh instead"
    assert "notebook kernels start fresh instead" in caplog.text
    with pytest.raises(KernelTemplateError, match="broken interpreter"):
        template.start()
    template.close()


LEAN = """
import sys
from nbflow.kinds.notebook import lean
{install}
import nbflow.kinds.notebook.papermill
loaded = [m for m in ("boto3", "pyarrow", "numpy") if m in sys.modules]
import boto3, pyarrow  # still importable afterwards
print(",".join(loaded) or "none")
"""


@pytest.mark.slow
def test_the_nbflow_command_loads_papermill_without_storage_clients_it_never_uses() -> None:
    pytest.importorskip("boto3")
    pytest.importorskip("pyarrow")

    def loaded(install: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", LEAN.format(install=install)], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert loaded("lean.install()") == "none"
    # a process of the user's (the Python API in a kernel) gets papermill as it is, S3 handler and all
    assert loaded("") == "boto3,pyarrow,numpy"


#: a thread the threading module does not know (as a C library's would be)
RAW_THREAD = "import _thread, time\n_thread.start_new_thread(time.sleep, (3600,))\nVALUE = 'raw'\n"


@pytest.mark.slow
def test_a_preload_module_with_unknown_native_threads_is_left_out_and_kernels_still_fork(tmp_path: Path) -> None:
    cell = (
        "import os, psutil, raw_thread_at_import\n"
        "open('seen.txt', 'w').write(psutil.Process(os.getppid()).name() + ' ' + raw_thread_at_import.VALUE)"
    )
    root, modules = _preloading(tmp_path, "raw_thread_at_import", RAW_THREAD, ["raw_thread_at_import", "json"], cell)
    proc = _run_with_path(root, modules)
    assert proc.returncode == 0, proc.stderr
    assert (
        "preload module 'raw_thread_at_import' started 1 native thread(s) at import, and it is not known to stop "
        "them around a fork: it is not preloaded (the notebooks import it themselves)"
    ) in proc.stderr
    assert (root / "seen.txt").read_text() == "nbflow-template raw", "forked, and the module imported by the notebook"
