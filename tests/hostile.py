"""A pipeline whose folder, task names, run id and error message are markup, entities and escapes.

Every payload calls ``pwned(<where>)``: the browser tests expose that function and assert it
was never called (and that no dialog opened). The names are real file names; the run id and
the error are planted in the real state store, as any process writing it could.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from conftest import write_notebook

FOLDER = "dir<img src=x onerror=pwned('folder')>"
IMG_TASK = "<img src=x onerror=pwned('task')>"
#: HTML entities as they are written: never to be read as the characters they stand for
NBSP_TASK = "R&nbsp;D"
LT_TASK = "e&lt;x"
QUOTES_TASK = "q\"uote's \\N\\l\\G"
PLAIN_TASK = "-dash #1 %20 ü"
SUB_TASK = "\"><svg onload=pwned('sub')>/t"
#: task -> its upstreams; LT_TASK fails, so SUB_TASK is upstream_failed
TASKS: dict[str, list[str] | None] = {
    IMG_TASK: None,
    NBSP_TASK: [IMG_TASK],
    LT_TASK: [NBSP_TASK],
    QUOTES_TASK: [NBSP_TASK],
    PLAIN_TASK: [QUOTES_TASK],
    SUB_TASK: [LT_TASK],
}
ERROR = "<img src=x onerror=pwned('error')>"
RUN_ID = "<img src=x onerror=pwned('run')>"
#: each task's state in a run of this pipeline
STATES = {
    IMG_TASK: "success",
    NBSP_TASK: "success",
    LT_TASK: "failed",
    QUOTES_TASK: "success",
    PLAIN_TASK: "success",
    SUB_TASK: "upstream_failed",
}
#: names that break naive views, beyond the pipeline's: controls, DOT escapes, a trailing backslash
MORE_NAMES = [
    "a\\",
    "\\\\server",
    " ",
    "tab\there",
    "new\nline",
    "bell\x07",
    "#hash?q=1&x",
    "日本語 ✓",
    "--",
    "a'b\"c",
    "&amp;&#60;",
]


def make_pipeline(parent: Path) -> Path:
    """The hostile pipeline, in ``parent/FOLDER``; returns its folder."""
    root = parent / FOLDER
    for name, upstream in TASKS.items():
        code = f"raise ValueError({ERROR!r})" if name == LT_TASK else "print('ok')"
        write_notebook(root, name, f"upstream = {upstream!r}", code)
    return root


def plant_run(root: Path) -> str:
    """Record a run with the hostile id, its tasks as in :data:`STATES`, the failed one with
    the hostile error; it is the latest run. Copies the latest real run's records if there is one."""
    from nbflow.engine.runner import utcnow
    from nbflow.pipeline import Pipeline
    from nbflow.store.base import RunRecord, TaskRecord

    store = Pipeline.from_dir(root).open_store()
    try:
        earlier = store.latest_run()
        now = utcnow()
        if earlier is not None:
            run = replace(earlier, run_id=RUN_ID, started_at=now, ended_at=now + timedelta(seconds=2))
            tasks = {n: replace(t, run_id=RUN_ID) for n, t in store.get_tasks(earlier.run_id).items()}
            attempts = [replace(a, run_id=RUN_ID) for a in store.get_attempts(earlier.run_id)]
        else:
            run = RunRecord(RUN_ID, str(root), "failed", now, now + timedelta(seconds=2))
            tasks = {
                name: TaskRecord(
                    RUN_ID,
                    name,
                    state,
                    attempts=1 if state in ("success", "failed") else 0,
                    started_at=now if state in ("success", "failed") else None,
                    ended_at=now + timedelta(seconds=1) if state in ("success", "failed") else None,
                    error=f"ValueError: {ERROR}" if state == "failed" else None,
                )
                for name, state in STATES.items()
            }
            attempts = []
        store.save_run(run)
        for task in tasks.values():
            store.save_task(task)
        for attempt in attempts:
            store.save_attempt(attempt)
        store.flush()
    finally:
        store.close()
    return RUN_ID
