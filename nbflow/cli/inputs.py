"""``nbflow inputs``: the injected cell a run would give a notebook now. Runs and writes nothing."""

from __future__ import annotations

import click

from nbflow.cli.options import handle_errors, json_option, print_json


@click.command()
@click.argument("task")
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="[TASK.]NAME=VALUE",
    help="Set a parameter, as nbflow run does. Repeatable.",
)
@json_option("Print the inputs as JSON: parameters, code, upstreams, missing upstreams.")
@handle_errors
def inputs(task: str, path: str, params: tuple[str, ...], as_json: bool) -> None:
    """Print the injected cell a run would give notebook TASK of the pipeline in PATH.

    The code sets upstream (the upstreams' products), product, the parameters and the
    secrets (read from the environment, never written); paste it into the notebook's
    kernel, or use %nbflow inputs there. Upstreams that have not produced their products
    are named on stderr. Nothing runs and nothing is written.
    """
    import shlex
    from pathlib import Path

    from nbflow.authoring.inputs import task_inputs
    from nbflow.project.params import parse_assignments

    found = task_inputs(Path(path), task, parse_assignments(params))
    if as_json:
        print_json(found.to_json())
        return
    click.echo(found.code, nl=not found.code.endswith("\n") and bool(found.code))
    for missing in found.missing:
        click.echo(f"nbflow: upstream {missing.task!r} is missing: {missing.reason}.", err=True)
    if found.missing:
        only = " ".join(f"--only {shlex.quote(m.task)}" for m in found.missing)
        click.echo(f"  Run it first: nbflow run {shlex.quote(path)} {only}", err=True)
    if found.unchecked:
        click.echo(
            f"nbflow: not checked (their upstream's last success vouches): {', '.join(found.unchecked)}", err=True
        )


COMMANDS: list[click.Command] = [inputs]
