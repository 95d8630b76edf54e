"""The HTTP kind: one request, an expected status, the response saved as the product.

Parameters travel as data: in the query string for GET/DELETE/HEAD, in a JSON body
(``{"params": ..., "upstream": ...}``) otherwise.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow import states
from nbflow.errors import ParameterError, PipelineValidationError
from nbflow.execution.base import AttemptControl, AttemptOutcome, TaskRequest, stopped_outcome, utcnow
from nbflow.execution.logs import CappedLog
from nbflow.kinds.base import CodeKind
from nbflow.project.code import TaskCall, literal
from nbflow.project.specs import Product, TaskSpec

if TYPE_CHECKING:
    from nbflow.execution.kernels import KernelLauncher


class HttpKind(CodeKind):
    """An HTTP request declared in code (``Pipeline.http_task``, ``add_task("http", name, url=...)``)."""

    name = "http"
    noun = "HTTP task"
    injects_defaults = True  # its ``params`` are data sent with the request: no code of its own holds them
    facade = "http_task"
    writes_uri_products = False
    arguments = frozenset({"url", "method", "expect_status", "headers", "params"})

    def declare_task(
        self,
        path: Path,
        name: str,
        arguments: Mapping[str, Any],
        *,
        upstream: Sequence[str] = (),
        product: Product = None,
        settings: Mapping[str, Any] | None = None,
    ) -> TaskSpec:
        """The spec of a request task (see :meth:`nbflow.Pipeline.http_task`); its code is the request itself.

        Raises
        ------
        TypeError
            No ``url``.
        PipelineValidationError
            A parameter's value is not a literal (it is sent as data, and injected like a
            SQL task's defaults).
        """
        if "url" not in arguments:
            raise TypeError(f"the HTTP task {name!r} needs url=, the address it requests")
        return self._declare_request(path, name, upstream=upstream, product=product, settings=settings, **arguments)

    def _declare_request(
        self,
        path: Path,
        name: str,
        url: str,
        *,
        method: str = "GET",
        expect_status: int = 200,
        headers: Mapping[str, str] | None = None,
        upstream: Sequence[str] = (),
        product: Product = None,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> TaskSpec:
        target = {"method": method.upper(), "url": url, "expect_status": expect_status, "headers": dict(headers or {})}
        defaults = {k: repr(v) for k, v in (params or {}).items()}
        for key, value in (params or {}).items():
            try:
                ast.literal_eval(defaults[key])
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                raise PipelineValidationError(
                    [
                        ParameterError(
                            f"HTTP task {name!r}: parameter {key!r} must be a literal (text, a number, True, None, "
                            f"or a list or dict of them), got {type(value).__name__}"
                        )
                    ]
                ) from None
        source = json.dumps({**target, "params": defaults}, sort_keys=True)
        return self.declare(
            path,
            name,
            target=target,
            upstream=upstream,
            product=product,
            defaults=defaults,
            source=source,
            settings=settings,
        )

    def read_defaults(self, call: TaskCall) -> dict[str, str]:
        """Its ``params=``, when a literal dict."""
        ok, params = literal(call.keywords.get("params"))
        if ok and isinstance(params, dict) and all(isinstance(k, str) for k in params):
            return {k: repr(v) for k, v in params.items()}
        return {}

    def run(self, request: TaskRequest, control: AttemptControl, launcher: KernelLauncher | None) -> AttemptOutcome:
        return run_http(request, control)


#: the http kind (the registry's, :data:`nbflow.kinds.KINDS`)
HTTP = HttpKind()


def run_http(request: TaskRequest, control: AttemptControl) -> AttemptOutcome:
    """Run one attempt of an HTTP task; never raises for anything the server does."""
    import urllib.error
    import urllib.parse
    import urllib.request

    started = utcnow()
    spec = request.target
    request.log_path.parent.mkdir(parents=True, exist_ok=True)
    log = CappedLog(request.log_path)
    state, error, ename = states.SUCCESS, None, None
    params = {k: v for k, v in request.parameters.items() if k not in ("upstream", "product")}
    method = spec["method"]
    url, body = spec["url"], None
    if method in ("GET", "DELETE", "HEAD"):
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params, doseq=True)
    else:
        body = json.dumps({"params": params, "upstream": request.parameters.get("upstream", {})}).encode()
    headers = {"Content-Type": "application/json", **spec.get("headers", {})} if body else dict(spec.get("headers", {}))
    http_request = urllib.request.Request(url, data=body, headers=headers, method=method)
    timeout = request.timeout or spec.get("timeout", 60.0)
    try:
        if control.stopped:
            raise InterruptedError("stopped before it started")
        try:
            response = urllib.request.urlopen(http_request, timeout=timeout)  # noqa: S310 - the task's own URL
        except urllib.error.HTTPError as e:
            response = e  # an error status is an answer: checked below like any other
        with response:
            status, content = response.status, response.read()
        log.write(f"{method} {url} -> {status} ({len(content)} bytes)\n")
        if status != spec["expect_status"]:
            state, ename = states.FAILED, "UnexpectedStatus"
            error = f"UnexpectedStatus: {method} {spec['url']} answered {status}, expected {spec['expect_status']}"
            log.write(content[:2000].decode("utf-8", errors="replace") + "\n")
        elif request.products:
            product = request.products[0]
            Path(product).parent.mkdir(parents=True, exist_ok=True)
            Path(product).write_bytes(content)
            log.write(f"saved the response to {product}\n")
    except Exception as e:  # a server that is down or slow fails the attempt, never the run
        state, ename = states.FAILED, type(e).__name__
        error = f"{ename}: {e}"
    finally:
        log_tail = log.read_tail()
        log.close()
    state, error, ename = stopped_outcome(control, request, state, error, ename, "its request was abandoned")
    return AttemptOutcome(state, started, utcnow(), error=error, log=log_tail, ename=ename)
