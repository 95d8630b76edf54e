"""Output floods: a chatty notebook succeeds, what is kept is bounded, and the cut is stated.

Each flood runs in a real kernel under a real ``nbflow run`` process; the tests check the
exit code, the recorded state, the executed notebook on disk (its size, the note saying
how much was cut), the log (its tail in the store, ``nbflow logs``) and that no kernel
outlives the run.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from nbflow.errors import InvalidSettingsError
from nbflow.execution.logs import LOG_FILE_CAP
from nbflow.history import open_store
from nbflow.kinds.notebook import iopub
from nbflow.kinds.notebook.outputs import ENVELOPE
from nbflow.project.settings import MAX_CELL_OUTPUT, load_project, parse_size
from tests.conftest import write_notebook

MB = 10**6
PID = "import os, pathlib\npathlib.Path('kernel.pid').write_text(str(os.getpid()))"
AFTER = "print('after the flood')"
NOTE = re.compile(
    r"\[nbflow: ([\d.]+) (MB|kB) of this cell's output was cut \(limit ([\d.]+ [kM]B), setting max_cell_output\)\]"
)
LOG_NOTE = re.compile(r"\[nbflow: ([\d.]+) (MB|kB) of the output of cell In \[\d+\] was cut from the executed notebook")


def _vm_hwm(pid: int) -> int:
    """The peak resident memory of the process itself (not its children), in bytes."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _nbflow_run(folder: Path) -> tuple[int, dict[str, Any], int]:
    """``nbflow run folder --json`` as a process: (exit code, its JSON, its own peak memory in bytes)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbflow", "run", str(folder), "--json", "--workers", "1", "--warm-kernels", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    peak, deadline = 0, time.monotonic() + 240
    while time.monotonic() < deadline:
        peak = max(peak, _vm_hwm(proc.pid))
        try:
            proc.wait(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            continue
    out, err = proc.communicate(timeout=30)
    assert out, err[-3000:]
    return proc.returncode, json.loads(out), peak


def _kernel_gone(folder: Path) -> bool:
    """The kernel that ran the notebook (its pid written by the notebook) has exited, waiting up to a minute."""
    pid = int((folder / "kernel.pid").read_text())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
            psutil.Process(pid).wait(timeout=0.5)
        except psutil.NoSuchProcess:
            return True
        except psutil.TimeoutExpired:
            continue
    return False


def _flood(
    folder: Path,
    name: str,
    *cells: str,
    toml: str = "",
    metadata: dict[str, Any] | None = None,
    parameters: str = "upstream = None",
) -> dict[str, Any]:
    """Run a one-notebook pipeline whose cells flood; check what every flood must give, return the facts."""
    path = write_notebook(folder, name, parameters, PID, *cells, AFTER)
    if metadata:
        nb = nbformat.read(path, as_version=4)
        nb.metadata["nbflow"] = metadata
        nbformat.write(nb, path)
    if toml:
        (folder / "nbflow.toml").write_text(toml)
    code, report, peak = _nbflow_run(folder)
    assert code == 0, report
    assert report["state"] == "success" and report["tasks"][name]["state"] == "success", report
    with open_store(folder, read_only=True) as store:
        recorded = store.get_tasks(report["run_id"])[name]
        log_tail = store.get_log(report["run_id"], name, 1) or ""
    assert recorded.state == "success"
    executed = Path(report["tasks"][name]["output_notebook"])
    nb = nbformat.read(executed, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[-1].outputs[0]["text"] == "after the flood\n", "the cell after the flood ran and kept its output"
    log = executed.with_suffix(".log")
    assert log.stat().st_size < LOG_FILE_CAP + 10_000, "the log file is capped"
    logs = subprocess.run(
        [sys.executable, "-m", "nbflow", "logs", str(folder), name], capture_output=True, text=True, timeout=120
    )
    assert logs.returncode == 0, logs.stderr
    assert _kernel_gone(folder), "no kernel outlives the run"
    return {
        "nb": nb,
        "size": executed.stat().st_size,
        "log": log.read_text(errors="replace"),
        "log_tail": log_tail,
        "nbflow_logs": logs.stdout,
        "peak": peak,
    }


def _cut_mb(text: str, pattern: re.Pattern[str] = NOTE) -> tuple[float, str]:
    """The figure a note gives (in MB) and the limit it names."""
    match = pattern.search(text)
    assert match, text[-500:]
    figure = float(match.group(1)) / (1000 if match.group(2) == "kB" else 1)
    return figure, match.group(3) if pattern is NOTE else ""


def _notes(nb: Any) -> list[str]:
    return [
        o.text for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr" and "[nbflow:" in o.text
    ]


def test_a_stdout_flood_succeeds_keeps_its_head_and_says_how_much_was_cut(tmp_path: Path) -> None:
    total = 400 * 100_000
    facts = _flood(tmp_path, "chatty", "for i in range(400):\n    print('x' * 99_999)")
    nb = facts["nb"]
    flood = nb.cells[-2].outputs
    assert [o.output_type for o in flood] == ["stream", "stream"] and flood[0].name == "stdout"
    kept = len(flood[0].text)
    assert MAX_CELL_OUTPUT - 200 < kept <= MAX_CELL_OUTPUT and set(flood[0].text) == {"x", "\n"}
    figure, limit = _cut_mb(flood[1].text)
    assert limit == "5 MB" and figure == pytest.approx((total - kept) / MB, abs=0.05)
    assert facts["size"] < MAX_CELL_OUTPUT + 100_000, "the executed notebook is bounded by the limit"
    # the log keeps its own first 10 MB, and its tail (the store's, nbflow logs) states the cut
    assert "[nbflow: output cut at" in facts["log"]
    for text in (facts["log_tail"], facts["nbflow_logs"]):
        assert _cut_mb(text, LOG_NOTE)[0] == pytest.approx(figure)
    assert facts["peak"] < 300 * 2**20, f"nbflow run peaked at {facts['peak'] / 2**20:.0f} MiB"


def test_a_stderr_flood_is_cut_at_the_notebooks_own_limit(tmp_path: Path) -> None:
    total = 300 * 100_000
    facts = _flood(
        tmp_path,
        "warns",
        "import sys\nfor i in range(300):\n    sys.stderr.write('w' * 99_999 + '\\n')",
        metadata={"max_cell_output": "1MB"},
    )
    flood = facts["nb"].cells[-2].outputs
    assert flood[0].name == "stderr" and set(flood[0].text) == {"w", "\n"}
    assert len(flood[0].text) <= MB
    figure, limit = _cut_mb(flood[-1].text)
    assert limit == "1 MB" and figure == pytest.approx((total - len(flood[0].text)) / MB, abs=0.05)
    assert facts["size"] < MB + 100_000
    assert _cut_mb(facts["log_tail"], LOG_NOTE)[0] == pytest.approx(figure)


def test_one_50_mb_line_is_cut_at_the_tasks_limit(tmp_path: Path) -> None:
    facts = _flood(
        tmp_path,
        "line",
        "print('y' * 50_000_000)",
        toml='max_cell_output = "3MB"\n[tasks.line]\nmax_cell_output = "2MB"\n',
    )
    flood = facts["nb"].cells[-2].outputs
    assert set(flood[0].text) == {"y"} and 2 * MB - 200 < len(flood[0].text) <= 2 * MB
    figure, limit = _cut_mb(flood[-1].text)
    assert limit == "2 MB" and figure == pytest.approx((50_000_001 - len(flood[0].text)) / MB, abs=0.05)
    assert facts["size"] < 2 * MB + 100_000
    assert facts["peak"] < 300 * 2**20


def test_display_floods_updates_and_progress_bars(tmp_path: Path) -> None:
    shown = "<b>{i}</b>" + "z" * 500
    facts = _flood(
        tmp_path,
        "displays",
        f"from IPython.display import HTML, display\nfor i in range(5000):\n    display(HTML(f'{shown}'))",
        "from IPython.display import HTML, display\nh = display(HTML('start'), display_id=True)\n"
        "for i in range(3000):\n    h.update(HTML(f'step {i}'))",
        "from IPython.display import clear_output\nfor i in range(3000):\n"
        "    clear_output(wait=True)\n    print(f'progress {i}', flush=True)",
        toml='max_cell_output = "1MB"\n',
    )
    nb = facts["nb"]
    flood, updated, progress = nb.cells[-4].outputs, nb.cells[-3].outputs, nb.cells[-2].outputs
    html = [o for o in flood if o.output_type == "display_data"]
    assert 500 < len(html) < 5000 and html[0].data["text/html"] == shown.format(i=0)
    assert [o.data["text/html"] for o in html] == [shown.format(i=i) for i in range(len(html))], "kept in order"
    figure, limit = _cut_mb(flood[-1].text)
    sent = sum(len(shown.format(i=i)) for i in range(5000))
    assert limit == "1 MB" and (sent - MB) / MB < figure < (sent + 5000 * 200) / MB
    assert [o.data["text/html"] for o in updated] == ["step 2999"], "updates replace the display in place"
    assert [o.text for o in progress] == ["progress 2999\n"], "a progress bar keeps its last state"
    assert len(_notes(nb)) == 1 and facts["size"] < MB + 200_000


def test_many_small_messages_are_kept_whole_in_one_output(tmp_path: Path) -> None:
    facts = _flood(tmp_path, "ticks", "for i in range(20_000):\n    print(i, flush=True)")
    outputs = facts["nb"].cells[-2].outputs
    assert [o.output_type for o in outputs] == ["stream"]
    assert outputs[0].text == "".join(f"{i}\n" for i in range(20_000))
    assert not _notes(facts["nb"]) and "[nbflow:" not in facts["log"]


def test_a_cut_leaves_no_piece_of_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "qz7Kx-s3cr3t-val-004200"  # with the space after it, a period of 24: the cut lands inside one
    limit = MB
    assert 0 < (limit - ENVELOPE) % (len(secret) + 1) < len(secret) - 4, "the cut must fall inside a secret"
    monkeypatch.setenv("NBFLOW_FLOOD_TOKEN", secret)
    facts = _flood(
        tmp_path,
        "leaky",
        "print((api_token + ' ') * 600_000)",
        parameters="upstream = None\napi_token = None",
        toml='max_cell_output = "1MB"\n[secrets]\napi_token = "NBFLOW_FLOOD_TOKEN"\n',
    )
    written = "\n".join(
        p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and "duckdb" not in p.name
    )
    written += facts["log_tail"] + facts["nbflow_logs"]
    assert "[secret] [secret]" in written
    assert secret[:4] not in written, "no secret, and no first characters of one"
    _cut_mb(facts["nb"].cells[-2].outputs[-1].text)


# -- the setting, and the reader of large messages --------------------------------------------------


def test_max_cell_output_is_a_size_project_wide_per_task_and_in_the_notebook(tmp_path: Path) -> None:
    assert [parse_size(v, "f", "k") for v in (1, 5_000_000, "5MB", "5 mb", "512KiB", "1.5GB", "2MiB", "100")] == [
        1,
        5 * MB,
        5 * MB,
        5 * MB,
        512 * 1024,
        1500 * MB,
        2 * 2**20,
        100,
    ]
    (tmp_path / "nbflow.toml").write_text('max_cell_output = "20MB"\n[tasks.small]\nmax_cell_output = 1000\n')
    project = load_project(tmp_path)
    assert project.for_task("big").max_cell_output == 20 * MB
    assert project.for_task("small").max_cell_output == 1000
    assert project.for_task("small", {"max_cell_output": "2kB"}, "small.ipynb").max_cell_output == 2000
    with pytest.raises(
        InvalidSettingsError, match=r"^small\.ipynb \(metadata 'nbflow'\).*'max_cell_output' must be a size"
    ):
        project.for_task("small", {"max_cell_output": "lots"}, "small.ipynb")


@pytest.mark.parametrize("value", ["0", "-1", "true", '"lots"', '"0MB"', '"5 TB"', "inf", '"MB"'])
def test_a_bad_max_cell_output_names_its_file(tmp_path: Path, value: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.nbflow]\nmax_cell_output = {value}\n")
    with pytest.raises(InvalidSettingsError) as info:
        load_project(tmp_path)
    message = str(info.value)
    assert message.startswith("pyproject.toml [tool.nbflow]") and "'max_cell_output' must be a size like" in message


def test_a_json_string_is_read_in_chunks_keeping_only_its_head(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iopub, "CHUNK", 7)  # chunk edges fall inside escapes and UTF-8 characters
    alphabet = ["a", "é", "€", "😀", "\\", '"', "\n", "\x1b", "\t", "u", "\x00", "\\u"]
    rng = random.Random(7)
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        content = json.dumps({"name": "stdout", "text": text}, ensure_ascii=False).encode()
        keep = rng.randint(0, 70)
        start = content.index(b'"text": "') + len(b'"text": "')
        head, unread, end = iopub.read_json_string(memoryview(content), start, keep)
        assert (head, unread, content[end:]) == (text[:keep], len(text) - len(head), b'"}'), (text, keep)
