"""Read one ``.sql`` file: its header into a :class:`~nbflow.project.specs.TaskSpec`, its body
into statements. Pure: text in, spec or statements out.

A SQL task declares in its header comment, one declaration a line, what a notebook
declares in its parameters cell: ``-- upstream = ["validate"]``,
``-- product = "output/x.parquet"``, ``-- min_rows = 10``. Other comment lines are prose;
the header ends at the first line that is not a comment. ``-- connection = "warehouse"``
is not a parameter: it names the connection whose database runs the statements (without
it, DuckDB runs them in nbflow's process).

On a database, statements are split at each ``;`` outside strings, quoted names and
comments (PostgreSQL's ``$tag$`` quotes, MySQL's backslash escapes, backquotes and ``#``
comments), and parameters are the drivers' ``%(name)s`` placeholders: in a statement that
uses one, a literal ``%`` is written ``%%`` (as psycopg and PyMySQL read it).
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from nbflow.errors import InvalidDeclarationError, MalformedNotebookError
from nbflow.project.notebook import parse_parameters
from nbflow.project.specs import ParametersDecl, TaskSpec
from nbflow.project.targets import S3_SCHEME, TABLE_SCHEME

_SQL_DECLARATION = re.compile(r"^--\s*([A-Za-z_]\w*\s*(?::[^=]*)?=.*)$")
#: the header's declaration that names a connection (never a parameter)
CONNECTION = "connection"
_CONNECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
FILE_SUFFIXES = (".parquet", ".csv")
#: the dialects :func:`split_statements` reads (a connection's system)
DIALECTS = ("postgresql", "mysql")


@dataclass(frozen=True)
class SqlHeader:
    """What a ``.sql`` file's header declares."""

    params: ParametersDecl
    #: the connection whose database runs the statements; None: DuckDB, in process
    connection: str | None
    #: how many lines the header takes (comments and blank lines at the top)
    lines: int


def read_header(text: str, relpath: str) -> SqlHeader:
    """The declarations of a SQL file's header comment.

    Raises
    ------
    MalformedNotebookError
        A declaration is not valid Python.
    InvalidDeclarationError
        A parameter without a literal default, a connection that is not a name, or a
        product that is not one file, object or table.
    """
    declarations = []
    lines = 0
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            break
        lines += 1
        match = _SQL_DECLARATION.match(stripped)
        if match:
            declarations.append(match.group(1))
    decl = parse_parameters("\n".join(declarations), relpath, 0)
    defaults = dict(decl.defaults)
    connection = _connection(defaults.pop(CONNECTION, None), relpath)
    for key, source in defaults.items():
        try:
            ast.literal_eval(source)
        except (ValueError, SyntaxError):
            raise InvalidDeclarationError(
                relpath, f"parameter {key!r} must have a literal default (got `{source}`)", 0
            ) from None
    _check_product(decl.product, relpath)
    params = ParametersDecl(defaults, decl.upstream, decl.declares_upstream, decl.product, decl.declares_product)
    return SqlHeader(params, connection, lines)


def _connection(source: str | None, relpath: str) -> str | None:
    if source is None:
        return None
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        value = ...  # not a literal, such as a bare name: refused below, never run in DuckDB instead
    if value is None:
        return None
    if not isinstance(value, str) or not _CONNECTION_NAME.match(value):
        # the value is not shown: it may be a URI with its password
        raise InvalidDeclarationError(
            relpath, "'connection' must name a connection in quotes, like connection = \"warehouse\"", 0
        )
    return value


def _check_product(product: object, relpath: str) -> None:
    if product is None:
        return
    if not isinstance(product, str):
        raise InvalidDeclarationError(relpath, "a SQL task's 'product' is one path (its query's result)", 0)
    if product.startswith(TABLE_SCHEME):
        return
    if not product.endswith(FILE_SUFFIXES):
        where = "an S3 object's key" if product.startswith(S3_SCHEME) else "a SQL task's 'product'"
        raise InvalidDeclarationError(
            relpath,
            f"{where} must end in .parquet or .csv (or the product is a table: 'table://connection/schema.name')",
            0,
        )


def spec_from_sql(text: str, path: Path, name: str, relpath: str) -> TaskSpec:
    """A SQL task's spec from its text (see the module's docstring for the header).

    Raises
    ------
    MalformedNotebookError
        A declaration is not valid Python.
    InvalidDeclarationError
        See :func:`read_header`.
    """
    header = read_header(text, relpath)
    return TaskSpec(
        name=name,
        path=path,
        relpath=relpath,
        kernel_name="duckdb" if header.connection is None else f"sql:{header.connection}",
        language="sql",
        params=header.params,
        parameters_cell=None,
        source_hash=hashlib.sha256(text.encode()).hexdigest()[:16],
        kind="sql",
        connections=() if header.connection is None else (header.connection,),
    )


def read_sql_spec(path: Path, name: str, relpath: str) -> TaskSpec:
    """Read ``path`` into a SQL task's spec.

    Raises
    ------
    MalformedNotebookError
        The file cannot be read as UTF-8 text, or its header is not valid.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MalformedNotebookError(relpath, f"it cannot be read as text ({e})") from None
    return spec_from_sql(text, path, name, relpath)


# ------------------------------------------------------------------------------------------
# The body: statements, placeholders, the names it mentions
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One statement of a SQL file, without its ``;``."""

    text: str
    #: its first line in the file (1-based)
    line: int

    @property
    def summary(self) -> str:
        """Its first line of code, shortened, for the log."""
        for line in self.text.splitlines():
            code = line.strip()
            if code and not code.startswith(("--", "#")):
                return code if len(code) <= 72 else code[:69] + "..."
        return ""


_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][\w$\x80-\U0010ffff]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][\w\x80-\U0010ffff]*)?\$")


def _tokens(sql: str, dialect: str) -> Iterator[tuple[str, int, int]]:
    """``(kind, start, end)`` over ``sql``: ``comment``, ``string``, ``name`` (a quoted name),
    ``word``, ``;``, or ``other`` (anything else, a character at a time)."""
    mysql = dialect == "mysql"
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        two = sql[i : i + 2]
        line_comment = two == "--" and (not mysql or i + 2 == n or sql[i + 2].isspace())
        if line_comment or (c == "#" and mysql):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            yield "comment", i, end
        elif two == "/*":
            end = _block_comment_end(sql, i, nested=not mysql)
            yield "comment", i, end
        elif c == "'" or (c == '"' and mysql):
            escapes = mysql or (i > 0 and sql[i - 1] in "eE" and (i < 2 or not _is_word_char(sql[i - 2])))
            end = _quoted_end(sql, i, c, escapes)
            yield "string", i, end
        elif c == '"' or (c == "`" and mysql):
            end = _quoted_end(sql, i, c, False)
            yield "name", i, end
        elif c == "$" and not mysql and (i == 0 or not _is_word_char(sql[i - 1])):
            tag = _DOLLAR_TAG.match(sql, i)
            if tag:
                close = sql.find(tag.group(0), tag.end())
                end = n if close < 0 else close + len(tag.group(0))
                yield "string", i, end
            else:
                end = i + 1
                yield "other", i, end
        elif c == ";":
            end = i + 1
            yield ";", i, end
        else:
            word = _WORD.match(sql, i)
            if word:
                end = word.end()
                yield "word", i, end
            else:
                end = i + 1
                yield "other", i, end
        i = max(end, i + 1)


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c in "_$"


def _block_comment_end(sql: str, start: int, nested: bool) -> int:
    depth, i = 0, start
    while i < len(sql):
        two = sql[i : i + 2]
        if two == "/*" and (nested or depth == 0):
            depth += 1
            i += 2
        elif two == "*/":
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(sql)


def _quoted_end(sql: str, start: int, quote: str, escapes: bool) -> int:
    i = start + 1
    while i < len(sql):
        c = sql[i]
        if escapes and c == "\\":
            i += 2
        elif c == quote:
            if sql[i + 1 : i + 2] == quote:  # a doubled quote is one quote
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(sql)


def sql_body(text: str, header: SqlHeader) -> str:
    """The file's text with its header's lines blanked (line numbers kept)."""
    lines = text.split("\n")
    return "\n" * header.lines + "\n".join(lines[header.lines :])


def split_statements(sql: str, dialect: str) -> list[Statement]:
    """The statements of ``sql`` in ``dialect`` (``postgresql`` or ``mysql``), each from its first
    code to its ``;`` (excluded); a piece holding only comments and blanks is no statement."""
    statements: list[Statement] = []
    first: int | None = None

    def close(end: int) -> None:
        if first is not None:
            statements.append(Statement(sql[first:end].strip(), sql.count("\n", 0, first) + 1))

    for kind, begin, _ in _tokens(sql, dialect):
        if kind == ";":
            close(begin)
            first = None
        elif first is None and kind != "comment" and (kind != "other" or not sql[begin].isspace()):
            first = begin
    close(len(sql))
    return statements


_QUERY_WORDS = frozenset({"select", "values", "table"})
_MAIN_WORDS = frozenset({"select", "values", "table", "insert", "update", "delete", "merge", "replace"})


def is_query(statement: str, dialect: str) -> bool:
    """Whether ``statement`` is a query whose rows are its result: ``SELECT``, ``VALUES``,
    ``TABLE``, or ``WITH ...`` whose main statement is one of those (not ``WITH ... INSERT``)."""
    depth = 0
    with_clause = False
    for kind, begin, end in _tokens(statement, dialect):
        if kind == "other":
            depth += {"(": 1, ")": -1}.get(statement[begin], 0)
            continue
        if kind != "word":
            continue
        word = statement[begin:end].lower()
        if not with_clause:
            if word == "with":
                with_clause = True
                continue
            return word in _QUERY_WORDS
        if depth == 0 and word in _MAIN_WORDS:
            return word in _QUERY_WORDS
    return False


_PLACEHOLDER = re.compile(r"%(?:\(([^)]*)\))?(.|$)", re.DOTALL)


def placeholders(statement: str) -> tuple[str, ...]:
    """The parameter names ``statement`` uses as ``%(name)s``, in order, each once.

    Raises
    ------
    ValueError
        It uses a parameter and also has a ``%`` that is neither a placeholder nor ``%%``.
    """
    names: list[str] = []
    stray = None
    for match in _PLACEHOLDER.finditer(statement):
        name, spec = match.group(1), match.group(2)
        if name is None and spec == "%":
            continue
        if name is not None and spec == "s" and name.isidentifier():
            names.append(name)
        elif stray is None:
            stray = match.group(0)
    if names and stray is not None:
        raise ValueError(f"{stray!r} is not a parameter: in a statement that uses parameters, write a literal % as %%")
    return tuple(dict.fromkeys(names))


def render_placeholders(statement: str, render: Callable[[str], str]) -> str:
    """``statement`` with each ``%(name)s`` replaced by ``render(name)`` and each ``%%`` by ``%``
    (for a statement that uses parameters: see :func:`placeholders`)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return "%" if name is None else render(name)

    return _PLACEHOLDER.sub(replace, statement)


def mentioned(sql: str, dialect: str, names: Collection[str]) -> set[str]:
    """Which of ``names`` ``sql`` uses as a name outside strings and comments (a bare word
    matches whatever its case, a quoted name exactly)."""
    folded = {name.lower(): name for name in names}
    found: set[str] = set()
    for kind, begin, end in _tokens(sql, dialect):
        if kind == "word":
            name = folded.get(sql[begin:end].lower())
        elif kind == "name":
            quote = sql[begin]
            inner = sql[begin + 1 : end - 1].replace(quote * 2, quote)
            name = inner if inner in names else None
        else:
            continue
        if name is not None:
            found.add(name)
    return found
