"""The example CI workflow in docs/ stays in step with the command line."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from nbflow.cli import cli

WORKFLOW = Path(__file__).resolve().parent.parent / "docs" / "ci-workflow.yml"


def test_the_example_workflow_uses_commands_and_options_that_exist() -> None:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["pipeline"]["steps"]
    commands = [shlex.split(s["run"]) for s in steps if "run" in s]
    assert ["./scripts/setup"] in commands and (Path(__file__).parent.parent / "scripts" / "setup").is_file()
    used = [c[1:] for c in commands if c[0] == ".venv/bin/nbflow"]
    assert {c[0] for c in used} == {"run", "report"}
    for args in used:
        command = cli.commands[args[0]]
        known = {o for p in command.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
        for arg in args[1:]:
            assert not arg.startswith("-") or arg in known, f"nbflow {args[0]} has no option {arg}"
