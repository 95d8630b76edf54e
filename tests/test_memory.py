"""The orchestrator's memory does not grow with the size of notebook outputs."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import nbformat

from nbflow import Pipeline

MB = 3


def _loud_run(folder: Path, cells: int) -> tuple[int, Path, str | None]:
    """Run a notebook whose ``cells`` cells print MB MiB each, then fail; (peak traced bytes, notebook, error)."""
    from tests.conftest import write_notebook

    chunk = "print(('{}' + 'x' * 1023 + '\\n').format(%d) * %d, end='')"
    write_notebook(folder, "loud", "upstream = None", *(chunk % (i, MB * 1024) for i in range(cells)), "1 / 0")
    tracemalloc.start()
    try:
        result = Pipeline.from_dir(folder).run(workers=1, warm_kernels=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    task = result.tasks["loud"]
    return peak, Path(task.output_notebook), task.error


def test_outputs_go_to_disk_cell_by_cell_not_into_memory(tmp_path: Path) -> None:
    few, _, _ = _loud_run(tmp_path / "few", 2)
    peak, executed, error = _loud_run(tmp_path / "many", 12)
    total = 12 * MB * 2**20
    assert peak < 1.3 * few, f"peak {peak / 2**20:.0f} MiB for 12 cells, {few / 2**20:.0f} MiB for 2"
    assert peak < total, f"peak {peak / 2**20:.0f} MiB for {total / 2**20:.0f} MiB of outputs"

    assert error is not None and "ZeroDivisionError" in error  # the failing cell is still found
    nb = nbformat.read(executed, as_version=4)
    nbformat.validate(nb)
    printed = [c for c in nb.cells if c.cell_type == "code" and c.outputs and c.outputs[0].get("name") == "stdout"]
    assert [sum(len(o.text) for o in c.outputs) for c in printed] == [
        MB * 1024 * (1024 + len(str(i))) for i in range(12)
    ], "every output is kept in full"
    assert nb.cells[0].cell_type == "markdown" and "An Exception was encountered" in nb.cells[0].source
    assert not list(executed.parent.glob(".*.spool")), "the spool file is removed"
