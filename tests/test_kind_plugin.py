"""A kind plugs in by itself: one class and one registry entry, no other nbflow module changed.

The kinds here live only in this file. A file kind: a ``.tmpl`` file is a task whose header
declares ``upstream`` and ``product`` like a SQL task's, and whose body is a text template
filled with its upstreams' products. It sits between two SQL tasks, so the graph, discovery,
validation, the runner, the store and the incremental planner all meet a kind they were
never told about. A code kind: a ``constant`` task, declared with ``Pipeline.add_task`` in
Python or in ``nbflow_tasks.py``, writes the rows its declaration holds to its CSV product;
``nbflow_tasks.py`` is read without being run, and a SQL task downstream reads the rows.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from nbflow import states
from nbflow.errors import PipelineNotFoundError, PipelineValidationError, UnknownKindError
from nbflow.execution.base import AttemptControl, AttemptOutcome, TaskRequest, utcnow
from nbflow.kinds import KINDS, CodeKind, FileKind, kind_of
from nbflow.pipeline import Pipeline
from nbflow.project.notebook import parse_parameters
from nbflow.project.specs import Product, TaskSpec
from nbflow.store.duckdb import DuckDBRunStore


class TemplateKind(FileKind):
    """``report.tmpl``: ``-- upstream = [...]`` and ``-- product = "x.csv"`` lines, then a
    template; ``{rows:NAME}`` becomes the number of data rows in upstream NAME's CSV."""

    name = "template"
    noun = "text template"
    suffixes = (".tmpl",)

    def read(self, path: Path, name: str, relpath: str) -> TaskSpec:
        text = path.read_text(encoding="utf-8")
        header = [line[2:].strip() for line in text.splitlines() if line.startswith("--")]
        return TaskSpec(
            name=name,
            path=path,
            relpath=relpath,
            kernel_name="-",
            language="template",
            params=parse_parameters("\n".join(header), relpath, 0),
            parameters_cell=None,
            source_hash=hashlib.sha256(text.encode()).hexdigest()[:16],
            kind=self.name,
        )

    def run(self, request: TaskRequest, control: AttemptControl, launcher: object) -> AttemptOutcome:
        started = utcnow()
        try:
            body = "\n".join(line for line in request.source.read_text().splitlines() if not line.startswith("--"))
            upstream = request.parameters["upstream"]

            def rows(match: re.Match[str]) -> str:
                return str(len(Path(upstream[match.group(1)]).read_text().splitlines()) - 1)

            Path(request.parameters["product"]).write_text(re.sub(r"\{rows:(\w+)\}", rows, body) + "\n")
        except Exception as e:  # the outcome says what went wrong; the run goes on
            return AttemptOutcome.failed(type(e).__name__, str(e), started=started)
        return AttemptOutcome(states.SUCCESS, started, utcnow())


@pytest.fixture
def template_kind(monkeypatch: pytest.MonkeyPatch) -> TemplateKind:
    kind = TemplateKind()
    monkeypatch.setitem(KINDS, kind.name, kind)  # the registry line of a real plugin
    return kind


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "numbers.sql").write_text(
        '-- product = "numbers.csv"\nSELECT * FROM range(5) AS t(n)\n', encoding="utf-8"
    )
    (tmp_path / "report.tmpl").write_text(
        '-- upstream = ["numbers"]\n-- product = "report.csv"\nkind,rows\ntemplate,{rows:numbers}\n',
        encoding="utf-8",
    )
    (tmp_path / "total.sql").write_text(
        '-- upstream = ["report"]\n-- product = "total.csv"\nSELECT sum(rows) AS total FROM report\n',
        encoding="utf-8",
    )
    return tmp_path


def test_a_kind_defined_outside_nbflow_runs_between_two_sql_tasks(tmp_path: Path, template_kind: TemplateKind) -> None:
    folder = _folder(tmp_path)
    pipeline = Pipeline.from_dir(folder)
    assert kind_of(pipeline.specs["report"].kind) is template_kind
    assert tuple(pipeline.dag.upstreams["total"]) == ("report",)

    result = pipeline.run(workers=1)

    assert result.ok, result.states
    assert (folder / "report.csv").read_text() == "kind,rows\ntemplate,5\n"
    assert (folder / "total.csv").read_text().splitlines() == ["total", "5"]
    with DuckDBRunStore(folder / "_nbflow" / "state.duckdb", read_only=True) as store:
        attempts = store.get_attempts(result.run_id, "report")
    assert [(a.state, a.kernel_name) for a in attempts] == [(states.SUCCESS, "-")]

    again = Pipeline.from_dir(folder).run(workers=1)  # the planner knows it without being told
    assert set(again.states.values()) == {states.UP_TO_DATE}


def test_an_unknown_upstream_of_a_plugged_in_kind_names_its_file(tmp_path: Path, template_kind: TemplateKind) -> None:
    (tmp_path / "orphan.tmpl").write_text('-- upstream = ["nowhere"]\n-- product = "o.csv"\nx\n', encoding="utf-8")

    with pytest.raises(PipelineValidationError) as err:
        Pipeline.from_dir(tmp_path)

    assert "orphan.tmpl" in str(err.value) and "nowhere" in str(err.value)


def test_without_its_registry_entry_the_file_is_not_a_task(tmp_path: Path) -> None:
    with pytest.raises(PipelineValidationError) as err:
        Pipeline.from_dir(_folder(tmp_path))

    assert "total.sql" in str(err.value) and "'report'" in str(err.value)


def test_a_plugged_in_file_kind_names_its_files_in_messages(tmp_path: Path, template_kind: TemplateKind) -> None:
    with pytest.raises(
        PipelineNotFoundError,
        match=r"holds no notebooks \(\*\.ipynb; \*\.py, \*\.md with a Jupytext header\), no SQL tasks \(\*\.sql\) "
        r"and no text templates \(\*\.tmpl\)",
    ):
        Pipeline.from_dir(tmp_path)
    (tmp_path / "bad.tmpl").write_text("-- upstream = [\nx\n", encoding="utf-8")

    with pytest.raises(PipelineValidationError) as err:
        Pipeline.from_dir(tmp_path)

    assert "bad.tmpl is not a valid text template: " in str(err.value)


class SqlTemplateKind(TemplateKind):
    """The template kind again, for files ending ``.tmpl.sql``: a suffix that ends with SQL's."""

    name = "sqltemplate"
    suffixes = (".tmpl.sql",)


def test_a_file_is_the_kind_of_the_longest_suffix_it_ends_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kind = SqlTemplateKind()
    monkeypatch.setitem(KINDS, kind.name, kind)
    folder = _folder(tmp_path)
    (folder / "report.tmpl").rename(folder / "report.tmpl.sql")

    for _ in range(2):  # read, then from the discovery cache
        pipeline = Pipeline.from_dir(folder)
        assert sorted(pipeline.specs) == ["numbers", "report", "total"]
        assert kind_of(pipeline.specs["report"].kind) is kind and pipeline.specs["report"].relpath == "report.tmpl.sql"
        assert kind_of(pipeline.specs["total"].kind).name == "sql"

    assert pipeline.run(workers=1).ok
    assert (folder / "report.csv").read_text() == "kind,rows\ntemplate,5\n"


class ConstantKind(CodeKind):
    """A table given in code: ``add_task("constant", "numbers", rows=[["n"], [1], [2]], product="numbers.csv")``
    writes ``rows`` to the CSV ``product``."""

    name = "constant"
    noun = "constant table"
    arguments = frozenset({"rows"})

    def declare_task(
        self,
        path: Path,
        name: str,
        arguments: Mapping[str, Any],
        *,
        upstream: Sequence[str] = (),
        product: Product = None,
        settings: Mapping[str, Any] | None = None,
    ) -> TaskSpec:
        rows = arguments.get("rows")
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise TypeError(f"the constant table {name!r} needs rows=, a list of lists")
        source = json.dumps(rows)  # its code: a change of rows makes it out of date
        return self.declare(
            path, name, target=rows, upstream=upstream, product=product, source=source, settings=settings
        )

    def run(self, request: TaskRequest, control: AttemptControl, launcher: object) -> AttemptOutcome:
        started = utcnow()
        try:
            with open(request.parameters["product"], "w", newline="") as f:
                csv.writer(f).writerows(request.target)
        except Exception as e:  # the outcome says what went wrong; the run goes on
            return AttemptOutcome.failed(type(e).__name__, str(e), started=started)
        return AttemptOutcome(states.SUCCESS, started, utcnow())


@pytest.fixture
def constant_kind(monkeypatch: pytest.MonkeyPatch) -> ConstantKind:
    kind = ConstantKind()
    monkeypatch.setitem(KINDS, kind.name, kind)  # the registry line of a real plugin
    return kind


ROWS = [["n"], [1], [2], [3]]


def test_a_code_kind_defined_outside_nbflow_is_declared_with_add_task(
    tmp_path: Path, constant_kind: ConstantKind
) -> None:
    (tmp_path / "total.sql").write_text(
        "-- upstream = None\n-- product = 'total.csv'\nSELECT sum(n) AS total FROM numbers\n", encoding="utf-8"
    )
    pipeline = Pipeline.from_dir(tmp_path)
    with pytest.raises(UnknownKindError, match="nbflow knows constant, http, mongo, python"):
        pipeline.add_task("sql", "numbers", product="numbers.csv")
    with pytest.raises(TypeError, match="needs rows="):
        pipeline.add_task("constant", "numbers", product="numbers.csv")

    numbers = pipeline.add_task("constant", "numbers", product="numbers.csv", rows=ROWS, retries=1)
    numbers >> pipeline["total"]

    assert kind_of(pipeline.specs["numbers"].kind) is constant_kind and pipeline.specs["numbers"].target == ROWS
    assert pipeline.settings["numbers"].retries == 1, "the keywords that are not its arguments are settings"
    result = pipeline.run(workers=1)
    assert result.ok, result.tasks
    assert (tmp_path / "numbers.csv").read_text().splitlines() == ["n", "1", "2", "3"]
    assert (tmp_path / "total.csv").read_text().splitlines() == ["total", "6"]
    assert set(pipeline.run(workers=1).states.values()) == {states.UP_TO_DATE}


def test_a_code_kind_is_listed_from_nbflow_tasks_py_without_running_it(
    tmp_path: Path, constant_kind: ConstantKind
) -> None:
    marker = tmp_path / "imported"
    folder = tmp_path / "pipe"
    folder.mkdir()
    (folder / "seed.sql").write_text("-- product = 'seed.csv'\nSELECT 1 AS one\n", encoding="utf-8")
    (folder / "total.sql").write_text(
        "-- upstream = ['numbers']\n-- product = 'total.csv'\nSELECT sum(n) AS total FROM numbers\n",
        encoding="utf-8",
    )
    (folder / "nbflow_tasks.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).touch()  # runs at import\n"
        "\n"
        "def setup(pipeline):\n"
        f"    pipeline.add_task('constant', 'numbers', upstream=['seed'], product='numbers.csv', rows={ROWS!r})\n"
        "    pipeline.add_task('nowhere', 'other')\n",
        encoding="utf-8",
    )

    looked = Pipeline.from_dir(folder)

    assert not marker.exists(), "listing the tasks ran nothing"
    assert looked.not_loaded == {"numbers"} and looked.specs["numbers"].target is None
    assert kind_of(looked.specs["numbers"].kind) is constant_kind
    assert looked.dag.upstreams["numbers"] == ("seed",) and looked.dag.upstreams["total"] == ("numbers",)
    assert looked.specs["numbers"].params.product == "numbers.csv"
    assert looked.code_unread == ["line 6: a task of kind 'nowhere', which is no kind declared in code"]

    (folder / "nbflow_tasks.py").write_text(
        (folder / "nbflow_tasks.py").read_text().replace("    pipeline.add_task('nowhere', 'other')\n", "")
    )
    result = Pipeline.from_dir(folder).run(workers=1)  # a run loads the code first

    assert marker.exists()
    assert result.ok, result.tasks
    assert (folder / "total.csv").read_text().splitlines() == ["total", "6"]
