"""Reading one notebook's declarations without running it."""

from __future__ import annotations

import pytest

from nbflow.errors import InvalidDeclarationError, MalformedNotebookError
from nbflow.project.notebook import parse_parameters, read_notebook_spec
from tests.conftest import write_notebook


@pytest.mark.parametrize(
    ("source", "upstream", "declared"),
    [
        ("upstream = ['a', 'b']", ("a", "b"), True),
        ("upstream = ('a',)", ("a",), True),
        ("upstream = None", (), True),
        ("upstream = 'a'", ("a",), True),
        ("x = 1", (), False),
        ("upstream: list = ['a']", ("a",), True),
        ("%matplotlib inline\nupstream = ['a']\n!ls", ("a",), True),
    ],
)
def test_upstream_forms(source: str, upstream: tuple[str, ...], declared: bool) -> None:
    decl = parse_parameters(source, "nb.ipynb", 0)
    assert decl.upstream == upstream
    assert decl.declares_upstream is declared


def test_parameters_and_product_are_read_not_run() -> None:
    source = (
        "import os\nupstream = None\nproduct = {'data': 'out/d.csv'}\nn = 3\nname: str = 'x'\nos.remove('/nonexistent')"
    )
    decl = parse_parameters(source, "nb.ipynb", 0)
    assert decl.product == {"data": "out/d.csv"}
    assert decl.defaults == {"n": "3", "name": "'x'"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("upstream = 3", "'upstream' must be a list of notebook names"),
        ("upstream = [1]", "list containing non-strings"),
        ("upstream = f(x)", "must be a literal"),
        ("upstream = ['a', 'a']", "more than once"),
        ("upstream = ['']", "empty name"),
        ("product = ['a.csv']", "'product' must be a path or a dict"),
        ("product = {'a': 1}", "non-string keys or values"),
        ("upstream = [", "is not valid Python"),
    ],
)
def test_bad_declarations_name_the_file_and_cell(source: str, message: str) -> None:
    with pytest.raises(MalformedNotebookError) as info:
        parse_parameters(source, "etl/clean.ipynb", 2)
    assert message in str(info.value)
    assert str(info.value).startswith("etl/clean.ipynb")


def test_declaration_error_names_cell() -> None:
    with pytest.raises(InvalidDeclarationError, match=r"etl/clean.ipynb, cell 2: "):
        parse_parameters("upstream = 3", "etl/clean.ipynb", 2)


def test_spec_reads_kernel_and_hash(tmp_path) -> None:
    path = write_notebook(tmp_path, "a", "upstream = None", "print(1)", kernel="python3")
    spec = read_notebook_spec(path, "a", "a.ipynb")
    assert spec.kernel_name == "python3"
    assert spec.parameters_cell == 0
    path2 = write_notebook(tmp_path, "b", "upstream = None", "print(2)")
    assert read_notebook_spec(path2, "b", "b.ipynb").source_hash != spec.source_hash


def test_notebook_without_parameters_cell_is_a_root(tmp_path) -> None:
    path = write_notebook(tmp_path, "a", None, "upstream = ['x']")  # untagged: not a declaration
    spec = read_notebook_spec(path, "a", "a.ipynb")
    assert spec.upstream == ()
    assert spec.parameters_cell is None
