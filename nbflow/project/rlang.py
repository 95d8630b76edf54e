"""Read an R parameters cell's literal assignments, without running R. Pure: no I/O.

An R notebook (IRkernel) declares its task as a Python notebook does, in R::

    upstream <- c("clean")
    product <- list(data = "out/data.csv", model = "out/model.rds")
    n <- 10L

:func:`read_assignments` finds the cell's top-level assignments (``<-``, ``<<-`` or ``=``;
comments, strings with escapes, expressions spread over lines inside brackets) and reads
each value when it is a literal: a string, a number (``10``, ``10L``, ``1e-3``, ``0x1F``),
``TRUE``/``FALSE``, ``NULL``, or ``c(...)``/``list(...)`` of literals (named: a dict;
unnamed: a list). Any other value is kept as its source text, unread.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: the value of an assignment that is not a literal (its source text is kept)
NOT_LITERAL: Any = type("NotLiteral", (), {"__repr__": lambda self: "NOT_LITERAL"})()

_RESERVED = frozenset(
    {"if", "else", "repeat", "while", "function", "for", "next", "break", "in", "TRUE", "FALSE", "NULL"}
    | {"Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "NA_complex_"}
)
_ASSIGN = frozenset({"<-", "<<-", "="})
_OPEN = {"(": ")", "[": "]", "{": "}"}
#: R's operators, longest first (``%op%`` apart)
_OPS: tuple[str, ...] = ("<<-", "->>", ":::", "<-", "->", "<=", ">=", "==", "!=", "&&", "||", "::", "|>")
_OPS += tuple("\\+-*/^<>!&|~?:=$@,")
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+L?|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[Li]?",
)
_NAME = re.compile(r"(?:[A-Za-z]|\.(?![0-9]))[\w.]*|\.")
_SPECIAL = re.compile(r"%[^%\n]*%")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
#: the digits after ``\x``, ``\u`` and ``\U`` (``\u{e9}`` or ``\u00e9``)
_HEX = {
    e: re.compile(rf"\{{([0-9a-fA-F]{{1,{w}}})\}}|([0-9a-fA-F]{{1,{w}}})") for e, w in (("x", 2), ("u", 4), ("U", 8))
}
_RAW = re.compile(r"""[rR](["'])(-*)([(\[{])""")


class RSyntaxError(ValueError):
    """The cell is not R this reader understands: an unterminated string, an unbalanced bracket."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


@dataclass(frozen=True)
class Token:
    kind: str  # "str", "num", "name", "op", "open", "close", "newline"
    text: str
    value: Any
    start: int
    end: int
    line: int


@dataclass(frozen=True)
class Assignment:
    """``name <- value`` at the top level of the cell."""

    name: str
    #: the value read as Python data (str, int, float, bool, None, list, dict), or :data:`NOT_LITERAL`
    value: Any
    #: the value's R source text
    text: str
    line: int


def _string(source: str, i: int, line: int) -> tuple[str, int]:
    """The string literal starting at ``source[i]`` (a quote), and the index after it."""
    quote = source[i]
    out: list[str] = []
    j = i + 1
    while j < len(source):
        ch = source[j]
        if ch == quote:
            return "".join(out), j + 1
        if ch == "\\":
            j += 1
            if j >= len(source):
                break
            esc = source[j]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                j += 1
            elif esc in "xuU":
                m = _HEX[esc].match(source, j + 1)
                if m is None:
                    raise RSyntaxError(line, f"'\\{esc}' is not followed by hexadecimal digits in a string")
                out.append(chr(int(m.group(1) or m.group(2), 16)))
                j = m.end()
            elif esc in "01234567":
                m = re.compile(r"[0-7]{1,3}").match(source, j)
                assert m is not None
                out.append(chr(int(m.group(0), 8)))
                j = m.end()
            elif esc in "\\\"'` \n":
                out.append(esc)
                j += 1
            else:
                raise RSyntaxError(line, f"'\\{esc}' is not an escape R knows, in a string")
            continue
        out.append(ch)
        j += 1
    raise RSyntaxError(line, "a string is not closed")


def _raw_string(source: str, i: int, line: int) -> tuple[str, int]:
    """The raw string (``r"(...)"``, ``R"--[...]--"``) starting at ``source[i]``, and the index after it."""
    m = _RAW.match(source, i)
    assert m is not None
    quote, dashes, opening = m.groups()
    closing = {"(": ")", "[": "]", "{": "}"}[opening] + dashes + quote
    end = source.find(closing, m.end())
    if end < 0:
        raise RSyntaxError(line, "a raw string is not closed")
    return source[m.end() : end], end + len(closing)


def _number(text: str) -> Any:
    if text.endswith("i"):
        return NOT_LITERAL  # a complex number
    integer = text.endswith("L")
    body = text[:-1] if integer else text
    if body[:2] in ("0x", "0X"):
        return int(body, 16)
    value = float(body)
    if not math.isfinite(value):
        return NOT_LITERAL
    if integer or re.fullmatch(r"[0-9]+", body):
        return int(value) if value == int(value) else value
    return value


def tokenize(source: str) -> Iterator[Token]:
    """The cell's tokens, without comments and spaces; newlines are tokens.

    Raises
    ------
    RSyntaxError
        A string or a backquoted name is not closed.
    """
    i, line = 0, 1
    n = len(source)
    while i < n:
        ch = source[i]
        if ch == "\n":
            yield Token("newline", ch, None, i, i + 1, line)
            line += 1
            i += 1
        elif ch in " \t\r\f\v":
            i += 1
        elif ch == "#":
            end = source.find("\n", i)
            i = n if end < 0 else end
        elif ch in "rR" and _RAW.match(source, i):
            value, end = _raw_string(source, i, line)
            yield Token("str", source[i:end], value, i, end, line)
            line += source.count("\n", i, end)
            i = end
        elif ch in "\"'":
            value, end = _string(source, i, line)
            yield Token("str", source[i:end], value, i, end, line)
            line += source.count("\n", i, end)
            i = end
        elif ch == "`":
            end = source.find("`", i + 1)
            if end < 0:
                raise RSyntaxError(line, "a backquoted name is not closed")
            yield Token("name", source[i : end + 1], source[i + 1 : end], i, end + 1, line)
            line += source.count("\n", i, end)
            i = end + 1
        elif ch.isdigit() or (ch == "." and source[i + 1 : i + 2].isdigit()):
            m = _NUMBER.match(source, i)
            assert m is not None
            yield Token("num", m.group(0), _number(m.group(0)), i, m.end(), line)
            i = m.end()
        elif ch.isalpha() or ch == ".":
            m = _NAME.match(source, i)
            assert m is not None
            yield Token("name", m.group(0), m.group(0), i, m.end(), line)
            i = m.end()
        elif ch in _OPEN or ch in _OPEN.values() or ch == ";":
            kind = "open" if ch in _OPEN else "close" if ch != ";" else "newline"
            yield Token(kind, ch, None, i, i + 1, line)
            i += 1
        elif ch == "%":
            m = _SPECIAL.match(source, i)
            if m is None:
                raise RSyntaxError(line, "a %operator% is not closed")
            yield Token("op", m.group(0), None, i, m.end(), line)
            i = m.end()
        else:
            op = next((o for o in _OPS if source.startswith(o, i)), None)
            if op is None:  # a character R would refuse; keep it as an operator of its own
                op = ch
            yield Token("op", op, None, i, i + len(op), line)
            i += len(op)


def statements(source: str) -> Iterator[list[Token]]:
    """The cell's top-level statements: a newline or ``;`` ends one, unless it is inside
    brackets or the line ends with an operator (R reads on).

    Raises
    ------
    RSyntaxError
        A bracket is not closed, or closed by the wrong one.
    """
    stack: list[Token] = []
    current: list[Token] = []
    for token in tokenize(source):
        if token.kind == "open":
            stack.append(token)
        elif token.kind == "close":
            if not stack or _OPEN[stack[-1].text] != token.text:
                raise RSyntaxError(token.line, f"'{token.text}' closes nothing")
            stack.pop()
        elif token.kind == "newline" and not stack:
            if current and not (token.text == "\n" and current[-1].kind == "op"):
                yield current
                current = []
            continue
        elif token.kind == "newline":
            continue
        current.append(token)
    if stack:
        raise RSyntaxError(stack[-1].line, f"'{stack[-1].text}' is not closed")
    if current:
        yield current


class _NotLiteral(Exception):
    pass


class _Reader:
    """Reads one literal expression from a statement's tokens."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise _NotLiteral
        self.i += 1
        return token

    def expect(self, text: str) -> None:
        if self.take().text != text:
            raise _NotLiteral

    def value(self) -> Any:
        token = self.take()
        if token.kind == "str":
            return token.value
        if token.kind == "num" and token.value is not NOT_LITERAL:
            return token.value
        if token.kind == "op" and token.text in "+-":
            inner = self.take()
            if inner.kind != "num" or inner.value is NOT_LITERAL:
                raise _NotLiteral
            return -inner.value if token.text == "-" else inner.value
        if token.kind == "name" and token.text in ("TRUE", "FALSE", "NULL"):
            return {"TRUE": True, "FALSE": False, "NULL": None}[token.text]
        if token.kind == "open" and token.text == "(":
            value = self.value()
            self.expect(")")
            return value
        if token.kind == "name" and token.text in ("c", "list") and self.peek() is not None:
            self.expect("(")
            return self.call(token.text)
        raise _NotLiteral

    def call(self, function: str) -> Any:
        """The arguments of ``c(...)`` or ``list(...)``, up to the closing parenthesis."""
        items: list[tuple[str | None, Any]] = []
        while True:
            token = self.peek()
            if token is None:
                raise _NotLiteral
            if token.text == ")":
                self.i += 1
                break
            name = None
            after = self.peek(1)
            if token.kind in ("name", "str") and after is not None and after.text == "=":
                name = token.value
                self.i += 2
            value = self.value()
            if function == "c" and isinstance(value, dict):
                raise _NotLiteral  # c() of named vectors: keep the reader simple and honest
            if function == "c" and isinstance(value, list) and name is None:
                items += [(None, v) for v in value]  # c() flattens: c(1, c(2, 3)) is c(1, 2, 3)
            elif function == "c" and isinstance(value, list):
                raise _NotLiteral
            elif not (function == "c" and value is None):  # c(NULL) is nothing
                items.append((name, value))
            following = self.take()
            if following.text == ")":
                break
            if following.text != ",":
                raise _NotLiteral
        names = [n for n, _ in items]
        if function == "c" and not items:
            return None
        if items and all(n is not None for n in names):
            if len(set(names)) != len(names):
                raise _NotLiteral  # R keeps both; a dict cannot
            return {n: v for n, v in items}
        if any(n is not None for n in names):
            raise _NotLiteral
        if function == "c" and len(items) == 1:
            return items[0][1]  # R has no scalars: c("a") is "a"
        return [v for _, v in items]


def literal(tokens: list[Token]) -> Any:
    """The Python value of the literal ``tokens`` make, or :data:`NOT_LITERAL`."""
    reader = _Reader(tokens)
    try:
        value = reader.value()
    except _NotLiteral:
        return NOT_LITERAL
    return value if reader.peek() is None else NOT_LITERAL


def read_assignments(source: str) -> list[Assignment]:
    """The cell's top-level assignments, in order (``a <- b <- 1`` gives two).

    Raises
    ------
    RSyntaxError
        The cell has an unclosed string or bracket.
    """
    found: list[Assignment] = []
    for tokens in statements(source):
        names = []
        k = 0
        while (
            k + 1 < len(tokens)
            and tokens[k].kind == "name"
            and tokens[k].text not in _RESERVED
            and tokens[k + 1].text in _ASSIGN
        ):
            names.append(tokens[k].value)
            k += 2
        rest = tokens[k:]
        if not names and len(tokens) > 2 and tokens[-2].text in ("->", "->>") and tokens[-1].kind == "name":
            names, rest = [tokens[-1].value], tokens[:-2]  # "out/x.csv" -> product
        if not names or not rest:
            continue
        text = source[rest[0].start : rest[-1].end]
        value = literal(rest)
        found += [Assignment(name, value, text, tokens[0].line) for name in names]
    return found


def r_string(text: str) -> str:
    """``text`` as an R string literal, in double quotes."""
    for plain, escape in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        text = text.replace(plain, escape)
    return f'"{text}"'
