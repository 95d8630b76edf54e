"""The runner's bookkeeping, with a recording executor (kernels are covered in test_run.py)."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from nbflow import states
from nbflow.core.dag import build_dag
from nbflow.engine.runner import Runner
from nbflow.execution.base import AttemptOutcome, Executor, TaskRequest, utcnow
from nbflow.project.params import Overrides
from nbflow.project.specs import ParametersDecl, TaskSpec
from nbflow.store.memory import MemoryRunStore


class RecordingExecutor(Executor):
    """Succeeds at once, records what it was asked; the Nth submit is a Ctrl-C."""

    def __init__(self, interrupt_on: int | None = None) -> None:
        self.requests: list[TaskRequest] = []
        self.cancelled: list[str] = []
        self.interrupt_on = interrupt_on

    def submit(self, request: TaskRequest) -> Future[AttemptOutcome]:
        if self.interrupt_on is not None and len(self.requests) + 1 == self.interrupt_on:
            raise KeyboardInterrupt
        self.requests.append(request)
        future: Future[AttemptOutcome] = Future()
        now = utcnow()
        future.set_result(AttemptOutcome(states.SUCCESS, now, now))
        return future

    def cancel(self, run_id: str) -> None:
        self.cancelled.append(run_id)


def _spec(tmp_path: Path, name: str, upstream: tuple[str, ...] = ()) -> TaskSpec:
    return TaskSpec(
        name,
        tmp_path / f"{name}.ipynb",
        f"{name}.ipynb",
        "python3",
        "python",
        ParametersDecl(upstream=upstream, declares_upstream=True),
        0,
        "h",
    )


def _runner(tmp_path: Path, executor: Executor, store: MemoryRunStore) -> Runner:
    specs = {s.name: s for s in (_spec(tmp_path, "a"), _spec(tmp_path, "b"), _spec(tmp_path, "c", ("a", "b")))}
    return Runner(tmp_path, specs, build_dag(specs.values()), store, executor, workers=2)


def test_requests_carry_upstream_products_and_attempt_paths(tmp_path: Path) -> None:
    executor = RecordingExecutor()
    result = _runner(tmp_path, executor, MemoryRunStore()).run(Overrides())
    assert result.ok
    by_task = {r.task: r for r in executor.requests}
    assert [r.task for r in executor.requests][-1] == "c"
    assert by_task["c"].parameters == {"upstream": {"a": None, "b": None}}
    assert by_task["c"].output_notebook == tmp_path / "_nbflow" / "runs" / result.run_id / "c" / "attempt-1.ipynb"


def test_ctrl_c_while_submitting_leaves_no_task_running(tmp_path: Path) -> None:
    store = MemoryRunStore()
    executor = RecordingExecutor(interrupt_on=2)
    result = _runner(tmp_path, executor, store).run(Overrides())
    assert result.state == states.INTERRUPTED and result.exit_code == 130
    assert executor.cancelled == [result.run_id]
    recorded = {name: t.state for name, t in store.get_tasks(result.run_id).items()}
    assert states.RUNNING not in recorded.values()
    assert sorted(recorded.values()) == ["interrupted", "pending", "success"]
    assert {a.state for a in store.get_attempts(result.run_id)} == {"success", "interrupted"}
