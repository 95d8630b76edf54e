"""R notebooks as tasks: their parameters cell read without running R, and runs through IRkernel.

The reader's tests are pure; the runs (marked slow) go through ``nbflow run`` in the R
kernel ``ir``, beside Python notebooks in the same pipeline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from nbflow.errors import InvalidDeclarationError, MalformedNotebookError
from nbflow.pipeline import Pipeline
from nbflow.project.edit import set_upstream_in_r_source, write_upstream
from nbflow.project.notebook import parse_parameters, parse_r_parameters, spec_from_json
from nbflow.project.rlang import NOT_LITERAL, r_string, read_assignments
from nbflow.project.secrets import injection_lines
from tests.conftest import nbflow_process, write_notebook

SECRET = 'r-s3cr3t"Tok\\en-42'  # a quote and a backslash: its escaped forms must be masked too
NO_R = "the R kernel (kernelspec 'ir') is not installed: run NBFLOW_SETUP_R=1 scripts/setup"


def write_r_notebook(folder: Path, name: str, parameters: str | None, *cells: str) -> Path:
    """``folder/name.ipynb`` for IRkernel: a tagged parameters cell (if given), then code cells."""
    return write_notebook(folder, name, parameters, *cells, kernel="ir", language="R")


# -- the reader: pure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "upstream", "declares"),
    [
        ('upstream <- c("clean")', ("clean",), True),
        ('upstream = c("a", "b")', ("a", "b"), True),
        ("upstream <- 'clean'", ("clean",), True),
        ("upstream <- NULL", (), True),
        ("upstream <- c()", (), True),
        ('upstream <- list("a", "b")', ("a", "b"), True),
        ('upstream <- c(\n  "a",  # the first\n  "b"\n)', ("a", "b"), True),
        ('upstream <<- c("a")', ("a",), True),
        ('c("a") -> upstream', ("a",), True),
        ("n <- 1", (), False),
    ],
)
def test_upstream_in_every_form(source: str, upstream: tuple[str, ...], declares: bool) -> None:
    decl = parse_r_parameters(source, "r.ipynb", 0)
    assert decl.upstream == upstream
    assert decl.declares_upstream is declares


@pytest.mark.parametrize(
    ("source", "product"),
    [
        ('product <- list(data = "out/x.csv", model = "out/m.rds")', {"data": "out/x.csv", "model": "out/m.rds"}),
        ('product = list("data" = "out/x.csv")', {"data": "out/x.csv"}),
        ('product <- c(data = "out/x.csv")', {"data": "out/x.csv"}),
        ('product <- list(`the data` = "out/x.csv")', {"the data": "out/x.csv"}),
        ('product <- "out/x.csv"', "out/x.csv"),
        ("product <- NULL", None),
    ],
)
def test_product_in_every_form(source: str, product: object) -> None:
    decl = parse_r_parameters(source, "r.ipynb", 0)
    assert decl.product == product
    assert decl.declares_product


def test_ordinary_parameters_become_python_literals() -> None:
    source = "\n".join(
        [
            "# parameters of the model",
            "n <- 10",
            "k <- 10L",
            "rate <- 0.5",
            "tiny = 1e-3",
            "neg <- -2L",
            "hex <- 0x1F",
            'name <- "abc"',
            "flag <- TRUE",
            "off <- FALSE",
            "x <- NULL",
            "v <- c(1, 2)",
            "w <- c(1, c(2, 3))",
            "one <- c(5)",
            "opts <- list(a = 1, b = 'z')",
            "today <- Sys.Date()",
            "missing <- NA",
            "f <- function(x) x + 1",
            "m <- matrix(1:4,\n  nrow = 2)",
        ]
    )
    defaults = parse_r_parameters(source).defaults
    assert defaults == {
        "n": "10",
        "k": "10",
        "rate": "0.5",
        "tiny": "0.001",
        "neg": "-2",
        "hex": "31",
        "name": "'abc'",
        "flag": "True",
        "off": "False",
        "x": "None",
        "v": "[1, 2]",
        "w": "[1, 2, 3]",
        "one": "5",
        "opts": "{'a': 1, 'b': 'z'}",
        "today": "Sys.Date()",
        "missing": "NA",
        "f": "function(x) x + 1",
        "m": "matrix(1:4,\n  nrow = 2)",
    }


def test_strings_comments_and_escapes() -> None:
    source = (
        'name <- "a <- b # not a comment"  # a comment <- with an arrow\n'
        "quote <- 'say \"hi\"\\n'\n"
        'esc <- "tab\\there \\\\ \\u00e9 \\U{1F600}"\n'
        'hex <- "\\x41\\101"\n'
        'raw <- r"(C:\\path\\no-escape)"\n'
        "# upstream <- c('commented out')\n"
        "a <- 1; b <- 2\n"
    )
    values = {a.name: a.value for a in read_assignments(source)}
    assert values == {
        "name": "a <- b # not a comment",
        "quote": 'say "hi"\n',
        "esc": "tab\there \\ é \U0001f600",
        "hex": "AA",
        "raw": "C:\\path\\no-escape",
        "a": 1,
        "b": 2,
    }
    assert parse_r_parameters(source).declares_upstream is False


def test_what_is_not_an_assignment_is_not_a_parameter() -> None:
    source = (
        "library(readr)\n"
        "if (TRUE) {\n  inner <- 1\n}\n"
        "print(x = 3)\n"
        "total <- 1 +\n  2\n"
        "nested <- list(a = list(b = 1))\n"
        "nested$a <- 2\n"
    )
    found = {a.name: a.value for a in read_assignments(source)}
    assert found == {"total": NOT_LITERAL, "nested": {"a": {"b": 1}}}


def test_a_non_literal_upstream_or_product_names_the_file_the_cell_and_the_expression() -> None:
    with pytest.raises(InvalidDeclarationError) as info:
        parse_r_parameters('n <- 1\nupstream <- paste0("cl", "ean")', "models/fit.ipynb", 2)
    message = str(info.value)
    assert message.startswith("models/fit.ipynb, cell 2: 'upstream' must be a literal")
    assert '`paste0("cl", "ean")`' in message and "line 2" in message
    with pytest.raises(InvalidDeclarationError, match=r"fit.ipynb, cell 0: 'product' must be a literal .*`file.path"):
        parse_r_parameters('product <- file.path("out", "x.csv")', "fit.ipynb", 0)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "upstream <- 3",
            r"fit.ipynb, cell 1: 'upstream' must be a list of notebook names, like upstream <- c\(\"clean\"\) \(got number\)",
        ),
        ('upstream <- c("a", "a")', r"'upstream' lists 'a' more than once"),
        ('upstream <- c("")', r"'upstream' contains an empty name"),
        ("upstream <- list(1, 2)", r"a list containing non-strings"),
        (
            "product <- TRUE",
            r"'product' must be a path or a dict of named paths, like product <- list\(data = .*got logical",
        ),
        ("product <- list(data = 1)", r"got named list with non-string keys or values"),
        ('product <- list("a.csv", "b.csv")', r"got list\)"),
    ],
)
def test_a_declaration_of_the_wrong_shape_says_how_to_write_it_in_r(source: str, message: str) -> None:
    with pytest.raises(InvalidDeclarationError, match=message):
        parse_r_parameters(source, "fit.ipynb", 1)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ('name <- "never closed', "line 1: a string is not closed"),
        ("x <- c(1, 2\ny <- 3", "line 1: '(' is not closed"),
        ("x <- 1)\n", "line 1: ')' closes nothing"),
        ('upstream <- c("a")\nx <- "\\q"', "line 2: '\\q' is not an escape R knows"),
    ],
)
def test_a_cell_that_is_not_r_is_a_malformed_notebook(source: str, problem: str) -> None:
    with pytest.raises(MalformedNotebookError) as info:
        parse_r_parameters(source, "fit.ipynb", 4)
    message = str(info.value)
    assert message.startswith("fit.ipynb is not a valid ")
    assert f": parameters cell 4 is not valid R ({problem}" in message


def test_the_notebook_language_chooses_the_reader(tmp_path: Path) -> None:
    path = write_r_notebook(tmp_path, "fit", 'upstream <- c("make")\nproduct <- "out/fit.csv"\nn <- 10L', "print(n)")
    nb = json.loads(path.read_text())
    spec = spec_from_json(nb, path, "fit", "fit.ipynb")
    assert (spec.language, spec.kernel_name, spec.upstream, spec.product) == ("R", "ir", ("make",), "out/fit.csv")
    assert spec.params.defaults == {"n": "10"}
    # the same text in a Python notebook is Python: `n <- 10L` is not an assignment there
    assert parse_parameters("n <- 10", "x.ipynb", 0).defaults == {}
    assert parse_parameters("n <- 10", "x.ipynb", 0, language="R").defaults == {"n": "10"}


def test_discovery_reads_r_notebooks_beside_python_ones(tmp_path: Path) -> None:
    write_notebook(tmp_path, "make", "upstream = None\nproduct = 'out/make.csv'")
    write_r_notebook(tmp_path, "fit", 'upstream <- c("make")\nproduct <- list(data = "out/fit.csv")\nscale <- 1')
    write_notebook(tmp_path, "report", "upstream = ['fit']\nproduct = 'out/report.txt'")
    pipeline = Pipeline.from_dir(tmp_path)
    assert pipeline.specs["fit"].upstream == ("make",)
    assert pipeline.specs["report"].upstream == ("fit",)
    assert pipeline.specs["fit"].params.defaults == {"scale": "1"}


def test_secret_lines_in_r_fall_back_as_the_python_lines_do() -> None:
    lines = injection_lines(["api_token"], {"api_token": "API_TOKEN"}, language="R")
    assert lines[0].startswith('api_token <- Sys.getenv("NBFLOW_SECRET_API_TOKEN", unset = NA)')
    assert 'Sys.getenv("API_TOKEN", unset = NA)' in lines[1]
    assert "stop(" in lines[2] and "API_TOKEN" in lines[2]
    # every line is R this reader understands; none assigns a literal
    assert [a.name for a in read_assignments("\n".join(lines))] == ["api_token"]
    assert injection_lines(["api_token"]) == injection_lines(["api_token"], language="python")
    assert injection_lines(["api_token"])[0].startswith("api_token = __import__")


def test_r_strings_are_written_escaped() -> None:
    text = 'a "quoted" \\ path\nwith\ta tab'
    (assignment,) = read_assignments(f"x <- {r_string(text)}")
    assert assignment.value == text


def test_the_panels_upstream_edit_writes_r_in_an_r_notebook(tmp_path: Path) -> None:
    params = 'n <- 10L  # trees\nupstream <- c("clean",\n  "other")  # from\nproduct <- list(data = "out/x.csv")'
    path = write_r_notebook(tmp_path, "fit", params, "print(n)")
    write_upstream(path, ["clean", 'we"ird'], "fit.ipynb")
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].source == (
        'n <- 10L  # trees\nupstream <- c("clean", "we\\"ird")  # from\nproduct <- list(data = "out/x.csv")'
    )
    assert nb.cells[1].source == "print(n)"
    decl = parse_parameters(nb.cells[0].source, "fit.ipynb", 0, language="R")
    assert decl.upstream == ("clean", 'we"ird')
    assert decl.product == {"data": "out/x.csv"}
    write_upstream(path, [], "fit.ipynb")
    assert "upstream <- NULL  # from" in nbformat.read(path, as_version=4).cells[0].source


def test_an_upstream_edit_adds_the_line_to_an_r_cell_without_one() -> None:
    assert set_upstream_in_r_source("n = 1\n", ["a"]) == 'upstream <- c("a")\nn = 1\n'
    assert set_upstream_in_r_source('upstream = "a"\n', ["a", "b"]) == 'upstream = c("a", "b")\n'
    with pytest.raises(InvalidDeclarationError, match="not valid R"):
        set_upstream_in_r_source('upstream <- c("a"\n', ["b"])


# -- runs in the R kernel -----------------------------------------------------------------


@pytest.fixture
def r_kernel() -> None:
    """Skip (or, where setup installed R, fail) without the ``ir`` kernelspec."""
    from jupyter_client.kernelspec import KernelSpecManager

    if "ir" not in KernelSpecManager().find_kernel_specs():
        if os.environ.get("NBFLOW_SETUP_R") == "1":
            pytest.fail(NO_R)
        pytest.skip(NO_R)


def _status(root: Path) -> dict:
    proc = nbflow_process("status", str(root), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
@pytest.mark.usefixtures("r_kernel")
def test_a_pipeline_of_python_and_r_notebooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nbflow.toml").write_text('[secrets]\napi_token = "NBFLOW_TEST_R_TOKEN"\n')
    monkeypatch.setenv("NBFLOW_TEST_R_TOKEN", SECRET)
    write_notebook(
        tmp_path,
        "make",
        "upstream = None\nproduct = 'out/make.csv'",
        "import os\nos.makedirs('out', exist_ok=True)\nopen(product, 'w').write('x,y\\n1,10\\n2,20\\n4,40\\n')",
    )
    write_r_notebook(
        tmp_path,
        "fit",
        'upstream <- c("make")  # the table to fit\n'
        'product <- list(data = "out/fit.csv", note = "out/note.txt")\n'
        "scale <- 1\n"
        'label <- "default # label"\n'
        "api_token <- NULL",
        'df <- read.csv(upstream[["make"]])\n'
        "out <- data.frame(total = sum(df$x) * scale, rows = nrow(df), label = label)\n"
        'write.csv(out, product[["data"]], row.names = FALSE)\n'
        'writeLines(as.character(nchar(api_token)), product[["note"]])',
        'cat("token is", api_token, "\\n")',
    )
    write_notebook(
        tmp_path,
        "report",
        "upstream = ['fit']\nproduct = 'out/report.txt'",
        "import csv\nrow = next(csv.DictReader(open(upstream['fit']['data'])))\n"
        "open(product, 'w').write(f\"{row['total']} {row['rows']} {row['label']}\")",
    )
    proc = nbflow_process("run", str(tmp_path), "-p", "scale=3", "-p", "fit.label=from the command line")
    assert proc.returncode == 0, proc.stderr

    assert (tmp_path / "out" / "report.txt").read_text() == "21 3 from the command line"
    assert (tmp_path / "out" / "note.txt").read_text().strip() == str(len(SECRET)), "R read the secret"
    status = _status(tmp_path)
    assert status["state"] == "success"
    assert {name: t["state"] for name, t in status["tasks"].items()} == dict.fromkeys(
        ("make", "fit", "report"), "success"
    )

    executed = Path(status["tasks"]["fit"]["output_notebook"])
    text = executed.read_text()
    assert SECRET not in text and json.dumps(SECRET)[1:-1] not in text
    nb = nbformat.read(executed, as_version=4)
    (injected,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    make_csv = (tmp_path / "out" / "make.csv").resolve()
    assert f'upstream = list("make" = "{make_csv}")' in injected.source
    assert f'"data" = "{(tmp_path / "out" / "fit.csv").resolve()}"' in injected.source
    assert "scale = 3" in injected.source and 'label = "from the command line"' in injected.source
    assert 'api_token <- Sys.getenv("NBFLOW_SECRET_API_TOKEN", unset = NA)' in injected.source
    assert {a.name for a in read_assignments(injected.source)} >= {"upstream", "product", "scale", "label"}
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "token is [secret]" in printed


@pytest.mark.slow
@pytest.mark.usefixtures("r_kernel")
def test_an_r_error_fails_the_task_with_its_message(tmp_path: Path) -> None:
    write_r_notebook(
        tmp_path,
        "fit",
        'upstream <- NULL\nproduct <- "out/fit.rds"',
        'stop("the model did not converge after 12 steps")',
    )
    write_notebook(tmp_path, "report", "upstream = ['fit']")
    proc = nbflow_process("run", str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    status = _status(tmp_path)
    fit, report = status["tasks"]["fit"], status["tasks"]["report"]
    assert fit["state"] == "failed"
    assert "the model did not converge after 12 steps" in fit["error"]
    assert report["state"] == "upstream_failed"
    assert "the model did not converge after 12 steps" in proc.stderr


@pytest.mark.slow
def test_a_non_literal_r_upstream_is_refused_before_any_kernel_starts(tmp_path: Path) -> None:
    write_r_notebook(tmp_path, "fit", 'upstream <- paste0("ma", "ke")')
    proc = nbflow_process("run", str(tmp_path))
    assert proc.returncode == 2
    assert "fit.ipynb, cell 0: 'upstream' must be a literal" in proc.stderr
    assert not (tmp_path / "_nbflow" / "runs").exists()
