"""``nbflow scheduler``: start runs of pipelines on their schedules."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from nbflow.cli.options import handle_errors


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(file_okay=False, exists=True))
@handle_errors
def scheduler(paths: tuple[str, ...]) -> None:
    """Start runs of the pipelines in PATHS on their schedules, until SIGTERM or Ctrl-C.

    Each pipeline's schedule is its settings' `schedule` (a cron line or @daily/@hourly/...).
    """
    from nbflow.integrations.cron import CronScheduler, logger, wait_forever_with_sigterm

    logger.setLevel(logging.INFO)  # what it starts and stops, a line at a time on stderr
    wait_forever_with_sigterm(CronScheduler([Path(p) for p in (paths or (".",))]))


COMMANDS = (scheduler,)
