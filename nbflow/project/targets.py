"""Products that are not local files: objects in S3 and tables in a database. Pure.

A product is a path (relative to the task's folder) unless it is a URI:

- ``s3://bucket/key.parquet``: an object. Its credentials come from the project's S3
  connection whose URI names that bucket, else its only S3 connection, else the
  environment (as boto finds them).
- ``table://warehouse/schema.name`` (or ``table://warehouse/name``): a table in the
  database of connection ``warehouse``.

The task is given the URI as is (in ``product``, and downstream in ``upstream``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

S3_SCHEME = "s3://"
TABLE_SCHEME = "table://"
_IDENT = r"[A-Za-z_][A-Za-z0-9_$]*"
_TABLE = re.compile(rf"^table://({_IDENT}[A-Za-z0-9_.-]*)/(?:({_IDENT})\.)?({_IDENT})$")
_S3 = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.+)$")


@dataclass(frozen=True)
class ObjectTarget:
    """An object in S3 (or an S3-compatible store)."""

    uri: str
    bucket: str
    key: str


@dataclass(frozen=True)
class TableTarget:
    """A table in the database of a named connection."""

    uri: str
    connection: str
    schema: str | None
    table: str

    @property
    def qualified(self) -> str:
        """``"schema"."table"`` (or ``"table"``), quoted for PostgreSQL; see :meth:`quoted`."""
        return self.quoted('"')

    def quoted(self, quote: str) -> str:
        """The table's name, each part between ``quote`` (``"`` for PostgreSQL, a backquote for MySQL)."""
        parts = [p for p in (self.schema, self.table) if p]
        return ".".join(f"{quote}{p}{quote}" for p in parts)


RemoteTarget = ObjectTarget | TableTarget


def is_remote(value: str) -> bool:
    """Whether a declared product is a URI (an object or a table), not a path."""
    return value.startswith((S3_SCHEME, TABLE_SCHEME))


def parse_target(value: str) -> RemoteTarget:
    """The object or table a product URI names.

    Raises
    ------
    ValueError
        With what a valid URI looks like.
    """
    if value.startswith(S3_SCHEME):
        match = _S3.match(value)
        if not match:
            raise ValueError(f"{value!r} is not an S3 object URI like 's3://bucket/folder/name.parquet'")
        return ObjectTarget(value, match.group(1), match.group(2))
    match = _TABLE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a table URI like 'table://connection/schema.table'")
    return TableTarget(value, match.group(1), match.group(2), match.group(3))


def target_connection(target: RemoteTarget, s3_buckets: dict[str, str | None]) -> str | None:
    """The connection a target is reached through: a table's own; for an object, the S3
    connection (name -> bucket it names, from ``s3_buckets``) for its bucket, else the only
    S3 connection, else None (credentials from the environment)."""
    if isinstance(target, TableTarget):
        return target.connection
    for name, bucket in sorted(s3_buckets.items()):
        if bucket == target.bucket:
            return name
    unnamed = [name for name, bucket in s3_buckets.items() if not bucket]
    if len(s3_buckets) == 1:
        return next(iter(s3_buckets))
    return unnamed[0] if len(unnamed) == 1 else None
