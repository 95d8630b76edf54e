"""RunSession: a run's store, lock and executor, opened or made once and closed once on every way out;
the resume plan beside the run plan; the named errors of a run that cannot start."""

from __future__ import annotations

import logging
import os
import pickle
import socket
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path

import pytest

from nbflow import errors, history, states
from nbflow.core.dag import build_dag
from nbflow.engine import runner
from nbflow.engine.incremental import resume_plan, reused, reused_task, source_hashes
from nbflow.engine.runlock import RunLock
from nbflow.engine.session import RunOptions, RunSession
from nbflow.execution.base import AttemptOutcome, Executor, TaskRequest, utcnow
from nbflow.paths import StateDir
from nbflow.pipeline import Pipeline
from nbflow.project.params import Overrides
from nbflow.project.specs import ParametersDecl, TaskSpec
from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord
from nbflow.store.duckdb import DuckDBRunStore
from nbflow.store.memory import MemoryRunStore


class SucceedingExecutor(Executor):
    """Every attempt succeeds at once; counts how often it is closed."""

    def __init__(self, workers: int | None = None, fail_close: bool = False) -> None:
        self.workers = workers
        self.fail_close = fail_close
        self.submitted: list[str] = []
        self.closed = 0

    def submit(self, request: TaskRequest) -> Future[AttemptOutcome]:
        self.submitted.append(request.task)
        future: Future[AttemptOutcome] = Future()
        now = utcnow()
        future.set_result(AttemptOutcome(states.SUCCESS, now, now))
        return future

    def cancel(self, run_id: str) -> None:
        pass

    def close(self) -> None:
        self.closed += 1
        if self.fail_close:
            raise OSError("the pool did not stop")


class CountingStore(MemoryRunStore):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
        super().close()


def _spec(root: Path, name: str, upstream: tuple[str, ...] = (), source_hash: str = "h") -> TaskSpec:
    return TaskSpec(
        name,
        root / f"{name}.ipynb",
        f"{name}.ipynb",
        "python3",
        "python",
        ParametersDecl(upstream=upstream, declares_upstream=True),
        0,
        source_hash,
    )


def _specs(root: Path) -> dict[str, TaskSpec]:
    return {s.name: s for s in (_spec(root, "a"), _spec(root, "b", ("a",)), _spec(root, "c", ("b",)))}


def _session(root: Path, made: list[SucceedingExecutor], **kwargs) -> RunSession:
    def make_executor(kind=None, *, workers=None, warm_kernels=None) -> Executor:
        made.append(SucceedingExecutor(workers))
        return made[-1]

    state = StateDir(root)
    return RunSession(root, store_path=state.store, lock_path=state.lock, make_executor=make_executor, **kwargs)


def _run(session: RunSession, root: Path, **options) -> runner.RunResult:
    specs = _specs(root)
    return session.run(build_dag(specs.values()), specs, {}, {}, RunOptions(Overrides(), **options))


def test_a_session_opens_the_store_and_makes_the_executor_then_closes_each_once(tmp_path: Path) -> None:
    made: list[SucceedingExecutor] = []
    with _session(tmp_path, made) as session:
        result = _run(session, tmp_path, workers=2)
        assert isinstance(session.store, DuckDBRunStore)
        with pytest.raises(errors.PipelineBusyError), RunLock(StateDir(tmp_path).lock, tmp_path):
            pass  # the session holds the pipeline's lock while it lasts
    assert result.ok and made[0].submitted == ["a", "b", "c"]
    assert [e.workers for e in made] == [2] and made[0].closed == 1
    with RunLock(StateDir(tmp_path).lock, tmp_path), DuckDBRunStore(StateDir(tmp_path).store) as store:
        assert store.get_run(result.run_id).state == states.SUCCESS  # lock released, store closed and written
    session.close()
    assert made[0].closed == 1, "closed once, however often the session is closed"


def test_a_session_leaves_a_given_store_and_executor_open(tmp_path: Path) -> None:
    store, executor, made = CountingStore(), SucceedingExecutor(), []
    with _session(tmp_path, made, store=store, executor=executor) as session:
        result = _run(session, tmp_path)
    assert result.ok and executor.submitted == ["a", "b", "c"] and not made
    assert store.closed == 0 and executor.closed == 0
    assert store.get_run(result.run_id).state == states.SUCCESS


def _failing_session(root: Path, made: list[SucceedingExecutor]) -> RunSession:
    def make_executor(kind=None, *, workers=None, warm_kernels=None) -> Executor:
        made.append(SucceedingExecutor(workers, fail_close=True))
        return made[-1]

    state = StateDir(root)
    return RunSession(root, store_path=state.store, lock_path=state.lock, make_executor=make_executor)


def test_an_error_leaves_nothing_open_and_is_the_error_seen(tmp_path: Path, caplog) -> None:
    made: list[SucceedingExecutor] = []
    session = _failing_session(tmp_path, made)
    with caplog.at_level(logging.WARNING, "nbflow"), pytest.raises(KeyError, match="boom"), session:
        _run(session, tmp_path)
        raise KeyError("boom")
    assert made[0].closed == 1
    assert "the executor did not close: OSError: the pool did not stop" in caplog.text
    with RunLock(StateDir(tmp_path).lock, tmp_path), DuckDBRunStore(StateDir(tmp_path).store):
        pass  # released and closed


def test_without_an_error_a_problem_closing_the_executor_is_raised_after_the_rest_is_closed(tmp_path: Path) -> None:
    made: list[SucceedingExecutor] = []
    with pytest.raises(OSError, match="did not stop"), _failing_session(tmp_path, made) as session:
        result = _run(session, tmp_path)
    assert result.ok and made[0].closed == 1
    with RunLock(StateDir(tmp_path).lock, tmp_path), DuckDBRunStore(StateDir(tmp_path).store):
        pass


def test_a_plan_session_takes_no_lock(tmp_path: Path) -> None:
    with RunLock(StateDir(tmp_path).lock, tmp_path), _session(tmp_path, []) as session:
        assert session.store.last_successes() == {}  # another run holds the lock: reading is fine


def test_fewer_than_one_worker_is_a_named_validation_problem(tmp_path: Path) -> None:
    made: list[SucceedingExecutor] = []
    with pytest.raises(errors.PipelineValidationError) as caught, _session(tmp_path, made) as session:
        _run(session, tmp_path, workers=-1)
    assert [type(p) for p in caught.value.problems] == [errors.WorkerCountError]
    assert str(caught.value) == "workers must be at least 1 (got -1)."
    assert not made and not StateDir(tmp_path).store.exists(), "nothing was opened, made or written"


def test_resume_plan_reuses_successes_with_unchanged_code_and_their_downstreams_run(tmp_path: Path) -> None:
    specs = _specs(tmp_path)
    dag = build_dag(specs.values())
    tasks = {
        "a": TaskRecord("r1", "a", states.SUCCESS, 1, datetime(2026, 1, 1), datetime(2026, 1, 2), None, "a.out"),
        "b": TaskRecord("r1", "b", states.UP_TO_DATE),
        "c": TaskRecord("r1", "c", states.FAILED, 1),
    }
    same = {"a": "h", "b": "h", "c": "h"}
    decisions = resume_plan(dag, specs, "r1", tasks, same, lambda s: ())
    assert {n: d.run for n, d in decisions.items()} == {"a": False, "b": False, "c": True}
    assert decisions["a"].reason == "succeeded in run r1" and decisions["c"].reason == "did not succeed in run r1"
    assert reused(decisions) == {"a": tasks["a"], "b": tasks["b"]}
    changed = resume_plan(dag, specs, "r1", tasks, {**same, "a": "old"}, lambda s: ())
    assert [n for n, d in changed.items() if d.run] == ["a", "b", "c"], "code changed: it and what follows run"
    gone = resume_plan(dag, specs, "r1", tasks, same, lambda s: [tmp_path / "missing.csv"] if s.name == "b" else [])
    assert [n for n, d in gone.items() if d.run] == ["b", "c"], "a missing product: the task runs again"


def test_a_reused_task_is_recorded_alike_from_an_attempt_or_a_task_record() -> None:
    start, end = datetime(2026, 1, 1), datetime(2026, 1, 2)
    attempt = AttemptRecord("r0", "a", 2, states.SUCCESS, start, end, output_notebook="a.ipynb")
    task = TaskRecord("r0", "a", states.SUCCESS, 2, start, end, None, "a.ipynb")
    expected = TaskRecord("r9", "a", states.UP_TO_DATE, 0, start, end, None, "a.ipynb", "why")
    assert reused_task("r9", attempt, "why") == reused_task("r9", task, "why") == expected


def test_source_hashes_follow_the_runs_resumed() -> None:
    store = MemoryRunStore()
    started = datetime(2026, 1, 1)
    store.save_run(RunRecord("r1", "/p", states.FAILED, started))
    store.save_run(RunRecord("r2", "/p", states.FAILED, started, resumed_from="r1"))
    for run_id, task, number, code in (("r1", "a", 1, "a1"), ("r1", "b", 1, "b1"), ("r2", "b", 1, "b2")):
        store.save_attempt(AttemptRecord(run_id, task, number, states.SUCCESS, started, source_hash=code))
    assert source_hashes(store, store.get_run("r2")) == {"a": "a1", "b": "b2"}


def test_resuming_a_run_still_going_on_is_a_named_error(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, [])
    with DuckDBRunStore(pipeline.state_path) as store:
        here = {"pid": os.getpid(), "hostname": socket.gethostname()}
        store.save_run(RunRecord("r1", str(tmp_path), states.RUNNING, datetime(2026, 1, 1), **here))
    with pytest.raises(errors.RunStillRunningError) as caught:
        pipeline.resume()
    assert str(caught.value) == f"Run r1 is still running (process {os.getpid()}); wait for it or stop it first."
    with RunLock(StateDir(tmp_path).lock, tmp_path), DuckDBRunStore(pipeline.state_path):
        pass  # the resume left neither the lock nor the store open


def test_an_unknown_executor_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(errors.UnknownExecutorError) as caught:
        Pipeline(tmp_path, []).make_executor("threads")
    assert str(caught.value) == 'unknown executor \'threads\': "local" or "dask"'


@pytest.mark.parametrize(
    "error",
    [errors.RunStillRunningError("r1", 42), errors.UnknownExecutorError("threads"), errors.WorkerCountError(0)],
)
def test_the_new_errors_are_structured_and_cross_processes(error: errors.NbflowError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and copy.__dict__ == error.__dict__
    assert error.exit_code == 2


def test_load_run_is_one_function_for_the_engine_and_the_commands() -> None:
    assert history.load_run is runner.load_run
