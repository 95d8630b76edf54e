"""Run an HTTP request task: one request, an expected status, the response saved as the product.

Parameters travel as data: in the query string for GET/DELETE/HEAD, in a JSON body
(``{"params": ..., "upstream": ...}``) otherwise.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from nbflow import states
from nbflow.execution.base import AttemptControl, AttemptOutcome, TaskRequest, stopped_outcome, utcnow
from nbflow.execution.logs import CappedLog


def run_http(request: TaskRequest, launcher: Any = None, control: AttemptControl | None = None) -> AttemptOutcome:
    """Run one attempt of an HTTP task; never raises for anything the server does."""
    control = control or AttemptControl()
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
