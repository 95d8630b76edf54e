"""Runs with real kernels: order, injection, isolation of failures, parallelism, the record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from nbflow.errors import CycleError, UnknownTaskError
from nbflow.pipeline import Pipeline
from tests.conftest import nbflow_process, notebook_path, rendezvous, write_notebook

WRITE_JSON = "import json, os\njson.dump({vars}, open(product, 'w'))"


def test_diamond_injects_upstream_products_and_runs_in_each_notebooks_folder(tmp_path: Path) -> None:
    write_notebook(
        tmp_path,
        "load",
        "upstream = None\nproduct = {'data': 'out/load.json'}",
        "import json, os\njson.dump({'cwd': os.getcwd(), 'rows': [1, 2, 3]}, open(product['data'], 'w'))",
    )
    write_notebook(
        tmp_path / "etl",
        "double",
        "upstream = ['load']\nproduct = 'out/double.json'",
        "import json, os\nrows = json.load(open(upstream['load']['data']))['rows']\n"
        "json.dump({'cwd': os.getcwd(), 'rows': [2 * r for r in rows]}, open(product, 'w'))",
    )
    write_notebook(
        tmp_path,
        "square",
        "upstream = ['load']\nproduct = 'out/square.json'",
        "import json\nrows = json.load(open(upstream['load']['data']))['rows']\n"
        "json.dump({'rows': [r * r for r in rows]}, open(product, 'w'))",
    )
    write_notebook(
        tmp_path,
        "total",
        "upstream = ['etl/double', 'square']\nproduct = 'out/total.json'",
        "import json\nparts = {k: json.load(open(v))['rows'] for k, v in upstream.items()}\n"
        "json.dump({'upstream': upstream, 'sum': sum(map(sum, parts.values()))}, open(product, 'w'))",
    )
    result = Pipeline.from_dir(tmp_path).run(workers=2)
    assert result.ok, result.tasks
    assert result.states == {"load": "success", "etl/double": "success", "square": "success", "total": "success"}

    assert json.loads((tmp_path / "out/load.json").read_text())["cwd"] == str(tmp_path)
    assert json.loads((tmp_path / "etl/out/double.json").read_text())["cwd"] == str(tmp_path / "etl")
    total = json.loads((tmp_path / "out/total.json").read_text())
    assert total["sum"] == 12 + 14
    assert total["upstream"] == {
        "etl/double": str(tmp_path / "etl/out/double.json"),
        "square": str(tmp_path / "out/square.json"),
    }

    # the record: every task, attempt and executed notebook
    with Pipeline.from_dir(tmp_path).open_store() as store:
        run = store.get_run(result.run_id)
        assert run.state == "success" and run.pipeline == str(tmp_path) and run.ended_at >= run.started_at
        attempts = {a.task: a for a in store.get_attempts(result.run_id)}
        assert set(attempts) == {"load", "etl/double", "square", "total"}
        assert attempts["total"].parameters["upstream"]["square"] == str(tmp_path / "out/square.json")
        assert attempts["load"].parameters == {"upstream": {}, "product": {"data": str(tmp_path / "out/load.json")}}
        executed = nbformat.read(attempts["etl/double"].output_notebook, as_version=4)
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and "upstream = {" in injected[0].source
    assert Path(attempts["etl/double"].output_notebook).is_relative_to(tmp_path / "_nbflow" / "runs" / result.run_id)


def test_a_failure_blocks_only_its_downstream_and_keeps_its_notebook_and_traceback(tmp_path: Path) -> None:
    write_notebook(tmp_path, "root", "upstream = None")
    shutil.copy(notebook_path("raises_in_cell_2.ipynb"), tmp_path / "bad.ipynb")
    nb = nbformat.read(tmp_path / "bad.ipynb", as_version=4)
    nb.cells[0].source = "upstream = ['root']"
    nbformat.write(nb, tmp_path / "bad.ipynb")
    write_notebook(tmp_path, "after_bad", "upstream = ['bad']", "print('must not run')")
    write_notebook(tmp_path, "good", "upstream = ['root']", "import time; time.sleep(1); print('good ran')")
    write_notebook(tmp_path, "after_good", "upstream = ['good']", "print('after good ran')")

    result = Pipeline.from_dir(tmp_path).run(workers=2)
    assert not result.ok and result.state == "failed" and result.exit_code == 1
    assert result.states == {
        "root": "success",
        "bad": "failed",
        "after_bad": "upstream_failed",
        "good": "success",
        "after_good": "success",
    }
    bad = result.tasks["bad"]
    assert bad.error.startswith("ValueError: bad value in cell 2")
    executed = nbformat.read(bad.output_notebook, as_version=4)
    assert any(o.get("ename") == "ValueError" for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    with Pipeline.from_dir(tmp_path).open_store() as store:
        [attempt] = store.get_attempts(result.run_id, "bad")
        assert "raise ValueError('bad value in cell 2')" in attempt.traceback
        assert "\x1b[" not in attempt.traceback
        assert store.get_log(result.run_id, "good", 1) == "good ran\n"
        assert store.get_attempts(result.run_id, "after_bad") == []


def test_parameters_arrive_typed_and_as_data_never_as_code(tmp_path: Path) -> None:
    write_notebook(
        tmp_path,
        "p",
        "upstream = None\nproduct = 'out/p.json'\nn = 1\ns = 'x'\ncfg = {}\nlr = 0.1",
        "import json\njson.dump({'n': n, 'n_type': type(n).__name__, 's': s, 'cfg': cfg, 'lr': lr}, open(product, 'w'))",
    )
    write_notebook(tmp_path, "q", "upstream = None\nn = 1", "assert n == 3, n")
    evil = 'x"; import pathlib; pathlib.Path("PWNED").write_text("1"); y="\\' + "'; z='\n"
    result = Pipeline.from_dir(tmp_path).run(params={"n": 3, "s": evil, "cfg": {"a": [1, 2]}, "p.lr": 0.5}, workers=2)
    assert result.ok, result.tasks
    got = json.loads((tmp_path / "out/p.json").read_text())
    assert got == {"n": 3, "n_type": "int", "s": evil, "cfg": {"a": [1, 2]}, "lr": 0.5}
    assert not (tmp_path / "PWNED").exists()
    with Pipeline.from_dir(tmp_path).open_store() as store:
        assert store.get_run(result.run_id).params == {"n": 3, "s": evil, "cfg": {"a": [1, 2]}, "p.lr": 0.5}


def test_independent_tasks_really_run_at_the_same_time(tmp_path: Path) -> None:
    meet = tmp_path / "meet"
    meet.mkdir()
    for name, other in (("left", "right"), ("right", "left")):
        write_notebook(tmp_path, name, "upstream = None", rendezvous(meet, name, other))
    result = Pipeline.from_dir(tmp_path).run(workers=2)
    assert result.ok, {n: t.error for n, t in result.tasks.items()}
    left, right = result.tasks["left"], result.tasks["right"]
    assert left.started_at < right.ended_at and right.started_at < left.ended_at, "the two attempts did not overlap"


def test_kernel_death_and_missing_product_are_failed_attempts(tmp_path: Path) -> None:
    shutil.copy(notebook_path("kernel_dies.ipynb"), tmp_path / "dies.ipynb")
    write_notebook(tmp_path, "lazy", "upstream = None\nproduct = 'never_written.csv'", "x = 1")
    result = Pipeline.from_dir(tmp_path).run(workers=2)
    assert result.states == {"dies": "failed", "lazy": "failed"}
    assert result.tasks["dies"].error.startswith("KernelDied")
    assert (
        result.tasks["lazy"].error
        == f"MissingProduct: the notebook ran but did not write {tmp_path / 'never_written.csv'}"
    )


def test_only_runs_the_tasks_and_what_they_need(tmp_path: Path) -> None:
    write_notebook(tmp_path, "a", "upstream = None")
    write_notebook(tmp_path, "b", "upstream = ['a']")
    write_notebook(tmp_path, "c", "upstream = ['a']")
    result = Pipeline.from_dir(tmp_path).run(only=["b"], workers=1)
    assert result.states == {"a": "success", "b": "success"}
    assert result.run.selected == ["b"]


def test_python_api_edges(tmp_path: Path) -> None:
    write_notebook(tmp_path, "extract", "upstream = None\nproduct = 'e.txt'", "open(product, 'w').write('e')")
    write_notebook(tmp_path, "load", "upstream = None\nproduct = 'l.txt'", "open(product, 'w').write('l')")
    write_notebook(tmp_path, "report", "upstream = None", "assert sorted(upstream) == ['extract', 'load'], upstream")
    write_notebook(tmp_path, "publish", None, "x = 1")
    pipeline = Pipeline.from_dir(tmp_path)
    extract, load, report, publish = (pipeline[n] for n in ("extract", "load", "report", "publish"))
    assert ([extract, load] >> report) is report
    report >> publish
    assert report.upstream == ("extract", "load") and publish.upstream == ("report",)
    publish.set_upstream(load)
    load.set_downstream(publish)  # adding an edge twice is harmless
    assert publish.upstream == ("report", "load")
    with pytest.raises(CycleError, match="publish -> report -> publish|report -> publish -> report"):
        publish >> report
    assert report.upstream == ("extract", "load"), "a refused edge is not kept"
    with pytest.raises(UnknownTaskError, match="Did you mean 'report'"):
        pipeline["reprot"]
    result = pipeline.run(workers=2)
    assert result.ok, result.tasks
    assert pipeline.dag.order.index("report") < pipeline.dag.order.index("publish")


def test_many_kernels_start_at_once_and_kernel_noise_stays_out_of_the_output(tmp_path: Path) -> None:
    for i in range(12):
        write_notebook(
            tmp_path,
            f"n{i:02d}",
            "upstream = None",
            "import os, sys\nos.write(2, b'KERNEL-NOISE\\n')\nprint('cell output', os.getpid())",
        )
    proc = nbflow_process("run", str(tmp_path), "--workers", "12", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {t["state"] for t in report["tasks"].values()} == {"success"}
    assert all(t["attempts"] == 1 for t in report["tasks"].values())
    assert "KERNEL-NOISE" not in proc.stdout + proc.stderr
    run_dir = tmp_path / "_nbflow" / "runs" / report["run_id"]
    assert "KERNEL-NOISE" in (run_dir / "n00" / "attempt-1.kernel.log").read_text()
    assert (run_dir / "n00" / "attempt-1.log").read_text().startswith("cell output")


def test_resume_reruns_a_task_whose_code_changed_even_after_it_was_reused(tmp_path: Path) -> None:
    from nbflow.store.memory import MemoryRunStore

    store = MemoryRunStore()
    write_notebook(tmp_path, "a", "upstream = None\nproduct = 'a.txt'", "open(product, 'w').write('v1')")
    write_notebook(tmp_path, "b", "upstream = ['a']", "import pathlib\nassert pathlib.Path('ok').exists()")
    assert Pipeline.from_dir(tmp_path).run(workers=1, store=store).states == {"a": "success", "b": "failed"}
    again = Pipeline.from_dir(tmp_path).resume(store=store, workers=1)
    assert again.states == {"a": "up_to_date", "b": "failed"}
    write_notebook(tmp_path, "a", "upstream = None\nproduct = 'a.txt'", "open(product, 'w').write('v2')")
    (tmp_path / "ok").touch()
    third = Pipeline.from_dir(tmp_path).resume(store=store, workers=1)
    assert third.states == {"a": "success", "b": "success"}
    assert (tmp_path / "a.txt").read_text() == "v2"
    assert third.run.resumed_from == again.run_id


def test_a_product_left_by_an_earlier_run_does_not_count_as_written(tmp_path: Path) -> None:
    write_notebook(
        tmp_path,
        "maybe",
        "upstream = None\nproduct = 'out.txt'\nwrite = True",
        "if write:\n    open(product, 'w').write('fresh')",
    )
    assert Pipeline.from_dir(tmp_path).run(workers=1).ok
    stale = Pipeline.from_dir(tmp_path).run(params={"write": False}, workers=1)
    assert stale.states == {"maybe": "failed"}
    assert stale.tasks["maybe"].error.startswith("MissingProduct")
