"""nbflow run --junit: a JUnit XML report a CI server reads, checked against the JUnit schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import nbflow_process

etree = pytest.importorskip("lxml.etree", reason="the test extra installs lxml")
SCHEMA = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "schemas" / "junit-10.xsd")))


def _report(path: Path):
    doc = etree.parse(str(path))
    SCHEMA.assertValid(doc)
    return doc, {case.get("name"): case for case in doc.iter("testcase")}


def test_a_failing_pipeline_reports_its_failure_and_what_it_skipped(make_notebook, tmp_path: Path) -> None:
    make_notebook("load", "upstream = None\nrows = 1", 'print(f"loaded {rows} rows")')
    make_notebook("boom", 'upstream = ["load"]', "raise ValueError('bad row 7')")
    make_notebook("report", 'upstream = ["boom"]', "print('never')")
    out = tmp_path / "reports" / "junit.xml"
    proc = nbflow_process("run", str(tmp_path), "--junit", str(out), "-p", "load.rows=3")
    assert proc.returncode == 1, proc.stderr
    doc, cases = _report(out)
    suite = doc.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "3",
        "1",
        "0",
        "1",
    )
    assert set(cases) == {"load", "boom", "report"}
    assert float(cases["load"].get("time")) > 0 and len(cases["load"]) == 1  # passed: just its output
    assert "loaded 3 rows" in cases["load"].find("system-out").text
    failure = cases["boom"].find("failure")
    assert failure.get("type") == "ValueError" and "bad row 7" in failure.get("message")
    assert "bad row 7" in failure.text and "ValueError" in failure.text, "the traceback's tail"
    assert "executed notebook: " in cases["boom"].find("system-out").text
    skipped = cases["report"].find("skipped")
    assert skipped.get("type") == "upstream_failed" and "boom" in skipped.get("message")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["state"] == "failed" and props["param.load.rows"] == "3"


def test_an_up_to_date_rerun_reports_skips_with_the_reason(make_notebook, tmp_path: Path) -> None:
    make_notebook("a", "upstream = None", "pass")
    assert nbflow_process("run", str(tmp_path)).returncode == 0
    out = tmp_path / "junit.xml"
    assert nbflow_process("run", str(tmp_path), "--junit", str(out)).returncode == 0
    _doc, cases = _report(out)
    skipped = cases["a"].find("skipped")
    assert skipped.get("type") == "up_to_date" and skipped.get("message").startswith("up to date")


def test_output_off_a_terminal_is_plain_lines_ending_with_a_summary(make_notebook, tmp_path: Path) -> None:
    make_notebook("a", "upstream = None", "print('hello')")
    make_notebook("b", 'upstream = ["a"]', "raise ValueError('no')")
    proc = nbflow_process("run", str(tmp_path))  # a pipe, as in CI
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "\x1b[" not in text, "no colour codes or spinners"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]  # stdout stays for --json
    assert re.search(
        r"run \S+ failed in [\d.]+s: 1 success, 1 failed|run \S+ failed in [\d.]+s: 1 failed, 1 success",
        "\n".join(lines),
    )
