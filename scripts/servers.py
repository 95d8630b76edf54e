#!/usr/bin/env python3
"""Throwaway database and object-store servers on 127.0.0.1, for the tests and the ETL example.

Each context manager starts a real server from the machine's binaries on a free port of
127.0.0.1, with its data in a temporary folder, and yields how to reach it (a URI with its
credentials)::

    with postgres() as url:   # postgresql://nbflow:PASSWORD@127.0.0.1:PORT/nbflow
        ...
    with mariadb() as url:    # mysql://nbflow:PASSWORD@127.0.0.1:PORT/nbflow
        ...
    with s3() as store:       # moto's S3 server; store.uri("bucket"), store.create_bucket("bucket")
        ...
    with mongo() as url:      # mongodb://nbflow:PASSWORD@127.0.0.1:PORT/nbflow?authMechanism=PLAIN (nx-27017)
        ...

A server runs in its own process group and dies with the thread that started it, even when
that process is killed (``PR_SET_PDEATHSIG``): start servers from the thread that outlives
them (the main thread). On exit it is stopped (a graceful signal, then SIGKILL to its group)
and its folder removed; folders left by a killed process are removed by the next start.
As root, PostgreSQL and MariaDB run as the ``postgres`` or ``mysql`` user (else ``nobody``).

Missing binaries raise :class:`MissingServerBinary`: ``NBFLOW_SETUP_SERVERS=1 ./scripts/setup``
installs them. From a shell (the ETL example)::

    python scripts/servers.py start --postgres --mariadb --s3 [--bucket B] [--env-file F]

prints ``export NAME=URI`` lines (and writes them to F once all are up), then serves until
SIGTERM or SIGINT. This file is self-contained: the standard library, and the clients
(psycopg, pymysql, boto3, pymongo) imported only by the server that needs them. It never imports nbflow.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

T = TypeVar("T")

HOST = "127.0.0.1"
#: the database, user and default bucket the servers are set up with
NAME = "nbflow"
SETUP_HINT = "run `NBFLOW_SETUP_SERVERS=1 ./scripts/setup` to install it"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
#: tries at a free port (another process may take the one chosen before the server binds it)
PORT_TRIES = 3
POLL = 0.05
#: prefix of the servers' temporary folders: ``nbflow-server-<kind>-<pid of the starter>-<random>``
FOLDER_PREFIX = "nbflow-server-"


class ServerError(RuntimeError):
    """A throwaway server could not be started."""


class MissingServerBinary(ServerError):
    """The server's program is not installed here."""

    def __init__(self, what: str, looked: str) -> None:
        super().__init__(f"{what} is not installed (looked in {looked}): {SETUP_HINT}")


class ServerUnavailable(ServerError):
    """No server of this kind can be started here yet."""


class ServerStartError(ServerError):
    """The server's program ran but did not come up; the message ends with its log."""


class _PortTaken(ServerStartError):
    """Another process bound the chosen port first (retried with another port)."""


# --------------------------------------------------------------------------------------------
# Processes: own process group, dead with their starter, stopped gracefully then killed
# --------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
#: Linux's prctl (None elsewhere: there servers outlive a killed starter)
_prctl = getattr(ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True), "prctl", None)


def _set_death_signal(sig: int) -> None:
    """Get ``sig`` when the thread that started this process ends (Linux)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def _die_with_parent(sig: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get ``sig`` when its starter's thread ends.

    It runs after the switch to the server's user (which would clear the setting).
    """
    parent = os.getpid()

    def preexec() -> None:
        _set_death_signal(sig)
        if os.getppid() != parent:  # the starter died before the setting took
            os.kill(os.getpid(), sig)

    return preexec


def _spawn(
    argv: Sequence[str], *, log: Path, user: pwd.struct_passwd | None, death_signal: int, cwd: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group), output appended to ``log``."""
    drop: dict[str, Any] = {}
    if user is not None:
        drop = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "MYSQL", "AWS_"))}
    env["HOME"] = str(cwd)
    env["TMPDIR"] = str(cwd)  # the server may run as another user, who cannot enter the caller's TMPDIR
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent(death_signal),
            **drop,
        )


def _stop(proc: subprocess.Popen[bytes], sig: int, timeout: float = STOP_TIMEOUT) -> None:
    """Stop a server: ``sig``, up to ``timeout`` seconds to exit, then SIGKILL to its group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the server if it hung, and anything it left behind
    proc.wait()


def _run(argv: Sequence[str], *, what: str, log: Path, user: pwd.struct_passwd | None, cwd: Path) -> None:
    """Run a set-up program to its end (it dies with us too), or raise with its log."""
    proc = _spawn(argv, log=log, user=user, death_signal=signal.SIGKILL, cwd=cwd)
    try:
        code = proc.wait(START_TIMEOUT)
    except subprocess.TimeoutExpired:
        _stop(proc, signal.SIGKILL)
        raise ServerStartError(f"{what} did not finish in {START_TIMEOUT:.0f} s{_tail(log)}") from None
    if code != 0:
        raise ServerStartError(f"{what} failed (exit code {code}){_tail(log)}")


def _tail(log: Path, offset: int = 0, lines: int = 15) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return ("; its output ends:\n" + "\n".join(kept)) if kept else ""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_ready(
    proc: subprocess.Popen[bytes], probe: Callable[[], T | None], *, what: str, log: Path, offset: int
) -> T:
    """Poll ``probe`` until it returns a value; raise if the server exits or the deadline passes."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            with open(log, "rb") as f:
                f.seek(offset)
                said = f.read().decode(errors="replace")
            error = _PortTaken if "already in use" in said.lower() else ServerStartError
            raise error(f"{what} exited (code {proc.returncode}) while starting{_tail(log, offset)}")
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise ServerStartError(f"{what} did not answer in {START_TIMEOUT:.0f} s{_tail(log, offset)}")
        time.sleep(POLL)


@contextlib.contextmanager
def _serve(
    what: str,
    argv_for: Callable[[int], Sequence[str]],
    probe_for: Callable[[int], Callable[[], T | None]],
    *,
    work: Path,
    user: pwd.struct_passwd | None,
    death_signal: int,
    stop_signal: int,
) -> Iterator[tuple[int, T]]:
    """Run a server on a free port until the block ends: yields (port, what its probe returned)."""
    log = work / "server.log"
    for attempt in range(PORT_TRIES):
        port = free_port()
        offset = log.stat().st_size if log.exists() else 0
        proc = _spawn(argv_for(port), log=log, user=user, death_signal=death_signal, cwd=work)
        try:
            ready = _wait_ready(proc, probe_for(port), what=what, log=log, offset=offset)
        except _PortTaken:
            _stop(proc, signal.SIGKILL)
            if attempt + 1 == PORT_TRIES:
                raise
            continue
        except BaseException:
            _stop(proc, signal.SIGKILL)
            raise
        try:
            yield port, ready
        finally:
            _stop(proc, stop_signal)
        return


# --------------------------------------------------------------------------------------------
# Folders and users
# --------------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(base: Path | None = None) -> list[Path]:
    """Remove the server folders whose starting process is gone (it was killed); returns them."""
    base = base or _base_dir()
    removed = []
    for path in base.glob(f"{FOLDER_PREFIX}*"):
        match = re.fullmatch(rf"{FOLDER_PREFIX}[a-z0-9]+-(\d+)-.*", path.name)
        if match and path.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _base_dir() -> Path:
    """The temporary folder; as root, one the server's user can reach (``/tmp`` if need be)."""
    base = Path(tempfile.gettempdir()).resolve()
    if os.geteuid() == 0 and not all(p.stat().st_mode & 0o001 for p in (base, *base.parents)):
        base = Path("/tmp")
    return base


@contextlib.contextmanager
def _workdir(kind: str, user: pwd.struct_passwd | None) -> Iterator[Path]:
    """A private folder for one server (owned by its user), removed on exit."""
    base = _base_dir()
    sweep_stale(base)
    work = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{kind}-{os.getpid()}-", dir=base))
    try:
        if user is not None:
            os.chown(work, user.pw_uid, user.pw_gid)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _mkdir(path: Path, user: pwd.struct_passwd | None) -> Path:
    path.mkdir(mode=0o700)
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def _server_user(preferred: str) -> pwd.struct_passwd | None:
    """The user to run a server as: None (this one) unless root, which the servers refuse."""
    if os.geteuid() != 0:
        return None
    for name in (preferred, "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerError(f"running as root, and neither the {preferred!r} nor the 'nobody' user exists to run the server")


def _password() -> str:
    return secrets.token_urlsafe(18)


def _which(names: Sequence[str], dirs: Sequence[str]) -> Path | None:
    """The first of ``names`` on PATH or in ``dirs`` (Debian keeps servers in /usr/sbin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *dirs])
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return Path(found)
    return None


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

POSTGRES_ROOT = Path("/usr/lib/postgresql")


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.name))


def find_postgres(root: Path = POSTGRES_ROOT, path: str | None = None) -> Path:
    """The folder with ``initdb`` and ``postgres``: the newest under ``root`` (Debian's), else PATH's."""
    versions = sorted((p for p in root.glob("*") if p.is_dir()), key=_version_key, reverse=True)
    for version in versions:
        if (version / "bin" / "initdb").is_file() and (version / "bin" / "postgres").is_file():
            return version / "bin"
    initdb = shutil.which("initdb", path=path)
    if initdb:
        folder = Path(initdb).resolve().parent
        if (folder / "postgres").is_file():
            return folder
    raise MissingServerBinary("PostgreSQL (initdb and postgres)", f"{root}/*/bin and PATH")


@contextlib.contextmanager
def postgres(bindir: Path | None = None) -> Iterator[str]:
    """A PostgreSQL server: yields ``postgresql://nbflow:PASSWORD@127.0.0.1:PORT/nbflow``.

    User ``nbflow`` (its superuser, password auth with SCRAM) owns database ``nbflow``.
    Durability is off (fsync, synchronous_commit, full_page_writes): it is thrown away.
    """
    bindir = bindir or find_postgres()
    user = _server_user("postgres")
    password = _password()
    with _workdir("postgres", user) as work:
        pwfile = work / "password"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if user is not None:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        data = work / "data"
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", NAME, "--auth=scram-sha-256"]
        initdb += [f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        _run(initdb, what="PostgreSQL's initdb", log=work / "initdb.log", user=user, cwd=work)
        pwfile.unlink()
        sockets = _mkdir(work / "sockets", user)

        def argv(port: int) -> list[str]:
            settings = {
                "listen_addresses": HOST,
                "port": port,
                "unix_socket_directories": sockets,
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
            }
            return [str(bindir / "postgres"), "-D", str(data), *(f"-c{k}={v}" for k, v in settings.items())]

        def probe(port: int) -> Callable[[], bool | None]:
            import psycopg

            def connect() -> bool | None:
                try:
                    with psycopg.connect(
                        host=HOST, port=port, user=NAME, password=password, dbname="postgres", connect_timeout=5
                    ) as conn:
                        conn.autocommit = True
                        conn.execute(f"CREATE DATABASE {NAME}")
                    return True
                except psycopg.OperationalError:
                    return None

            return connect

        # SIGQUIT: an immediate shutdown (children and shared memory go too); SIGINT: a fast one
        with _serve(
            "PostgreSQL", argv, probe, work=work, user=user, death_signal=signal.SIGQUIT, stop_signal=signal.SIGINT
        ) as (port, _):
            yield f"postgresql://{NAME}:{quote(password, safe='')}@{HOST}:{port}/{NAME}"


# --------------------------------------------------------------------------------------------
# MariaDB (or MySQL's server of the same options)
# --------------------------------------------------------------------------------------------

#: a small redo log (the default 96 MB file costs start time and disk)
SMALL_INNODB = ("--innodb-log-file-size=8M",)
SERVER_DIRS = ("/usr/sbin", "/usr/libexec", "/usr/local/sbin", "/usr/local/bin")


def find_mariadb(path: str | None = None) -> tuple[Path, Path]:
    """(the data folder installer, the server): mariadb-install-db and mariadbd."""
    dirs = () if path is not None else SERVER_DIRS
    saved = os.environ.get("PATH", "")
    try:
        if path is not None:
            os.environ["PATH"] = path
        installer = _which(["mariadb-install-db", "mysql_install_db"], dirs)
        server = _which(["mariadbd", "mysqld"], dirs)
    finally:
        os.environ["PATH"] = saved
    if installer is None or server is None:
        raise MissingServerBinary("MariaDB (mariadb-install-db and mariadbd)", "PATH and " + ", ".join(SERVER_DIRS))
    return installer, server


def _mysql_greets(sock: Path) -> bool:
    """Whether the server on ``sock`` sends its greeting (a handshake packet, protocol 10).

    Readiness is polled this way, not with failing client connections: pymysql leaves the
    socket of a failed UNIX-socket connection open.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        try:
            s.connect(str(sock))
            head = s.recv(5)
        except OSError:
            return False
    return len(head) == 5 and head[4] == 10


@contextlib.contextmanager
def mariadb(binaries: tuple[Path, Path] | None = None) -> Iterator[str]:
    """A MariaDB server: yields ``mysql://nbflow:PASSWORD@127.0.0.1:PORT/nbflow``.

    User ``nbflow`` (password auth) has all rights on database ``nbflow`` (utf8mb4) and may
    LOAD DATA LOCAL INFILE; root is reachable only through the server's private socket.
    """
    installer, server = binaries or find_mariadb()
    user = _server_user("mysql")
    password = _password()
    with _workdir("mariadb", user) as work:
        data = work / "data"
        install = [str(installer), "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal"]
        install += ["--skip-test-db", "--skip-name-resolve", *SMALL_INNODB]
        _run(install, what="mariadb-install-db", log=work / "install.log", user=user, cwd=work)
        tmp = _mkdir(work / "tmp", user)
        sock = work / "mysqld.sock"

        def argv(port: int) -> list[str]:
            return [
                str(server),
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={sock}",
                f"--port={port}",
                f"--bind-address={HOST}",
                f"--pid-file={work / 'mysqld.pid'}",
                f"--tmpdir={tmp}",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--local-infile=1",
                "--character-set-server=utf8mb4",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                *SMALL_INNODB,
            ]

        def probe(port: int) -> Callable[[], bool | None]:
            import pymysql

            def connect() -> bool | None:
                if not _mysql_greets(sock):
                    return None
                conn = pymysql.connect(unix_socket=str(sock), user="root", password="", connect_timeout=5)
                with conn, conn.cursor() as cur:
                    cur.execute(
                        "SELECT user, host FROM mysql.user WHERE user = '' OR (user = 'root' AND host <> 'localhost')"
                    )
                    for name, host in cur.fetchall():
                        cur.execute("DROP USER %s@%s", (name, host))
                    cur.execute(f"CREATE DATABASE {NAME} CHARACTER SET utf8mb4")
                    cur.execute(f"CREATE USER '{NAME}'@'%%' IDENTIFIED BY %s", (password,))
                    cur.execute(f"GRANT ALL PRIVILEGES ON {NAME}.* TO '{NAME}'@'%'")
                return True

            return connect

        # SIGKILL on the starter's death (nothing to keep); SIGTERM: a clean shutdown
        with _serve(
            "MariaDB", argv, probe, work=work, user=user, death_signal=signal.SIGKILL, stop_signal=signal.SIGTERM
        ) as (port, _):
            yield f"mysql://{NAME}:{quote(password, safe='')}@{HOST}:{port}/{NAME}"


# --------------------------------------------------------------------------------------------
# S3 (moto's server)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    """An S3 endpoint and the credentials to use with it."""

    endpoint: str
    key: str
    secret: str = ""
    region: str = "us-east-1"

    def uri(self, bucket: str) -> str:
        """``s3://KEY:SECRET@BUCKET?endpoint=...&region=...``, each part URL-encoded."""
        auth = f"{quote(self.key, safe='')}:{quote(self.secret, safe='')}"
        return f"s3://{auth}@{quote(bucket, safe='')}?endpoint={quote(self.endpoint, safe='')}&region={quote(self.region, safe='')}"

    def client(self) -> Any:
        """A boto3 S3 client for this endpoint."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name=self.region,
        )

    def create_bucket(self, bucket: str) -> str:
        """Create ``bucket``; returns its URI (:meth:`uri`)."""
        self.client().create_bucket(Bucket=bucket)
        return self.uri(bucket)

    def environment(self) -> dict[str, str]:
        """The AWS variables that point boto3 and s3fs at this endpoint."""
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
        }


@contextlib.contextmanager
def s3(region: str = "us-east-1") -> Iterator[S3Server]:
    """moto's standalone S3 server (in this Python): yields an :class:`S3Server`; no bucket yet."""
    try:
        import moto.server  # noqa: F401 - only to fail early and clearly
    except ImportError:
        raise MissingServerBinary("moto's server (moto[server])", sys.executable) from None
    store = S3Server(endpoint="", key=f"{NAME}{secrets.token_hex(4)}", secret=_password(), region=region)
    with _workdir("s3", None) as work:

        def argv(port: int) -> list[str]:
            return [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]

        def probe(port: int) -> Callable[[], bool | None]:
            def get() -> bool | None:
                try:
                    with urllib.request.urlopen(f"http://{HOST}:{port}/moto-api/", timeout=5):
                        return True
                except urllib.error.HTTPError:
                    return True  # it answered
                except OSError:
                    return None

            return get

        with _serve(
            "moto's S3 server",
            argv,
            probe,
            work=work,
            user=None,
            death_signal=signal.SIGKILL,
            stop_signal=signal.SIGTERM,
        ) as (port, _):
            yield S3Server(endpoint=f"http://{HOST}:{port}", key=store.key, secret=store.secret, region=region)


# --------------------------------------------------------------------------------------------
# MongoDB: nx-27017, a MongoDB wire-protocol server in Python (the test extra installs it; no
# package of a real mongod is installable here), which keeps each database in an SQLite file
# --------------------------------------------------------------------------------------------

MONGO_PROGRAM = "nx-27017"


def find_mongo(path: str | None = None) -> Path:
    """The ``nx-27017`` program: beside this Python (the test environment's), else on PATH."""
    beside = Path(sys.executable).parent / MONGO_PROGRAM
    if path is None and beside.is_file():
        return beside
    found = shutil.which(MONGO_PROGRAM, path=path)
    if found:
        return Path(found)
    looked = path if path is not None else f"{beside.parent} and PATH"
    raise MissingServerBinary(f"{MONGO_PROGRAM} (a MongoDB wire-protocol server)", looked)


@contextlib.contextmanager
def mongo(program: Path | None = None) -> Iterator[str]:
    """A MongoDB server: yields ``mongodb://nbflow:PASSWORD@127.0.0.1:PORT/nbflow?authMechanism=PLAIN``.

    The server is nx-27017, which speaks MongoDB's protocol to pymongo but checks no
    credentials: it takes any PLAIN login (not SCRAM). The URI holds a password all the
    same, so that a test sees one travel and be masked. Known difference from MongoDB: a
    dotted inclusion projection (``{"b.y": 1}``) comes back flattened (``{"b.y": ...}``).
    """
    program = program or find_mongo()
    password = _password()
    with _workdir("mongo", None) as work:
        data = _mkdir(work / "data", None)

        def url(port: int) -> str:
            return f"mongodb://{NAME}:{quote(password, safe='')}@{HOST}:{port}/{NAME}?authMechanism=PLAIN"

        def argv(port: int) -> list[str]:
            files = ["--data-dir", str(data), "--log-file", str(work / "nx.log"), "--pid-file", str(work / "nx.pid")]
            return [str(program), "--host", HOST, "-p", str(port), *files]

        def probe(port: int) -> Callable[[], bool | None]:
            import pymongo

            def ping() -> bool | None:
                client: Any = pymongo.MongoClient(url(port), directConnection=True, serverSelectionTimeoutMS=1000)
                try:
                    client.admin.command("ping")
                    return True
                except pymongo.errors.PyMongoError:
                    return None
                finally:
                    client.close()

            return ping

        with _serve(
            "nx-27017 (MongoDB)",
            argv,
            probe,
            work=work,
            user=None,
            death_signal=signal.SIGKILL,
            stop_signal=signal.SIGTERM,
        ) as (port, _):
            yield url(port)


# --------------------------------------------------------------------------------------------
# The command line: start servers for the ETL example, print their variables, serve until stopped
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A server the command line starts: its flag, and the variables its value gives."""

    start: Callable[[], contextlib.AbstractContextManager[Any]]
    variables: Callable[[Any, str], dict[str, str]]
    help: str


KINDS: dict[str, Kind] = {
    "postgres": Kind(postgres, lambda url, _: {"NBFLOW_POSTGRES_URL": url}, "PostgreSQL: NBFLOW_POSTGRES_URL"),
    "mariadb": Kind(mariadb, lambda url, _: {"NBFLOW_MYSQL_URL": url}, "MariaDB: NBFLOW_MYSQL_URL"),
    "s3": Kind(
        s3,
        lambda store, bucket: {"NBFLOW_S3_URL": store.create_bucket(bucket), **store.environment()},
        "moto's S3, with the bucket made: NBFLOW_S3_URL and AWS_* (endpoint, key, secret, region)",
    ),
    "mongo": Kind(mongo, lambda url, _: {"NBFLOW_MONGO_URL": url}, "MongoDB (nx-27017): NBFLOW_MONGO_URL"),
}


def export_lines(variables: dict[str, str]) -> str:
    """``export NAME=VALUE`` lines a POSIX shell can source."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` whole (readers see the file complete or not at all), readable by the owner only."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(partial, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="servers.py", description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start servers, print their variables, serve until SIGTERM or SIGINT")
    for name, kind in KINDS.items():
        start.add_argument(f"--{name}", action="store_true", help=kind.help)
    start.add_argument("--bucket", default=NAME, help="the S3 bucket to create (default: %(default)s)")
    start.add_argument("--env-file", type=Path, help="also write the export lines here (mode 600) once all are up")
    args = parser.parse_args(argv)
    chosen = [name for name in KINDS if getattr(args, name)]
    if not chosen:
        parser.error("choose at least one server: " + " ".join(f"--{n}" for n in KINDS))

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _set_death_signal(signal.SIGTERM)  # stop (and stop them) if whoever started us dies
    with contextlib.ExitStack() as stack:
        variables: dict[str, str] = {}
        try:
            for name in chosen:
                began = time.monotonic()
                value = stack.enter_context(KINDS[name].start())
                variables.update(KINDS[name].variables(value, args.bucket))
                print(f"servers.py: {name} is up in {time.monotonic() - began:.1f} s", file=sys.stderr)
                if stop.is_set():
                    return 1
        except ServerError as error:
            print(f"servers.py: {error}", file=sys.stderr)
            return 1
        lines = export_lines(variables)
        if args.env_file:
            _write_private(args.env_file, lines)
            stack.callback(lambda: args.env_file.unlink(missing_ok=True))
        sys.stdout.write(lines)
        sys.stdout.flush()
        print("servers.py: serving until SIGTERM or SIGINT", file=sys.stderr)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
