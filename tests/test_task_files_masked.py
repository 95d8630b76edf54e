"""A connection's credentials never land in the files of a run folder: the log and result of
a Python task's process, nor the kernel's own output file of a notebook attempt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbflow.kinds.python import redact_file
from nbflow.project.secrets import MASK, Redactor
from tests.conftest import nbflow_process, write_notebook

PASSWORD = "S3cretPassw0rd"
URI = f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"


def _files_holding(folder: Path, secret: bytes) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and secret in p.read_bytes()]


@pytest.mark.slow  # an nbflow process, kernels and a forked task
def test_no_file_of_a_run_holds_a_connections_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WH_URL", URI)
    (tmp_path / "nbflow.toml").write_text('[connections]\nwarehouse = "WH_URL"\n')
    (tmp_path / "nbflow_tasks.py").write_text(
        "def setup(pipeline):\n"
        "    @pipeline.task\n"
        "    def load():\n"
        "        import os, sys\n"
        "        print('connecting to', os.environ['WH_URL'])\n"
        "        os.write(2, ('raw ' + os.environ['WH_URL'] + '\\n').encode())\n"
        "        sys.stdout.flush()\n"
        "        raise ValueError('cannot reach ' + os.environ['WH_URL'])\n"
    )
    fd_write = (
        "import os\nos.write(2, ('to fd 2: ' + os.environ['WH_URL'] + '\\n').encode())\nprint(os.environ['WH_URL'])"
    )
    write_notebook(tmp_path, "report", None, fd_write)
    write_notebook(tmp_path, "broken", None, fd_write, "raise ValueError(os.environ['WH_URL'])")

    run = nbflow_process("run", str(tmp_path), "--json")
    assert run.returncode == 1, run.stderr
    tasks = json.loads(run.stdout)["tasks"]
    assert {name: t["state"] for name, t in tasks.items()} == {
        "load": "failed",
        "report": "success",
        "broken": "failed",
    }
    assert PASSWORD not in run.stdout + run.stderr

    assert _files_holding(tmp_path, PASSWORD.encode()) == []
    runs = tmp_path / "_nbflow" / "runs"
    (load_log,) = runs.glob("*/load/attempt-1.log")
    logged = load_log.read_text()
    assert f"connecting to {MASK}\n" in logged and f"raw {MASK}\n" in logged, logged
    assert "ValueError" in tasks["load"]["error"] and MASK in tasks["load"]["error"], tasks["load"]
    assert not list(runs.glob("*/load/attempt-1.result.json")), "the process's result is read, then removed"
    for task in ("report", "broken"):
        (kernel_log,) = runs.glob(f"*/{task}/attempt-1.kernel.log")
        assert f"to fd 2: {MASK}\n" in kernel_log.read_text(), task


def test_a_file_is_masked_in_chunks_that_cut_secrets_anywhere(tmp_path: Path) -> None:
    redactor = Redactor([PASSWORD])
    raw = b"\xff\xfe not utf-8, then " + ("x" * 5 + PASSWORD + "\r\n").encode() * 40 + b"\xe2\x82"
    path = tmp_path / "attempt-1.log"
    for chunk in (1, 3, len(PASSWORD) - 1, len(PASSWORD), 64, 1 << 20):
        path.write_bytes(raw)
        redact_file(path, redactor, chunk=chunk)
        assert path.read_bytes() == raw.replace(PASSWORD.encode(), MASK.encode()), chunk
    clean = tmp_path / "clean.log"
    clean.write_bytes(b"nothing secret\n")
    before = clean.stat()
    redact_file(clean, redactor)
    assert clean.stat().st_ino == before.st_ino, "a file without a secret is left as it is"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attempt-1.log", "clean.log"], "no file left behind"
