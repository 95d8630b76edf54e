"""``nbflow debug``: a failed attempt made ready to reproduce, in JupyterLab or a console."""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import click

from nbflow.cli.options import handle_errors, json_option, path_argument, print_json, run_id_option


@click.command()
@click.argument("task")
@path_argument
@run_id_option("The run whose failed attempt to debug (default: the latest run where TASK failed).")
@json_option("Print the debug notebook's path, failing cell and cells to run as JSON.")
@click.option(
    "--console",
    is_flag=True,
    help="Start the task's kernel, run the cells before the failing one and attach a console "
    "(or print how to attach one); the kernel stops with Ctrl-C.",
)
@handle_errors
def debug(task: str, path: str, run_id: str | None, as_json: bool, console: bool) -> None:
    """Reproduce TASK's latest failed attempt, so you land at its error with its state alive.

    Writes a debug notebook (_nbflow/debug/RUN_ID/TASK.ipynb) from the attempt's executed
    notebook: the same injected values and working directory, the cells before the failing
    one cleared and ready to run, the failing cell's traceback kept.
    """
    from nbflow.authoring.debug import prepare_debug

    if as_json and console:
        raise click.UsageError("--json and --console do not go together")
    found = prepare_debug(Path(path), task, run_id)
    if as_json:
        print_json(found.to_json())
        return
    _describe(found)
    if console:
        _console(found)
    else:
        click.echo(f"open it: jupyter lab {shlex.quote(str(found.path))}")
        click.echo(
            "  In JupyterLab, the nbflow panel's Debug button runs the cells before the failing one "
            "(or select the failing cell and run the cells above it)."
        )
        click.echo(f"or, from a terminal: nbflow debug {shlex.quote(task)} {shlex.quote(path)} --console")


def _describe(found: Any) -> None:
    click.echo(f"debug notebook of {found.task} (run {found.run_id}, attempt {found.attempt}): {found.path}")
    error = f": {found.error}" if found.error else ""
    click.echo(f"it fails in cell {found.failed_cell + 1} (index {found.failed_cell}){error}")
    click.echo(f"{len(found.run_cells)} cells to run before it (the first sets the working directory {found.cwd})")


def _console(found: Any) -> None:
    """Bring a kernel to the failure; attach a console, or keep it until Ctrl-C or SIGTERM."""
    import importlib.util
    import subprocess
    import threading

    from nbflow.authoring.debug_kernel import DebugKernel

    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM as Ctrl-C: the kernel is shut down either way
    try:
        with DebugKernel(found) as kernel:
            click.echo(f"kernel {found.kernel_name} started; running {len(found.run_cells)} cells", err=True)
            failure = kernel.run_cells()
            if failure is not None:
                click.echo(f"cell {failure.index} raised {failure.ename}: {failure.evalue}", err=True)
                if failure.traceback:
                    click.echo(click.unstyle("\n".join(failure.traceback)), err=True)
                if not kernel.alive():
                    raise click.exceptions.Exit(1)
            else:
                click.echo("the kernel is where the attempt stood before its failing cell", err=True)
            attach = ["jupyter", "console", "--existing", kernel.connection_file]
            if sys.stdin.isatty() and importlib.util.find_spec("jupyter_console") is not None:
                subprocess.run([sys.executable, "-m", "jupyter_console", *attach[2:]], check=False)
            else:
                click.echo(f"connection file: {kernel.connection_file}")
                click.echo(f"attach: {shlex.join(attach)}")
                click.echo(f"    or: jupyter qtconsole --existing {shlex.quote(kernel.connection_file)}")
                click.echo("the kernel runs until Ctrl-C (or SIGTERM)")
                for sig in previous:
                    signal.signal(sig, lambda *_: stop.set())
                kernel.wait(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("kernel shut down", err=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


COMMANDS: list[click.Command] = [debug]
