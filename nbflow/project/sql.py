"""Read one ``.sql`` file into a :class:`~nbflow.project.specs.TaskSpec`. Pure: text in, spec out.

A SQL task declares in its header comment, one declaration a line, what a notebook
declares in its parameters cell: ``-- upstream = ["validate"]``,
``-- product = "output/x.parquet"``, ``-- min_rows = 10``. Other comment lines are prose;
the header ends at the first line that is not a comment.
"""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

from nbflow.errors import InvalidDeclarationError, MalformedNotebookError
from nbflow.project.notebook import parse_parameters
from nbflow.project.specs import TaskSpec

_SQL_DECLARATION = re.compile(r"^--\s*([A-Za-z_]\w*\s*(?::[^=]*)?=.*)$")


def spec_from_sql(text: str, path: Path, name: str, relpath: str) -> TaskSpec:
    """A SQL task's spec from its text (see the module's docstring for the header).

    Raises
    ------
    MalformedNotebookError
        A declaration is not valid Python.
    InvalidDeclarationError
        A parameter without a literal default, or a product that is not one ``.parquet``
        or ``.csv`` path.
    """
    declarations = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            break
        match = _SQL_DECLARATION.match(stripped)
        if match:
            declarations.append(match.group(1))
    decl = parse_parameters("\n".join(declarations), relpath, 0)
    for key, source in decl.defaults.items():
        try:
            ast.literal_eval(source)
        except (ValueError, SyntaxError):
            raise InvalidDeclarationError(
                relpath, f"parameter {key!r} must have a literal default (got `{source}`)", 0
            ) from None
    if decl.product is not None and not isinstance(decl.product, str):
        raise InvalidDeclarationError(relpath, "a SQL task's 'product' is one path (its query's result)", 0)
    if isinstance(decl.product, str) and not decl.product.endswith((".parquet", ".csv")):
        raise InvalidDeclarationError(relpath, "a SQL task's 'product' must end in .parquet or .csv", 0)
    return TaskSpec(
        name=name,
        path=path,
        relpath=relpath,
        kernel_name="duckdb",
        language="sql",
        params=decl,
        parameters_cell=None,
        source_hash=hashlib.sha256(text.encode()).hexdigest()[:16],
        kind="sql",
    )


def read_sql_spec(path: Path, name: str, relpath: str) -> TaskSpec:
    """Read ``path`` into a SQL task's spec.

    Raises
    ------
    MalformedNotebookError
        The file cannot be read as UTF-8 text, or its header is not valid.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MalformedNotebookError(relpath, f"it cannot be read as text ({e})") from None
    return spec_from_sql(text, path, name, relpath)
