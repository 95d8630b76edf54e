"""Watch and drive a pipeline from a notebook: ``nbflow.show(path)``.

Needs a Jupyter front end with ipywidgets (JupyterLab 4, Notebook 7, VS Code).
"""

from __future__ import annotations

import os

from nbflow.widgets.dashboard import Dashboard

__all__ = ["Dashboard", "show"]


def show(path: str | os.PathLike[str] = ".", *, poll_interval: float = 0.2, use_dot: bool = True) -> Dashboard:
    """Display (and return) the dashboard of the pipeline in ``path``.

    The graph shows the latest run's task states and follows new runs, made here or by
    any other process (``nbflow run`` in a terminal, CI, the scheduler). The notebooks
    are read again before each run started from the dashboard.

    Showing runs nothing and writes nothing: the folder's ``nbflow_tasks.py`` is read (its
    tasks are listed as not loaded) and runs only when the dashboard's Run starts a run.

    Raises
    ------
    PipelineNotFoundError
        ``path`` is not a folder of notebooks.
    PipelineValidationError
        The pipeline is invalid (every problem is listed).
    """
    from nbflow.pipeline import Pipeline

    def reload() -> Pipeline:
        return Pipeline.from_dir(path, save_cache=False)

    dashboard = Dashboard(reload(), reload=reload, poll_interval=poll_interval, use_dot=use_dot)
    _display(dashboard)
    return dashboard


def _display(widget: Dashboard) -> None:
    """Display now; if ``show(...)`` is also the cell's last expression, don't show it twice."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    display(widget)
    widget._skip_next_display = True

    def end_of_cell(*_: object) -> None:
        widget._skip_next_display = False
        shell.events.unregister("post_run_cell", end_of_cell)

    shell.events.register("post_run_cell", end_of_cell)
