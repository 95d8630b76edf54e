"""The example pipeline in notebooks/ runs headlessly, deterministically, through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import REPO, nbflow_process


def _copy_example(tmp_path: Path) -> Path:
    root = tmp_path / "example"
    shutil.copytree(
        REPO / "notebooks",
        root,
        ignore=shutil.ignore_patterns("_nbflow", "output", ".ipynb_checkpoints", "__pycache__"),
    )
    return root


def test_example_graph_has_a_diamond(tmp_path: Path) -> None:
    proc = nbflow_process("dag", str(_copy_example(tmp_path)), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    graph = json.loads(proc.stdout)
    assert graph["nodes"][0] == "ingest" and graph["nodes"][-1] == "report"
    edges = {tuple(e) for e in graph["edges"]}
    assert {("features", "train"), ("features", "baseline"), ("train", "evaluate"), ("baseline", "evaluate")} <= edges


def test_example_runs_end_to_end_and_is_deterministic(tmp_path: Path) -> None:
    root = _copy_example(tmp_path)
    first = nbflow_process("run", str(root), "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert {t["state"] for t in report["tasks"].values()} == {"success"}
    assert len(report["tasks"]) == 9
    assert json.loads((root / "output/model_card.json").read_text())["beats_baseline"] is True
    metrics = json.loads((root / "output/metrics.json").read_text())
    assert metrics["model"]["auc"] > metrics["baseline"]["auc"] > 0.5
    text = (root / "output/report.md").read_text()
    assert "set aside by validation: 4" in text
    assert "| basic |" in text

    second = nbflow_process("run", str(root), "-p", "ingest.seed=42", "--workers", "1", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads((root / "output/metrics.json").read_text()) == metrics

    failing = nbflow_process("run", str(root), "-p", "validate.max_bad_fraction=0", "--json")
    assert failing.returncode == 1
    states = {n: t["state"] for n, t in json.loads(failing.stdout)["tasks"].items()}
    assert states["validate"] == "failed"
    assert {states[n] for n in ("features", "train", "baseline", "evaluate", "report", "churn_by_plan")} == {
        "upstream_failed"
    }
