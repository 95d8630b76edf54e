"""Fixtures for tests that need a database or an object store: real throwaway servers.

Each server is started once per test session, when a test first asks for it, by
``scripts/servers.py`` (on a free port of 127.0.0.1, its data in a temporary folder), and is
stopped at the session's end. A server whose program is not installed fails the test: run
``NBFLOW_SETUP_SERVERS=1 ./scripts/setup``.

- ``postgres_url``: ``postgresql://nbflow:PASSWORD@127.0.0.1:PORT/nbflow``
- ``mysql_url``: ``mysql://nbflow:PASSWORD@127.0.0.1:PORT/nbflow`` (MariaDB)
- ``s3_server``: moto's S3 server, as ``servers.S3Server`` (``uri(bucket)``, ``create_bucket``,
  ``client()``); it has no bucket: a test makes its own.
- ``mongo_url``: ``mongodb://nbflow:PASSWORD@127.0.0.1:PORT/nbflow?authMechanism=PLAIN``
  (nx-27017, a MongoDB wire-protocol server; it takes any credentials)
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "servers.py"


def load_servers() -> ModuleType:
    """``scripts/servers.py`` as a module (it is a script, not part of the package)."""
    name = "nbflow_scripts_servers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        assert spec is not None and spec.loader is not None, SCRIPT
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
    return sys.modules[name]


servers = load_servers()


def _serve(start: Callable[[], contextlib.AbstractContextManager[Any]]) -> Iterator[Any]:
    """Start a server for as long as the fixture lives; a missing program fails (not skips) the test."""
    server = start()
    try:
        value = server.__enter__()
    except servers.MissingServerBinary as error:
        missing = str(error)
    else:
        try:
            yield value
        finally:
            server.__exit__(None, None, None)
        return
    pytest.fail(missing, pytrace=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the session: its URI, with user nbflow's password."""
    yield from _serve(servers.postgres)


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """A MariaDB server for the session: its ``mysql://`` URI, with user nbflow's password."""
    yield from _serve(servers.mariadb)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """moto's S3 server for the session (``servers.S3Server``), with no bucket."""
    yield from _serve(servers.s3)


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    """A MongoDB server (nx-27017) for the session: its URI, with a PLAIN login it does not check."""
    yield from _serve(servers.mongo)
