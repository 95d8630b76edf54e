"""``nbflow report``'s page: a run read from the store, its timeline, and its executed notebooks
rendered one task at a time into the file (never all held at once).

Looking is never running: the pipeline folder is read (``nbflow_tasks.py`` not run), the store
read-only, and an executed notebook is read as JSON only if its real path is inside the folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from nbflow.store.base import AttemptRecord, RunRecord, RunStore
from nbflow.views.notebook_html import NotebookHtml, notebook_to_html

#: an executed notebook larger than this is not read at all (its link stays)
MAX_NOTEBOOK_FILE = 256 * 1024 * 1024


def _attempts_and_logs(store: RunStore, run: RunRecord) -> tuple[dict[str, list[AttemptRecord]], dict[str, str]]:
    """A run's attempts by task, and each task's last captured output."""
    attempts: dict[str, list[AttemptRecord]] = {}
    for attempt in store.get_attempts(run.run_id):
        attempts.setdefault(attempt.task, []).append(attempt)
    logs = {}
    for name, tried in attempts.items():
        text = store.get_log(run.run_id, name, tried[-1].attempt)
        if text:
            logs[name] = text
    return attempts, logs


def notebook_reader(root: Path) -> Callable[[str, AttemptRecord, int], NotebookHtml | None]:
    """A renderer for :func:`~nbflow.views.html_report.iter_report`: an attempt's executed notebook,
    read only from inside ``root`` (the store's path is not trusted), rendered within its budget."""
    from nbflow.paths import is_inside

    def render(task: str, attempt: AttemptRecord, budget: int) -> NotebookHtml | None:
        if not attempt.output_notebook:
            return None
        path = Path(attempt.output_notebook)
        if not path.is_absolute():
            path = root / path
        if not is_inside(path, root):
            return NotebookHtml("", not_shown="it is outside the pipeline's folder")
        try:
            size = path.stat().st_size
            if size > MAX_NOTEBOOK_FILE:
                return NotebookHtml("", not_shown=f"the file is {size / 2**20:,.0f} MiB")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return NotebookHtml("", not_shown="the file is gone")
        except (OSError, UnicodeDecodeError) as e:
            return NotebookHtml("", not_shown=f"the file cannot be read ({type(e).__name__})")
        return notebook_to_html(text, budget)

    return render


def write_report(path: str | Path, run_id: str | None, out: str | Path) -> RunRecord:
    """Write a run of the pipeline in ``path`` (the latest by default) as one HTML page, with its
    timeline and its tasks' executed notebooks; the file appears whole or not at all.

    Raises
    ------
    RunNotFoundError, PipelineValidationError
    """
    from nbflow.engine.runner import load_run
    from nbflow.history import open_store, run_timeline
    from nbflow.pipeline import Pipeline
    from nbflow.views.html_report import iter_report
    from nbflow.views.svg import layout
    from nbflow.views.timeline import gantt_svg

    pipeline = Pipeline.from_dir(path, save_cache=False)  # looking: nbflow_tasks.py is read, not run
    root = Path(pipeline.root).resolve()
    with open_store(root, read_only=True) as store:
        run, tasks = load_run(store, run_id)
        attempts, logs = _attempts_and_logs(store, run)
        dag = pipeline.dag.subset([n for n in tasks if n in pipeline.specs]) if tasks else pipeline.dag
        timeline = run_timeline(store, root, run.run_id, dag.upstreams)  # kernel starts: the notebooks' own times
    tasks = {n: tasks[n] for n in dag.order if n in tasks} | tasks  # sections in the order tasks run
    target = Path(out).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    pieces = iter_report(
        run,
        tasks,
        layout(dag).svg,
        attempts,
        logs,
        base=target.parent,
        gantt=gantt_svg(timeline, width=960),
        notebooks=notebook_reader(root),
    )
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for piece in pieces:
                f.write(piece)
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return run
