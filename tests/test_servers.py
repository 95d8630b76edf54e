"""The throwaway servers of scripts/servers.py: real servers on 127.0.0.1, real clients."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psutil
import pytest
from servers_plugin import SCRIPT, servers  # the plugin (tests/conftest.py registers it)

from nbflow.project.connections import parse_connection

DEADLINE = 60.0


def wait_for(condition, what: str, timeout: float = DEADLINE):
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(0.05)


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def gone(process: psutil.Process) -> bool:
    """Exited (a zombie waiting for its reaper is gone too)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def mysql_connect(url: str, **overrides):
    import pymysql

    parts = urlsplit(url)
    options = {
        "host": parts.hostname,
        "port": parts.port,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/"),
        "connect_timeout": 10,
    }
    return pymysql.connect(**{**options, **overrides})


def test_postgres_takes_its_password_and_refuses_a_wrong_one(postgres_url: str) -> None:
    import psycopg

    assert postgres_url.startswith("postgresql://nbflow:") and postgres_url.endswith("/nbflow")
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
        row = conn.execute("SELECT current_user, current_database(), sum(x) FROM t").fetchone()
    assert row == ("nbflow", "nbflow", 3)
    parts = urlsplit(postgres_url)
    wrong = postgres_url.replace(f":{parts.password}@", ":not-the-password@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)


def test_mariadb_takes_its_password_and_refuses_a_wrong_one(mysql_url: str, tmp_path: Path) -> None:
    import pymysql

    assert mysql_url.startswith("mysql://nbflow:") and mysql_url.endswith("/nbflow")
    rows = tmp_path / "rows.tsv"
    rows.write_text("1\tone\n2\ttwo\n")
    with mysql_connect(mysql_url, local_infile=True) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (x int, name varchar(10))")
        cur.execute("LOAD DATA LOCAL INFILE %s INTO TABLE t", (str(rows),))
        cur.execute("SELECT CURRENT_USER(), DATABASE(), SUM(x), GROUP_CONCAT(name ORDER BY x) FROM t")
        assert cur.fetchone() == ("nbflow@%", "nbflow", 3, "one,two")
    with pytest.raises(pymysql.err.OperationalError) as refused:
        mysql_connect(mysql_url, password="not-the-password")
    assert refused.value.args[0] == 1045  # access denied
    # root has no password, and so is reachable only through the server's private socket
    with pytest.raises(pymysql.err.OperationalError) as refused:
        mysql_connect(mysql_url, user="root", password="", database=None)
    assert refused.value.args[0] == 1045


def test_s3_puts_and_gets_an_object(s3_server) -> None:
    uri = s3_server.create_bucket("smoke")
    client = s3_server.client()
    client.put_object(Bucket="smoke", Key="a/b.txt", Body=b"hello")
    assert client.get_object(Bucket="smoke", Key="a/b.txt")["Body"].read() == b"hello"
    # the URI says the same as the server, in the form nbflow's connections read
    conn = parse_connection("lake", uri)
    assert (conn.system, conn.database, conn.endpoint, conn.region) == ("s3", "smoke", s3_server.endpoint, "us-east-1")
    assert (conn.user, conn.password) == (s3_server.key, s3_server.secret)


def process_group(pid: int | None) -> int | None:
    try:
        return os.getpgid(pid) if pid else None
    except ProcessLookupError:  # exited meanwhile
        return None


def test_servers_listen_on_127_0_0_1_only(postgres_url: str, mysql_url: str, s3_server) -> None:
    ports = {port_of(postgres_url), port_of(mysql_url), port_of(s3_server.endpoint)}
    listening: list[Any] = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    on_ports = [c for c in listening if c.laddr.port in ports]
    assert {c.laddr.port for c in on_ports} == ports
    groups = {process_group(c.pid) for c in on_ports} - {None}
    assert len(groups) == 3, on_ports  # each server is a process group of its own
    theirs = [c for c in listening if process_group(c.pid) in groups]
    assert {c.laddr.ip for c in theirs + on_ports} == {"127.0.0.1"}, theirs + on_ports


STARTER = """
import importlib.util, json, os, sys, threading
spec = importlib.util.spec_from_file_location("servers", sys.argv[1])
servers = importlib.util.module_from_spec(spec)
sys.modules["servers"] = servers
spec.loader.exec_module(servers)
running = [servers.postgres(), servers.mariadb(), servers.s3()]  # kept: a dropped one stops
pg, my, store = (server.__enter__() for server in running)
with open(sys.argv[2] + ".partial", "w") as f:
    json.dump({"urls": [pg, my, store.endpoint]}, f)
os.replace(sys.argv[2] + ".partial", sys.argv[2])
threading.Event().wait()
"""


@pytest.mark.timeout(180)
def test_servers_die_with_a_starter_killed_by_sigkill(tmp_path: Path) -> None:
    started = tmp_path / "started.json"
    script = tmp_path / "starter.py"
    script.write_text(STARTER)
    starter = subprocess.Popen([sys.executable, str(script), str(SCRIPT), str(started)])
    try:
        wait_for(lambda: started.exists() or starter.poll() is not None, "the servers started")
        assert starter.poll() is None, "the starting process failed"
        ports = [port_of(url) for url in json.loads(started.read_text())["urls"]]
        assert not any(port_closed(p) for p in ports)
        below = psutil.Process(starter.pid).children(recursive=True)
        names = {p.name() for p in below}
        assert {"postgres", "mariadbd"} <= names and any("moto.server" in p.cmdline() for p in below), names
        folders = list(Path(servers._base_dir()).glob(f"{servers.FOLDER_PREFIX}*-{starter.pid}-*"))
        assert len(folders) == 3, folders
    finally:
        starter.send_signal(signal.SIGKILL)
        starter.wait()
    wait_for(lambda: all(gone(p) for p in below), "every server process exited")
    wait_for(lambda: all(port_closed(p) for p in ports), "every port closed")
    # what the killed process left on disk goes at the next start (or here, by hand)
    assert set(folders) <= set(servers.sweep_stale())
    assert not any(f.exists() for f in folders)


@pytest.mark.timeout(120)
def test_the_command_line_exports_the_variables_and_stops_on_sigterm(tmp_path: Path) -> None:
    env_file = tmp_path / "servers.env"
    cli = subprocess.Popen(
        [sys.executable, str(SCRIPT), "start", "--postgres", "--s3", "--bucket", "lake", "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: env_file.exists() or cli.poll() is not None, "the variables were written")
        assert cli.poll() is None, "the command failed"
        assert env_file.stat().st_mode & 0o777 == 0o600
        lines = env_file.read_text().splitlines()
        variables = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
        assert set(variables) == {
            "NBFLOW_POSTGRES_URL",
            "NBFLOW_S3_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
        }
        assert cli.stdout is not None and cli.stdout.readline().startswith("export ")
        import boto3
        import psycopg

        with psycopg.connect(variables["NBFLOW_POSTGRES_URL"]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        s3 = boto3.client(
            "s3",
            endpoint_url=variables["AWS_ENDPOINT_URL"],
            aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
            region_name=variables["AWS_DEFAULT_REGION"],
        )
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["lake"]
        assert parse_connection("lake", variables["NBFLOW_S3_URL"]).database == "lake"
        ports = [port_of(variables[v]) for v in ("NBFLOW_POSTGRES_URL", "AWS_ENDPOINT_URL")]
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(30) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        if cli.stdout is not None:
            cli.stdout.close()
    assert not env_file.exists()
    assert all(port_closed(p) for p in ports)
    assert not list(Path(servers._base_dir()).glob(f"{servers.FOLDER_PREFIX}*-{cli.pid}-*"))


def test_a_missing_server_names_the_setup_command(tmp_path: Path) -> None:
    hint = "NBFLOW_SETUP_SERVERS=1 ./scripts/setup"
    with pytest.raises(servers.MissingServerBinary, match=hint):
        servers.find_postgres(root=tmp_path, path=str(tmp_path))
    with pytest.raises(servers.MissingServerBinary, match=hint):
        servers.find_mariadb(path=str(tmp_path))
    with pytest.raises(servers.MissingServerBinary, match=hint):
        servers.find_mongo(path=str(tmp_path))
