"""The ``nbflow`` command line. Parses arguments and prints; the work is in the layers below.

Exit codes: 0 all tasks succeeded, 1 a task failed, 2 the pipeline or the command is
invalid, 130 the run was interrupted.

The commands live in modules of their own (:mod:`.run`, :mod:`.inspect`, :mod:`.schedule`,
:mod:`.export`), their shared options and the error-to-exit-code mapping in :mod:`.options`;
this module holds the group, the entry point and where nbflow's log records go (stderr).
"""

from __future__ import annotations

import logging
import sys

import click

from nbflow import __version__
from nbflow.cli import debug, export, inputs, inspect, run, schedule

#: optional modules that cost seconds to import and that nbflow's own process never needs
SKIPPED_IMPORTS = (
    # jsonschema (imported by nbformat) builds an Earley parser for IRIs at import time when
    # rfc3987-syntax is installed, as JupyterLab's dependencies install it: ~1 s per `nbflow run`
    "rfc3987_syntax",
)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """nbflow's log records as plain lines on the current ``sys.stderr``, looked up at each
    record (click's test runner swaps it), as Python's own last-resort handler does."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> object:  # type: ignore[override]
        return sys.stderr


def log_to_stderr() -> None:
    """Send the records of the ``nbflow`` loggers (warnings, and the scheduler's INFO lines
    when it asks for them) to stderr as their bare message, once per process."""
    logger = logging.getLogger("nbflow")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nbflow")
def cli() -> None:
    """nbflow: run a folder of notebooks as a DAG, recorded in DuckDB."""
    log_to_stderr()


for _module in (run, inspect, schedule, export, inputs, debug):
    for _command in _module.COMMANDS:
        cli.add_command(_command)

__all__ = ["SKIPPED_IMPORTS", "cli", "log_to_stderr", "main"]


def main() -> None:
    from nbflow.kinds.notebook import lean

    for name in SKIPPED_IMPORTS:  # the command's own process only: never done to a user's kernel
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "import" raises ImportError
    lean.install()  # papermill without the storage clients it would import for nothing
    cli(prog_name="nbflow")


if __name__ == "__main__":
    main()
