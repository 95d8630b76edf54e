"""Named connections: which system a name stands for, read from the environment. Pure.

A project names its connections in its settings, each with the environment variable that
holds its URI (``[connections]`` ``warehouse = "WAREHOUSE_URL"``), never the URI itself.
Airflow's variables work too: ``AIRFLOW_CONN_WAREHOUSE`` defines ``warehouse`` when the
settings do not, as a URI or as Airflow's JSON form. A URI's scheme says the system::

    postgresql://user:password@host:5432/db     (postgres:// too)
    mysql://user:password@host:3306/db          (mariadb:// too)
    mongodb://user:password@host:27017/db       (mongodb+srv://, mongo://)
    s3://KEY:SECRET@bucket?endpoint=http://127.0.0.1:9000&region=us-east-1   (aws:// too)

A :class:`Connection` keeps its password out of ``repr`` and :meth:`~Connection.describe`;
:meth:`~Connection.secrets` lists what a redactor must mask. Errors name the variable,
never its value.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from nbflow.errors import ConnectionVariableError, UnknownConnectionError

#: Airflow's prefix: ``AIRFLOW_CONN_<ID>`` holds connection ``<id>``
AIRFLOW_PREFIX = "AIRFLOW_CONN_"
#: URI schemes (and Airflow connection types) -> the system nbflow talks to
SYSTEMS = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mongodb": "mongodb",
    "mongodb+srv": "mongodb",
    "mongo": "mongodb",
    "s3": "s3",
    "aws": "s3",
}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mongodb": 27017}
#: Airflow's names for options, as nbflow spells them
_OPTION_ALIASES = {
    "endpoint_url": "endpoint",
    "region_name": "region",
    "aws_access_key_id": "key",
    "aws_secret_access_key": "secret",
}
#: options that hold a credential (an S3 session token, a TLS key's password...): masked, never shown
_SECRET_OPTION = re.compile(r"secret|token|password|passwd|pwd|credential", re.IGNORECASE)
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, repr=False)
class Connection:
    """One system, with its credentials; built by :func:`parse_connection`."""

    name: str
    #: postgresql | mysql | mongodb | s3
    system: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    #: the database (for S3: the bucket, if the URI names one)
    database: str | None = None
    #: the URI's query options (S3: endpoint, region; MongoDB: authSource, ...)
    options: Mapping[str, str] = field(default_factory=dict)
    #: the environment variable it was read from
    variable: str = ""
    #: the URI as given (it holds the password)
    uri: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"Connection({self.name!r}, {self.describe()!r}, variable={self.variable!r})"

    def describe(self) -> str:
        """The connection without its password, for logs and messages."""
        if self.system == "s3":
            return f"s3://{self.database or ''}" + (f" at {self.endpoint}" if self.endpoint else "")
        host = self.host or ""
        if self.port:
            host += f":{self.port}"
        user = f"{self.user}@" if self.user else ""
        path = f"/{self.database}" if self.database else ""
        return f"{self.system}://{user}{host}{path}"

    def secrets(self) -> tuple[str, ...]:
        """The values a redactor must mask wherever this connection was used."""
        values: list[str] = []
        if self.password or "@" in self.uri:  # a URI without credentials is no secret: describe() may show it
            values.append(self.uri)
        if self.password:
            values += [self.password, quote(self.password, safe="")]
            if not self.uri.lstrip().startswith("{"):
                with contextlib.suppress(ValueError):
                    values.append(urlsplit(self.uri.strip()).password or "")  # as the URI spells it
        values += [v for k, v in self.options.items() if _SECRET_OPTION.search(k)]
        return tuple(dict.fromkeys(v for v in values if v))

    @property
    def endpoint(self) -> str | None:
        """An S3 connection's endpoint URL (None: the default AWS one)."""
        return self.options.get("endpoint")

    @property
    def region(self) -> str | None:
        return self.options.get("region")


def airflow_variable(name: str) -> str:
    """The environment variable Airflow reads connection ``name`` from."""
    return AIRFLOW_PREFIX + name.upper()


def known_connections(declared: Mapping[str, str], environ: Mapping[str, str]) -> list[str]:
    """Every connection name a run can use: the settings', then Airflow's variables'."""
    names = set(declared)
    names |= {k[len(AIRFLOW_PREFIX) :].lower() for k in environ if k.startswith(AIRFLOW_PREFIX) and len(k) > 13}
    return sorted(names)


def connection_variable(
    name: str, declared: Mapping[str, str], environ: Mapping[str, str], used_by: str | None = None
) -> str:
    """The environment variable that defines connection ``name``.

    Raises
    ------
    UnknownConnectionError
        Neither the settings nor an ``AIRFLOW_CONN_`` variable define it.
    """
    if name in declared:
        return declared[name]
    if airflow_variable(name) in environ:
        return airflow_variable(name)
    raise UnknownConnectionError(name, known_connections(declared, environ), used_by)


def resolve_connection(
    name: str, declared: Mapping[str, str], environ: Mapping[str, str], used_by: str | None = None
) -> Connection:
    """Connection ``name``, read from its environment variable.

    Raises
    ------
    UnknownConnectionError
        The name is not defined.
    ConnectionVariableError
        Its variable is not set or does not hold a URI nbflow knows.
    """
    variable = connection_variable(name, declared, environ, used_by)
    if variable not in environ:
        raise ConnectionVariableError(name, variable, "which is not set. Set it before the run.")
    return parse_connection(name, environ[variable], variable)


def parse_connection(name: str, value: str, variable: str = "") -> Connection:
    """A connection from a URI or Airflow's JSON form (``{"conn_type": "postgres", ...}``).

    Raises
    ------
    ConnectionVariableError
        The value is not a URI of a known system (the message never shows the value).
    """
    value = value.strip()
    if value.startswith("{"):
        return _from_airflow_json(name, value, variable)
    known = ", ".join(sorted({f"{s}://" for s in SYSTEMS}))
    if "://" not in value:  # not shown: a bare value may be a password or a token
        raise ConnectionVariableError(name, variable, f"which holds neither a URI ({known}) nor Airflow's JSON form.")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ConnectionVariableError(name, variable, "which does not hold a valid URI.") from None
    system = SYSTEMS.get(parts.scheme.lower())
    if system is None:
        raise ConnectionVariableError(
            name,
            variable,
            f"whose URI has the scheme {parts.scheme or '(none)'!r}; nbflow knows {known}",
        )
    options = {_OPTION_ALIASES.get(k, k): v for k, v in parse_qsl(parts.query)}
    options.update(_options(_json_extra(options.pop("__extra__", None))))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    path = unquote(parts.path.lstrip("/")) or None
    host = parts.hostname
    if system == "s3":
        # s3://KEY:SECRET@bucket: the "host" is a bucket; Airflow's aws:// keeps it empty
        database, host = host or path, None
        user, password = options.pop("key", user), options.pop("secret", password)
    else:
        database = path
    return Connection(
        name=name,
        system=system,
        host=host,
        port=(port or DEFAULT_PORTS.get(system)) if host else port,
        user=user,
        password=password,
        database=database,
        options=options,
        variable=variable,
        uri=value,
    )


def _from_airflow_json(name: str, value: str, variable: str) -> Connection:
    try:
        raw = json.loads(value)
    except ValueError:
        raise ConnectionVariableError(name, variable, "which holds neither a URI nor valid JSON.") from None
    if not isinstance(raw, Mapping):
        raise ConnectionVariableError(name, variable, "whose JSON is not an object.")
    system = SYSTEMS.get(str(raw.get("conn_type", "")).lower())
    if system is None:
        raise ConnectionVariableError(
            name, variable, f"whose conn_type {raw.get('conn_type')!r} is not one of postgres, mysql, mongo, aws."
        )
    options = _options(_json_extra(raw.get("extra")))
    user, password = raw.get("login"), raw.get("password")
    database = raw.get("schema") or None
    if system == "s3":
        user, password = options.pop("key", user), options.pop("secret", password)
        database = options.pop("bucket", None) or database
    port = raw.get("port")
    return Connection(
        name=name,
        system=system,
        host=raw.get("host") or None,
        port=int(port) if port else (DEFAULT_PORTS.get(system) if raw.get("host") else None),
        user=user,
        password=password,
        database=database,
        options=options,
        variable=variable,
        uri=value,
    )


def _json_extra(extra: object) -> Mapping[str, object]:
    """Airflow's ``extra``: a mapping, or JSON text of one (anything else: nothing)."""
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            return {}
    return extra if isinstance(extra, Mapping) else {}


def _options(extra: Mapping[str, object]) -> dict[str, str]:
    return {_OPTION_ALIASES.get(str(k), str(k)): v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()}


def connection_secrets(declared: Mapping[str, str], environ: Mapping[str, str]) -> list[str]:
    """What a redactor masks for a run: the credentials of every connection it can use
    (declared ones and Airflow's variables) whose variable is set, valid or not."""
    found: list[str] = []
    for name in known_connections(declared, environ):
        variable = declared.get(name) or airflow_variable(name)
        value = environ.get(variable)
        if not value:
            continue
        try:
            found.extend(parse_connection(name, value, variable).secrets())
        except ConnectionVariableError:
            found.append(value)  # not a URI nbflow knows: mask the whole value
    return found


def parse_connections_table(raw: object) -> dict[str, str]:
    """The settings' ``[connections]`` table: name -> environment variable.

    Raises
    ------
    ValueError
        With what is wrong, for :class:`~nbflow.errors.InvalidSettingsError`.
    """
    if not isinstance(raw, Mapping):
        raise ValueError('must be a table of names and environment variables, like [connections] db = "DB_URL"')
    found: dict[str, str] = {}
    for name, variable in raw.items():
        if not _NAME.match(str(name)):
            shown = "a name that looks like a URI" if "@" in str(name) or "://" in str(name) else repr(name)
            raise ValueError(f"has {shown} as a connection's name: use letters, digits, '_', '-' and '.'")
        if not isinstance(variable, str) or not _VARIABLE.match(variable):
            # a string that is not a variable's name may be a credential: never echoed
            shown = (
                ("a URI" if "://" in variable else "a value that is not an environment variable's name")
                if isinstance(variable, str)
                else f"a value of type {type(variable).__name__}"
            )
            raise ValueError(
                f"maps {name!r} to {shown}: give the name of the environment variable that holds the URI "
                "(the URI holds credentials, which never go in a settings file)"
            )
        found[str(name)] = variable
    return found
