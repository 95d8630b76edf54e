"""What the commands share: options declared once, the error-to-exit-code mapping, JSON output.

Imports only click and the standard library at module level, so that every command's
module can be loaded for ``nbflow --help`` (and ``nbflow status``) at no cost.
"""

from __future__ import annotations

import errno
import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: the help of ``--workers`` on the commands that run a pipeline once
WORKERS_HELP = "Tasks run at once (default: CPU count)."
#: the help of ``--json`` on the commands that run a pipeline
RUN_JSON_HELP = "Print the run's final status as JSON on stdout."
#: the help of ``--run`` on the commands that look at a recorded run
RUN_ID_HELP = "A run id (default: the latest run)."

#: ``[PATH]``: the pipeline folder, by default the current one
path_argument = click.argument("path", default=".", type=click.Path(file_okay=False))


def fail(message: str, code: int = 2) -> None:
    """Say ``nbflow: error: message`` on stderr and exit with ``code``."""
    click.echo(f"nbflow: error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """An NbflowError becomes its message on stderr and its exit code (2, or 1 for a full
    disk); Ctrl-C before a run started is 130; no traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from nbflow.errors import NbflowError

        try:
            return func(*args, **kwargs)
        except NbflowError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:  # before a run started (a run handles its own)
            fail("interrupted", 130)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            fail(
                f"the disk is full: {e.filename or ''} could not be written ({e.strerror}). Free some space and try again.",
                1,
            )

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def workers_option(help: str = WORKERS_HELP) -> Callable[[F], F]:
    """``--workers/-w N``: tasks run at once."""
    return click.option("--workers", "-w", type=click.IntRange(min=1), default=None, help=help)


def json_option(help: str) -> Callable[[F], F]:
    """``--json``: JSON on stdout instead of text (``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def run_id_option(help: str = RUN_ID_HELP) -> Callable[[F], F]:
    """``--run RUN_ID`` (``run_id``), by default the latest run."""
    return click.option("--run", "run_id", default=None, help=help)


#: ``--progress/--no-progress``: a live table or plain lines on stderr
progress_option = click.option(
    "--progress/--no-progress", default=None, help="Live table (default on a terminal) or plain lines."
)


def executor_options(func: F) -> F:
    """``--executor``, ``--scheduler`` and ``--worker-root``: where the tasks execute."""
    func = click.option(
        "--worker-root",
        default=None,
        metavar="PATH",
        help="Where Dask workers see the pipeline folder, if not at the same path (a shared filesystem).",
    )(func)
    func = click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="A running Dask scheduler (tcp://HOST:PORT); implies --executor dask.",
    )(func)
    func = click.option(
        "--executor",
        "executor_kind",
        type=click.Choice(["local", "dask"]),
        default=None,
        help="local: kernels on this machine. dask: every task on a Dask worker (a LocalCluster of "
        "--workers processes, or the cluster at --scheduler). Default: the project's executor setting, else local.",
    )(func)
    return func
