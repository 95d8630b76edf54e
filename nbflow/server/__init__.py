"""nbflow's Jupyter server extension: the REST API behind the JupyterLab pipeline panel.

Enabled automatically when nbflow is installed (``jupyter server extension list`` shows
``nbflow``); the routes are under ``{base_url}nbflow/``.
"""

from __future__ import annotations

from typing import Any


def _load_jupyter_server_extension(server_app: Any) -> None:
    from nbflow.server.handlers import setup_handlers
    from nbflow.server.service import NbflowService

    service = NbflowService(server_app.root_dir)
    setup_handlers(server_app.web_app, service)
    from nbflow.server.pipelines import setup_pipelines_route

    setup_pipelines_route(server_app.web_app)
    server_app.log.info("nbflow: pipeline panel API at %snbflow/", server_app.web_app.settings["base_url"])
