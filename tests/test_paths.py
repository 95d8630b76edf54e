"""The layout of a pipeline's ``_nbflow/`` folder: every path nbflow uses there, and its one writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbflow.paths import AttemptPaths, StateDir


@pytest.mark.parametrize(
    ("path", "relative"),
    [
        (lambda s: s.path, "_nbflow"),
        (lambda s: s.store, "_nbflow/state.duckdb"),
        (lambda s: s.lock, "_nbflow/run.lock"),
        (lambda s: s.runs, "_nbflow/runs"),
        (lambda s: s.run("20261125-143012-a1b2c3"), "_nbflow/runs/20261125-143012-a1b2c3"),
        (lambda s: s.discovery_cache, "_nbflow/discovery.json"),
        (lambda s: s.legacy_discovery_cache, "_nbflow/discovery.pickle"),
        (lambda s: s.panel_runs, "_nbflow/panel-runs"),
        (lambda s: s.airflow, "_nbflow/airflow"),
        (lambda s: s.gitignore, "_nbflow/.gitignore"),
        (lambda s: s.attempt("r1", "load", 1).notebook, "_nbflow/runs/r1/load/attempt-1.ipynb"),
        (lambda s: s.attempt("r1", "load", 1).log, "_nbflow/runs/r1/load/attempt-1.log"),
        (lambda s: s.attempt("r1", "load", 1).kernel_log, "_nbflow/runs/r1/load/attempt-1.kernel.log"),
        (lambda s: s.attempt("r1", "load", 1).result, "_nbflow/runs/r1/load/attempt-1.result.json"),
        (lambda s: s.attempt("r1", "sub/clean.v2", 12).log, "_nbflow/runs/r1/sub/clean.v2/attempt-12.log"),
    ],
)
def test_each_path_in_the_state_folder(tmp_path: Path, path, relative: str) -> None:
    state = StateDir(tmp_path)
    assert path(state) == tmp_path / relative
    assert path(StateDir(str(tmp_path))) == tmp_path / relative, "a str root names the same folder"
    assert not (tmp_path / "_nbflow").exists(), "asking for a path writes nothing"


def test_the_server_checks_the_folder_and_what_it_reads_and_writes_there() -> None:
    assert [p.as_posix() for p in StateDir("").own_paths()] == [
        "_nbflow",
        "_nbflow/state.duckdb",
        "_nbflow/run.lock",
        "_nbflow/runs",
        "_nbflow/panel-runs",
        "_nbflow/discovery.json",
    ]


@pytest.mark.parametrize(
    ("log", "kernel_log", "notebook"),
    [
        ("runs/r1/load/attempt-2.log", "runs/r1/load/attempt-2.kernel.log", "runs/r1/load/attempt-2.ipynb"),
        ("out/task.txt", "out/task.kernel.log", "out/task.ipynb"),  # a log named otherwise: its stem
        ("out/task", "out/task.kernel.log", "out/task.ipynb"),
    ],
)
def test_an_attempts_files_from_its_log(log: str, kernel_log: str, notebook: str) -> None:
    files = AttemptPaths.of_log(Path(log))
    assert (files.kernel_log, files.notebook) == (Path(kernel_log), Path(notebook))


def test_an_attempt_in_another_run_folder_has_the_same_names(tmp_path: Path) -> None:
    files = AttemptPaths.in_run_dir(tmp_path / "dag" / "run", "load", 3)
    assert [files.notebook.name, files.log.name, files.kernel_log.name] == [
        "attempt-3.ipynb",
        "attempt-3.log",
        "attempt-3.kernel.log",
    ]
    assert files.log.parent == tmp_path / "dag" / "run" / "load"
    assert AttemptPaths.of_log(files.log) == files


def test_ensure_makes_the_folder_and_its_gitignore_once(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    assert state.ensure() == tmp_path / "_nbflow"
    ignore = tmp_path / "_nbflow" / ".gitignore"
    assert ignore.read_text() == "# nbflow's state and executed notebooks\n*\n"
    assert sorted(p.name for p in (tmp_path / "_nbflow").iterdir()) == [".gitignore"]

    ignore.write_text("# kept as the user left it\n*\n")
    assert state.ensure() == tmp_path / "_nbflow", "a second call is harmless"
    assert ignore.read_text() == "# kept as the user left it\n*\n", "an existing .gitignore is not rewritten"


def test_ensure_says_when_the_folder_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "_nbflow").write_text("a file where the folder goes")
    with pytest.raises(OSError):
        StateDir(tmp_path).ensure()


def test_state_dirs_are_values() -> None:
    assert StateDir("/p") == StateDir(Path("/p"))
    assert len({StateDir("/p"), StateDir(Path("/p")), StateDir("/q")}) == 2
    with pytest.raises(AttributeError):
        StateDir("/p").root = Path("/q")  # type: ignore[misc]
