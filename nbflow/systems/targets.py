"""Products that live in other systems: does an object or a table exist, what is its checksum.

- An S3 object: it exists when ``HEAD`` finds it; its checksum is its ETag
  (``etag:<etag>``); an attempt wrote it when its ETag or modification time changed.
- A table: it exists when the database knows it; its checksum is its row count and a hash
  of its rows, independent of their order (PostgreSQL: the sum of ``hashtextextended`` of
  each row's text; MySQL/MariaDB: ``CHECKSUM TABLE``), ``rows:<n> hash:<h>``. A table
  counts as written when it exists after the attempt.

A :class:`TargetProbe` keeps one client per connection while it is open, so that a plan
over many tasks connects once per system.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nbflow.errors import NbflowError
from nbflow.project.connections import (
    Connection,
    connection_secrets,
    known_connections,
    parse_connection,
    resolve_connection,
)
from nbflow.project.secrets import Redactor
from nbflow.project.targets import ObjectTarget, TableTarget, parse_target, target_connection
from nbflow.systems.clients import open_client, s3_filesystem

log = logging.getLogger("nbflow.systems")
#: seconds a probe waits for a database to accept its connection
PROBE_TIMEOUT = 10


def s3_buckets(declared: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str | None]:
    """Every S3 connection whose variable is set: name -> the bucket its URI names (or None)."""
    found: dict[str, str | None] = {}
    for name in known_connections(declared, environ):
        variable = declared.get(name) or "AIRFLOW_CONN_" + name.upper()
        if variable not in environ:
            continue
        try:
            conn = parse_connection(name, environ[variable], variable)
        except Exception:  # an invalid connection is reported where it is used
            continue
        if conn.system == "s3":
            found[name] = conn.database
    return found


def s3_connection_for(uri: str, declared: Mapping[str, str], environ: Mapping[str, str]) -> Connection | None:
    """The S3 connection an ``s3://`` URI is reached through (None: the environment's credentials)."""
    target = parse_target(uri)
    name = target_connection(target, s3_buckets(declared, environ))
    return resolve_connection(name, declared, environ) if name else None


def s3_filesystem_for(uri: str, declared: Mapping[str, str], environ: Mapping[str, str]) -> Any:
    """An fsspec filesystem that reaches the object ``uri``."""
    return s3_filesystem(s3_connection_for(uri, declared, environ))


@dataclass
class TargetProbe:
    """Answers for product URIs, with the project's connections and an environment."""

    declared: Mapping[str, str]
    environ: Mapping[str, str]

    def __post_init__(self) -> None:
        self._clients: dict[str, Any] = {}
        #: clients that could not be made: the error, raised again without another wait
        self._failed: dict[str, Exception] = {}
        self._unchecked: set[str] = set()

    def __enter__(self) -> TargetProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()

    def _client(self, key: str, make: Any) -> Any:
        if key in self._failed:
            raise self._failed[key]
        if key not in self._clients:
            try:
                self._clients[key] = make()
            except Exception as e:
                self._failed[key] = e
                raise
        return self._clients[key]

    def _fs(self, target: ObjectTarget) -> Any:
        conn = s3_connection_for(target.uri, self.declared, self.environ)
        key = f"s3:{conn.name if conn else ''}"
        if key not in self._clients:
            self._clients[key] = _Closing(s3_filesystem(conn))
        return self._clients[key].value

    def _db(self, target: TableTarget) -> tuple[Connection, Any]:
        conn = resolve_connection(target.connection, self.declared, self.environ)
        return conn, self._client(f"db:{conn.name}", lambda: open_client(conn, timeout=PROBE_TIMEOUT))

    def stamp(self, uri: str) -> str | None:
        """What changes when the product is written (None: it does not exist)."""
        target = parse_target(uri)
        if isinstance(target, ObjectTarget):
            info = _head(self._fs(target), target)
            return None if info is None else f"{info.get('ETag')} {info.get('LastModified')}"
        return "exists" if self._table_exists(target) else None

    def exists(self, uri: str) -> bool:
        """Whether the product exists; one that cannot be checked (its connection undefined,
        its system unreachable) counts as missing, with a warning: the task runs, and the
        checks before a run (or the task itself) say what is wrong."""
        try:
            return self.stamp(uri) is not None
        except NbflowError:  # its connection is not defined or not set: the checks before a run say so
            return False
        except Exception as e:  # noqa: BLE001 - whatever stops the look, the product is not there to reuse
            if uri not in self._unchecked:
                self._unchecked.add(uri)
                reason = Redactor(connection_secrets(self.declared, self.environ)).text(f"{type(e).__name__}: {e}")
                log.warning("the product %s could not be checked (%s); it counts as missing", uri, reason.strip())
            return False

    def checksum(self, uri: str) -> str | None:
        """``etag:<etag>`` of an object, ``rows:<n> hash:<h>`` of a table; None if it does not exist."""
        target = parse_target(uri)
        if isinstance(target, ObjectTarget):
            info = _head(self._fs(target), target)
            return None if info is None else f"etag:{str(info.get('ETag', '')).strip(chr(34))}"
        if not self._table_exists(target):
            return None
        conn, client = self._db(target)
        with client.cursor() as cur:
            if conn.system == "postgresql":
                cur.execute(
                    f"SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) FROM {target.qualified} t"
                )
                rows, digest = cur.fetchone()
            else:
                cur.execute(f"SELECT count(*) FROM {target.quoted('`')}")
                (rows,) = cur.fetchone()
                cur.execute(f"CHECKSUM TABLE {target.quoted('`')}")
                digest = cur.fetchone()[1]
            client.commit()
        return f"rows:{rows} hash:{digest}"

    def checksums(self, uris: Iterable[str]) -> dict[str, str]:
        """``{uri: checksum}`` of the products that exist; one that cannot be reached is left out."""
        found = {}
        for uri in uris:
            try:
                value = self.checksum(uri)
            except Exception:  # a product that cannot be reached now has no checksum to record
                continue
            if value is not None:
                found[uri] = value
        return found

    def _table_exists(self, target: TableTarget) -> bool:
        conn, client = self._db(target)
        with client.cursor() as cur:
            if conn.system == "postgresql":
                cur.execute("SELECT to_regclass(%s) IS NOT NULL", (target.qualified,))
            else:
                cur.execute(
                    "SELECT count(*) > 0 FROM information_schema.tables "
                    "WHERE table_schema = coalesce(%s, database()) AND table_name = %s",
                    (target.schema, target.table),
                )
            (found,) = cur.fetchone()
        client.commit()  # end the read's transaction: a later look sees later writes
        return bool(found)


class _Closing:
    """A filesystem in the probe's client cache (it has nothing to close)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def close(self) -> None:
        pass


def _head(fs: Any, target: ObjectTarget) -> dict[str, Any] | None:
    try:
        return dict(fs.info(f"{target.bucket}/{target.key}", refresh=True))
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class RemoteProduct:
    """A product URI with ``exists()``, beside the ``Path`` of a file product in a plan."""

    uri: str
    probe: TargetProbe

    def exists(self) -> bool:
        return self.probe.exists(self.uri)

    def __str__(self) -> str:
        return self.uri
