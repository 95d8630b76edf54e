"""A run as a JUnit XML report, the format CI servers read: one testcase per task. Pure.

- a task that succeeded passes;
- a failed task carries a ``<failure>`` with its error and the tail of its traceback, and
  its captured output in ``<system-out>``;
- an ``interrupted`` task is an ``<error>`` (it did not finish);
- ``upstream_failed``, ``skipped`` and ``up_to_date`` tasks are ``<skipped>`` with the reason.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from nbflow import states
from nbflow.store.base import AttemptRecord, RunRecord, TaskRecord

#: characters XML 1.0 cannot hold (a notebook's output may contain them)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
TRACEBACK_TAIL = 20_000
OUTPUT_TAIL = 20_000


def _text(value: str | None, limit: int) -> str:
    text = _NOT_XML.sub("?", value or "")
    return text if len(text) <= limit else "…" + text[-limit:]


def _seconds(value: float | None) -> str:
    return f"{max(0.0, value or 0.0):.3f}"


def _skip_reason(task: TaskRecord) -> str:
    if task.state == states.UP_TO_DATE:
        return f"up to date: {task.reason}" if task.reason else "up to date"
    return task.error or task.state


def run_to_junit(
    run: RunRecord,
    tasks: Mapping[str, TaskRecord],
    attempts: Mapping[str, Sequence[AttemptRecord]] | None = None,
    logs: Mapping[str, str] | None = None,
) -> str:
    """The JUnit XML text of a run: ``attempts`` and ``logs`` (by task) add tracebacks and output."""
    attempts = attempts or {}
    logs = logs or {}
    suite_name = f"nbflow.{Path(run.pipeline).name or 'pipeline'}"
    failed = [t for t in tasks.values() if t.state == states.FAILED]
    errors = [t for t in tasks.values() if t.state == states.INTERRUPTED]
    skipped = [t for t in tasks.values() if t.state in (states.UPSTREAM_FAILED, states.SKIPPED, states.UP_TO_DATE)]
    root = ET.Element(
        "testsuites",
        name="nbflow",
        tests=str(len(tasks)),
        failures=str(len(failed)),
        errors=str(len(errors)),
        time=_seconds(run.duration_s),
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=suite_name,
        tests=str(len(tasks)),
        failures=str(len(failed)),
        errors=str(len(errors)),
        skipped=str(len(skipped)),
        time=_seconds(run.duration_s),
        timestamp=run.started_at.isoformat(timespec="seconds"),
        hostname=run.hostname or "",
        id=run.run_id,
    )
    props = ET.SubElement(suite, "properties")
    for name, value in [("run_id", run.run_id), ("state", run.state), ("pipeline", run.pipeline)] + [
        (f"param.{k}", str(v)) for k, v in sorted(run.params.items())
    ]:
        ET.SubElement(props, "property", name=name, value=value)
    for name, task in tasks.items():
        case = ET.SubElement(suite, "testcase", name=name, classname=suite_name, time=_seconds(task.duration_s))
        tried = attempts.get(name, [])
        attempt = tried[-1] if tried else None
        if task.state == states.FAILED:
            ename = (task.error or "").split(":", 1)[0] if task.error else "failed"
            failure = ET.SubElement(case, "failure", type=ename, message=_text(task.error, 1000))
            failure.text = _text(attempt.traceback if attempt else task.error, TRACEBACK_TAIL)
        elif task.state == states.INTERRUPTED:
            ET.SubElement(case, "error", type="interrupted", message=_text(task.error or "interrupted", 1000))
        elif task.state in (states.UPSTREAM_FAILED, states.SKIPPED, states.UP_TO_DATE):
            ET.SubElement(case, "skipped", type=task.state, message=_text(_skip_reason(task), 1000))
        elif task.state != states.SUCCESS:  # a run recorded before it ended (pending, running)
            ET.SubElement(case, "skipped", type=task.state, message=f"did not finish ({task.state})")
        out = f"executed notebook: {task.output_notebook}\n\n" if task.output_notebook else ""
        if logs.get(name) or out:
            ET.SubElement(case, "system-out").text = out + _text(logs.get(name), OUTPUT_TAIL)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
