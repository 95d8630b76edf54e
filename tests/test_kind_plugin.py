"""A kind plugs in by itself: one class and one registry entry, no other nbflow module changed.

The kind here lives only in this file: a ``.tmpl`` file is a task whose header declares
``upstream`` and ``product`` like a SQL task's, and whose body is a text template filled
with its upstreams' products. It sits between two SQL tasks, so the graph, discovery,
validation, the runner, the store and the incremental planner all meet a kind they were
never told about.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from nbflow import states
from nbflow.errors import PipelineValidationError
from nbflow.execution.base import AttemptControl, AttemptOutcome, TaskRequest, utcnow
from nbflow.kinds import KINDS, FileKind, kind_of
from nbflow.pipeline import Pipeline
from nbflow.project.notebook import parse_parameters
from nbflow.project.specs import TaskSpec
from nbflow.store.duckdb import DuckDBRunStore


class TemplateKind(FileKind):
    """``report.tmpl``: ``-- upstream = [...]`` and ``-- product = "x.csv"`` lines, then a
    template; ``{rows:NAME}`` becomes the number of data rows in upstream NAME's CSV."""

    name = "template"
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
            body = "\n".join(
                line for line in request.notebook.read_text().splitlines() if not line.startswith("--")
            )
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
