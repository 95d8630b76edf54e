"""Parameter values: typed from the command line, data (never code) in the notebook."""

from __future__ import annotations

import pytest

from nbflow.project.params import Overrides, parse_assignments, parse_value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("0.5", 0.5),
        ("true", True),
        ("null", None),
        ("[1, 2]", [1, 2]),
        ('{"a": 1}', {"a": 1}),
        ("{a: [x, 2]}", {"a": ["x", 2]}),
        ("hello world", "hello world"),
        ("2026-01-01", "2026-01-01"),  # YAML would make a date: keep the text
        ("", ""),
        ("'quoted'", "quoted"),
        ("a: b: c", "a: b: c"),  # not valid YAML: kept as text
        ("nan", "nan"),
        ("1e-3", 0.001),
        ('{"a": 1e3}', {"a": 1000.0}),
        ("3.", 3.0),
        ("no", "no"),
        ("yes", "yes"),
        ("off", "off"),
        ("False", False),
        ("0x1f", 31),
        ('x"; import os; os.system("echo pwned"); y="', 'x"; import os; os.system("echo pwned"); y="'),
    ],
)
def test_parse_value(text: str, value: object) -> None:
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


def test_assignments_split_on_the_first_equals() -> None:
    assert parse_assignments(["query=a=b", "train.lr=0.1"]) == {"query": "a=b", "train.lr": 0.1}


def test_task_specific_overrides_win() -> None:
    overrides = Overrides.from_mapping({"lr": 1, "etl/train.lr": 2, "etl.v2/x.n": 3})
    assert overrides.everywhere == {"lr": 1}
    assert overrides.per_task == {"etl/train": {"lr": 2}, "etl.v2/x": {"n": 3}}
    assert overrides.as_dict() == {"lr": 1, "etl/train.lr": 2, "etl.v2/x.n": 3}
