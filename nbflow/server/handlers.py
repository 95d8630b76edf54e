"""The REST endpoints under ``{base_url}nbflow/``: thin, authenticated, errors as JSON messages.

Every call goes to :class:`~nbflow.server.service.NbflowService` in a worker thread (a
store read may wait for a writer's lock; a run request waits for the run to be recorded),
so the server's event loop never blocks.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import tornado.ioloop
import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from nbflow.errors import (
    ChildRunFailedError,
    NbflowError,
    NoFailedAttemptError,
    NotAPipelineFolderError,
    NotATaskError,
    PathOutsideRootError,
    PipelineBusyError,
    PipelineNotFoundError,
    RunNotFoundError,
    RunNotGoingOnError,
    UnknownTaskError,
)
from nbflow.server.service import NbflowService


def _status_for(error: NbflowError) -> int:
    if isinstance(error, PathOutsideRootError):
        return 403
    if isinstance(error, (NotAPipelineFolderError, PipelineNotFoundError, RunNotFoundError)):
        return 404
    if isinstance(error, (UnknownTaskError, NotATaskError)):
        return 404
    if isinstance(error, (PipelineBusyError, RunNotGoingOnError, NoFailedAttemptError)):
        return 409
    if isinstance(error, ChildRunFailedError):  # exit 2: the request or pipeline is invalid; else a crash
        return 400 if error.invalid else 500
    return 400  # bad input: an unknown upstream, a cycle, a bad parameter, an invalid pipeline


class NbflowHandler(APIHandler):
    """Base: runs a service call off the event loop and maps nbflow's errors to HTTP codes."""

    @property
    def service(self) -> NbflowService:
        return self.settings["nbflow"]

    def arg(self, name: str, required: bool = True) -> str | None:
        value = self.get_query_argument(name, None)
        if value is None and required:
            raise tornado.web.HTTPError(400, reason=f"missing query argument {name!r}")
        return value

    def number(self, name: str, default: int | None = None, most: int | None = None) -> int | None:
        """A whole-number query argument (at most ``most``), or ``default`` when it is not given."""
        value = self.arg(name, False)
        if value is None:
            return default
        if not value.isdigit() or (most is not None and int(value) > most):
            limit = f" up to {most}" if most is not None else ""
            raise tornado.web.HTTPError(400, reason=f"{name!r} must be a whole number{limit}")
        return int(value)

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, reason="the request body is not JSON") from None
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400, reason="the request body must be a JSON object")
        return data

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        loop = tornado.ioloop.IOLoop.current()
        try:
            result = await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))
        except NbflowError as e:
            status = _status_for(e)
            if status >= 500:
                self.log.error("nbflow: %s: %s", type(e).__name__, e)
            self.set_status(status)
            self.finish(json.dumps({"message": str(e), "kind": type(e).__name__}))
            return
        self.finish(json.dumps(result))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason if status_code < 500 else "nbflow could not answer; see the server's log"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": reason}))


class InfoHandler(NbflowHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.call(self.service.info)


class DagHandler(NbflowHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.call(self.service.dag, self.arg("path"), self.arg("direction", False) or "LR")


class StatusHandler(NbflowHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.call(self.service.status, self.arg("path"), self.arg("run", False), self.arg("since", False))


class RunsHandler(NbflowHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        data = self.body()
        only = data.get("only")
        if only is not None and not (isinstance(only, list) and all(isinstance(x, str) for x in only)):
            raise tornado.web.HTTPError(400, reason="'only' must be a list of task names")
        params = data.get("params") or {}
        if not isinstance(params, dict):
            raise tornado.web.HTTPError(400, reason="'params' must be an object")
        path = data.get("path")
        if not isinstance(path, str):
            raise tornado.web.HTTPError(400, reason="'path' (the pipeline folder) is required")
        self.set_status(201)
        await self.call(self.service.start_run, path, params, only, bool(data.get("force")))


class StopHandler(NbflowHandler):
    @tornado.web.authenticated
    async def post(self, run_id: str) -> None:
        path = self.body().get("path")
        if not isinstance(path, str):
            raise tornado.web.HTTPError(400, reason="'path' (the pipeline folder) is required")
        self.set_status(202)
        await self.call(self.service.stop, path, run_id)


class LogHandler(NbflowHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.call(
            self.service.log,
            self.arg("path"),
            self.arg("task"),
            self.arg("run", False),
            self.number("attempt"),
            self.number("offset"),
        )


class GridHandler(NbflowHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.call(self.service.grid, self.arg("path"), self.number("limit", 25, most=500))


class TimelineHandler(NbflowHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.call(self.service.timeline, self.arg("path"), self.arg("run", False))


class TrendHandler(NbflowHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.call(self.service.trend, self.arg("path"), self.arg("task"), self.number("limit", 50, most=1000))


class UpstreamHandler(NbflowHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        data = self.body()
        for key in ("path", "task"):
            if not isinstance(data.get(key), str):
                raise tornado.web.HTTPError(400, reason=f"{key!r} is required")
        for key in ("add", "remove"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise tornado.web.HTTPError(400, reason=f"{key!r} must be a task name")
        direction = data.get("direction") or "LR"
        await self.call(
            self.service.edit_upstream, data["path"], data["task"], data.get("add"), data.get("remove"), str(direction)
        )


class InputsHandler(NbflowHandler):
    """What a run would inject into a notebook, for its live kernel: read, never run, nothing written."""

    @tornado.web.authenticated
    async def get(self) -> None:
        await self.call(self.service.inputs, self.arg("notebook"), self.arg("task", False), self.arg("path", False))


class DebugHandler(NbflowHandler):
    """Write the debug notebook of a task's failed attempt, under the pipeline's ``_nbflow/debug/``."""

    @tornado.web.authenticated
    async def post(self) -> None:
        data = self.body()
        for key in ("path", "task"):
            if not isinstance(data.get(key), str):
                raise tornado.web.HTTPError(400, reason=f"{key!r} is required")
        run_id = data.get("run")
        if run_id is not None and not isinstance(run_id, str):
            raise tornado.web.HTTPError(400, reason="'run' must be a run id")
        self.set_status(201)
        await self.call(self.service.debug, data["path"], data["task"], run_id)


def setup_handlers(web_app: Any, service: NbflowService) -> None:
    """Add nbflow's routes to the server's tornado application."""
    web_app.settings["nbflow"] = service
    base = url_path_join(web_app.settings["base_url"], "nbflow")
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "info"), InfoHandler),
            (url_path_join(base, "dag"), DagHandler),
            (url_path_join(base, "status"), StatusHandler),
            (url_path_join(base, "runs"), RunsHandler),
            (url_path_join(base, "runs", r"([^/]+)", "stop"), StopHandler),
            (url_path_join(base, "log"), LogHandler),
            (url_path_join(base, "grid"), GridHandler),
            (url_path_join(base, "timeline"), TimelineHandler),
            (url_path_join(base, "trend"), TrendHandler),
            (url_path_join(base, "upstream"), UpstreamHandler),
            (url_path_join(base, "inputs"), InputsHandler),
            (url_path_join(base, "debug"), DebugHandler),
        ],
    )
