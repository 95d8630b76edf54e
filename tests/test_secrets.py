"""A secret reaches the notebook but never the executed notebook, the logs, the store or an alert."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from nbflow.pipeline import Pipeline
from tests.conftest import nbflow_process, write_notebook

SECRET = 's3cr3t-Tok"en\\val-42'  # a quote and a backslash: escaped forms must be masked too


def _everything_written(root: Path) -> str:
    """Every byte nbflow wrote: executed notebooks, logs, and the whole state store."""
    texts = [p.read_text(errors="replace") for p in (root / "_nbflow" / "runs").rglob("*") if p.is_file()]
    con = duckdb.connect(str(root / "_nbflow" / "state.duckdb"), read_only=True)
    try:
        for table in ("runs", "tasks", "attempts", "logs", "notifications"):
            texts.append(json.dumps(con.execute(f"SELECT * FROM {table}").fetchall(), default=str))
    finally:
        con.close()
    return "\n".join(texts)


def test_a_secret_is_used_but_never_written_down(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "nbflow.toml").write_text('[secrets]\napi_token = "EXAMPLE_API_TOKEN"\n')
    write_notebook(
        tmp_path,
        "call",
        "upstream = None\napi_token = None\nproduct = 'out.txt'",
        "open(product, 'w').write(str(len(api_token)))\nprint('token is', api_token)",
        "import time\nprint(api_token[:6], end='', flush=True)\ntime.sleep(0.3)\nprint(api_token[6:])",
        "from IPython.display import JSON, display\ndisplay(JSON({'t': api_token}), metadata={'k': api_token})\n"
        "api_token.encode()",
        "raise RuntimeError(f'the server refused {api_token!r}')",
    )
    monkeypatch.setenv("EXAMPLE_API_TOKEN", SECRET)
    result = Pipeline.from_dir(tmp_path).run(workers=1)
    assert result.states == {"call": "failed"}
    assert (tmp_path / "out.txt").read_text() == str(len(SECRET)), "the notebook got the value"
    assert result.tasks["call"].error.startswith("RuntimeError: the server refused '[secret]'")
    written = _everything_written(tmp_path)
    for form in (SECRET, repr(SECRET)[1:-1], json.dumps(SECRET)[1:-1], SECRET[6:], 'Tok\\"en'):
        assert form not in written
    assert "token is [secret]" in written
    assert "[secret from $EXAMPLE_API_TOKEN]" in written  # the store says where it came from


def test_a_missing_secret_or_a_secret_on_the_command_line_is_refused(tmp_path: Path) -> None:
    (tmp_path / "nbflow.toml").write_text('[secrets]\napi_token = "NBFLOW_TEST_UNSET_VAR"\n')
    write_notebook(tmp_path, "call", "upstream = None\napi_token = None")
    proc = nbflow_process("run", str(tmp_path))
    assert proc.returncode == 2
    assert "comes from the environment variable NBFLOW_TEST_UNSET_VAR, which is not set" in proc.stderr
    proc = nbflow_process("run", str(tmp_path), "-p", f"api_token={SECRET}")
    assert proc.returncode == 2 and "'api_token' is a secret" in proc.stderr
    assert SECRET not in proc.stderr


def test_secrets_reach_notebooks_only_and_must_be_long_enough_to_mask(tmp_path: Path, monkeypatch, nbflow_cli) -> None:
    (tmp_path / "nbflow.toml").write_text('[secrets]\napi_token = "EXAMPLE_API_TOKEN"\n')
    (tmp_path / "q.sql").write_text("-- upstream = None\n-- api_token = ''\nSELECT $api_token;\n")
    monkeypatch.setenv("EXAMPLE_API_TOKEN", SECRET)
    result = nbflow_cli("run", str(tmp_path))
    assert result.exit_code == 2 and "secrets reach notebook tasks only" in result.stderr
    (tmp_path / "q.sql").unlink()
    write_notebook(tmp_path, "call", "upstream = None\napi_token = None")
    monkeypatch.setenv("EXAMPLE_API_TOKEN", "abc")
    result = nbflow_cli("run", str(tmp_path))
    assert result.exit_code == 2 and "shorter than 4 characters" in result.stderr
