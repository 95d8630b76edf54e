"""nbflow: notebooks as tasks of a DAG, run headlessly or from JupyterLab, recorded in DuckDB.

>>> import nbflow
>>> pipeline = nbflow.Pipeline.from_dir("notebooks")
>>> result = pipeline.run(params={"seed": 1})
>>> result.states
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Pipeline", "Task", "RunResult", "NbflowError", "show", "connect", "__version__"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The server extension behind the JupyterLab pipeline panel (``nbflow.server``)."""
    return [{"module": "nbflow.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension (the pipeline panel)."""
    return [{"src": "labextension", "dest": "nbflow"}]


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext nbflow``: the ``%nbflow`` magic (``%nbflow inputs`` loads a notebook's inputs)."""
    from nbflow.integrations.ipython import load_ipython_extension as load

    load(ipython)


def __getattr__(name: str):  # import lazily: `nbflow dag` and `nbflow status` stay fast
    if name in ("Pipeline", "Task"):
        from nbflow import pipeline

        return getattr(pipeline, name)
    if name == "RunResult":
        from nbflow.engine.runner import RunResult

        return RunResult
    if name == "show":
        from nbflow.widgets import show

        return show
    if name == "connect":
        from nbflow.systems.connect import connect

        return connect
    if name == "NbflowError":
        from nbflow.errors import NbflowError

        return NbflowError
    raise AttributeError(f"module 'nbflow' has no attribute {name!r}")
