"""Read what a folder's ``nbflow_tasks.py`` declares, with :mod:`ast`, without running it.

The file is user code: it runs when the user runs the pipeline, never when a view looks
at the folder. A view still lists the tasks it defines, read from the source of its
``setup(pipeline)`` function: ``@pipeline.task(...)`` functions, ``pipeline.task(...)(f)``,
``pipeline.http_task(...)`` calls, and edges between literal task names
(``pipeline["a"] >> pipeline["b"]``, ``pipeline.add_edge("a", "b")``). A name, an
upstream list or a product that is not a literal is not guessed: the task (or the file)
is reported as defined in code and not read. Pure: source text in, declarations out.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from nbflow.project.specs import RESERVED_NAMES, Product

#: keyword arguments of ``Pipeline.task`` and ``Pipeline.http_task`` that are not settings
_TASK_ARGS = frozenset({"name", "upstream", "product"})
_HTTP_ARGS = frozenset({"name", "url", "method", "expect_status", "headers", "upstream", "product", "params"})


@dataclass(frozen=True)
class DeclaredTask:
    """A task of ``nbflow_tasks.py`` as its source declares it."""

    name: str
    #: ``python`` or ``http``
    kind: str
    upstream: tuple[str, ...]
    product: Product
    #: parameter name -> the source text of its literal default (those read)
    defaults: dict[str, str]
    line: int
    #: what could not be read without running the file (an upstream, a product), if anything
    unread: tuple[str, ...] = ()


@dataclass
class CodeDeclarations:
    """Everything read from the file; ``complete`` when nothing in ``setup`` was left unread."""

    tasks: list[DeclaredTask] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    #: why the reading is not complete: "line 12: ..." (empty when complete)
    unread: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unread


def _literal(node: ast.AST | None) -> tuple[bool, Any]:
    if node is None:
        return False, None
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _is_pipeline(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _method(node: ast.AST, name: str, method: str) -> bool:
    """``node`` is ``<pipeline>.<method>``."""
    return isinstance(node, ast.Attribute) and node.attr == method and _is_pipeline(node.value, name)


def _task_ref(node: ast.AST, name: str) -> str | None:
    """The task ``pipeline["x"]`` names, or a literal name (in ``add_edge``)."""
    if isinstance(node, ast.Subscript) and _is_pipeline(node.value, name):
        ok, value = _literal(node.slice)
        return value if ok and isinstance(value, str) else None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


class _Reader:
    def __init__(self, pipeline: str) -> None:
        self.p = pipeline
        self.found = CodeDeclarations()
        #: the ``pipeline`` name nodes of constructs understood
        self.understood: set[int] = set()

    def skip(self, node: ast.AST, why: str) -> None:
        self.found.unread.append(f"line {getattr(node, 'lineno', '?')}: {why}")

    # -- registrations -----------------------------------------------------------------

    def task(self, call: ast.Call | None, func_name: str | None, node: ast.AST, defaults: dict[str, str]) -> None:
        """``@pipeline.task``, ``@pipeline.task(...)``, ``pipeline.task(...)(f)``, ``pipeline.task(f)``."""
        keywords = {k.arg: k.value for k in call.keywords if k.arg} if call is not None else {}
        if call is not None and any(k.arg is None for k in call.keywords):
            self.skip(node, "a task's arguments given as **mapping")
            return
        name: Any = func_name
        if "name" in keywords:
            ok, name = _literal(keywords["name"])
            if not ok:
                name = None
        if not isinstance(name, str) or not name:
            self.skip(node, "a task whose name is not a literal")
            return
        self.add(name, "python", keywords, defaults, node)

    def http_task(self, call: ast.Call) -> None:
        keywords = {k.arg: k.value for k in call.keywords if k.arg}
        if any(k.arg is None for k in call.keywords) or any(isinstance(a, ast.Starred) for a in call.args):
            self.skip(call, "an HTTP task's arguments given as *args or **mapping")
            return
        ok, name = _literal(call.args[0] if call.args else keywords.get("name"))
        if not ok or not isinstance(name, str) or not name:
            self.skip(call, "an HTTP task whose name is not a literal")
            return
        defaults: dict[str, str] = {}
        if "params" in keywords:
            ok, params = _literal(keywords["params"])
            if ok and isinstance(params, dict) and all(isinstance(k, str) for k in params):
                defaults = {k: repr(v) for k, v in params.items()}
        self.add(name, "http", keywords, defaults, call)

    def add(self, name: str, kind: str, keywords: dict[str, ast.expr], defaults: dict[str, str], node: Any) -> None:
        unread = []
        upstream: tuple[str, ...] = ()
        if "upstream" in keywords:
            ok, value = _literal(keywords["upstream"])
            if ok and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                upstream = tuple(value)
            else:
                unread.append("upstream")
        product: Product = None
        if "product" in keywords:
            ok, value = _literal(keywords["product"])
            if ok and (value is None or isinstance(value, str) or _is_named_paths(value)):
                product = value
            else:
                unread.append("product")
        self.found.tasks.append(DeclaredTask(name, kind, upstream, product, defaults, node.lineno, tuple(unread)))

    # -- edges -------------------------------------------------------------------------

    def refs(self, node: ast.AST) -> list[str] | None:
        """The tasks a side of ``>>`` names: ``pipeline["x"]`` or a list of them; None if not literal."""
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            names = [_task_ref(e, self.p) if isinstance(e, ast.Subscript) else None for e in node.elts]
            if all(names):
                self.understood.update(id(e.value) for e in node.elts if isinstance(e, ast.Subscript))
                return [n for n in names if n]
            return None
        if isinstance(node, ast.Subscript):
            name = _task_ref(node, self.p)
            if name:
                self.understood.add(id(node.value))
                return [name]
        if isinstance(node, ast.Call) and _method(node.func, self.p, "http_task"):  # it returns its Task
            ok, name = _literal(
                node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
            )
            return [name] if ok and isinstance(name, str) and name else None
        return None

    def shift(self, node: ast.BinOp) -> list[str] | None:
        """``a >> b`` (``a << b``) adds its edges; returns what the expression is (``b``)."""
        left = (
            self.shift(node.left) if isinstance(node.left, ast.BinOp) and _is_shift(node.left) else self.refs(node.left)
        )
        right = self.refs(node.right)
        if left is None or right is None:
            self.skip(node, "an edge between tasks that are not named literally (pipeline['name'])")
            return None
        pairs = [(a, b) for a in left for b in right] if isinstance(node.op, ast.RShift) else []
        pairs += [(b, a) for a in left for b in right] if isinstance(node.op, ast.LShift) else []
        self.found.edges.extend(pairs)
        return right

    def method_edge(self, call: ast.Call) -> None:
        """``pipeline.add_edge(a, b)``, ``pipeline["b"].set_upstream(pipeline["a"])``, ..."""
        func = call.func
        assert isinstance(func, ast.Attribute)
        if _method(func, self.p, "add_edge") and len(call.args) == 2 and not call.keywords:
            up, down = (_task_ref(a, self.p) for a in call.args)
            if up and down:
                self.understood.add(id(func.value))
                self.understood.update(id(a.value) for a in call.args if isinstance(a, ast.Subscript))
                self.found.edges.append((up, down))
                return
        elif isinstance(func.value, ast.Subscript) and not call.keywords:
            me = _task_ref(func.value, self.p)
            others = [self.refs(a) for a in call.args]
            if me and all(o is not None for o in others):
                self.understood.add(id(func.value.value))
                for other in (n for o in others for n in o or ()):
                    self.found.edges.append((other, me) if func.attr == "set_upstream" else (me, other))
                return
        self.skip(call, f"an edge added with {ast.unparse(func)}(...) between tasks not named literally")

    # -- the walk ----------------------------------------------------------------------

    def read(self, setup: ast.FunctionDef) -> CodeDeclarations:
        handled: set[int] = set()
        for node in ast.walk(setup):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node is not setup:
                for deco in node.decorator_list:
                    target = deco.func if isinstance(deco, ast.Call) else deco
                    if _method(target, self.p, "task"):
                        assert isinstance(target, ast.Attribute)
                        self.understood.add(id(target.value))
                        handled.add(id(deco))
                        self.task(deco if isinstance(deco, ast.Call) else None, node.name, deco, _defaults(node))
            elif isinstance(node, ast.Call) and id(node) not in handled:
                self.call(node, handled)
            elif isinstance(node, ast.BinOp) and _is_shift(node) and id(node) not in handled:
                inner = node.left
                while _is_shift(inner):  # a chain's inner shifts are read with it
                    assert isinstance(inner, ast.BinOp)
                    handled.add(id(inner))
                    inner = inner.left
                self.shift(node)
        for node in ast.walk(setup):
            if _is_pipeline(node, self.p) and id(node) not in self.understood:
                self.skip(node, f"the pipeline is used in a way read only by running it ({_context(setup, node)})")
        return self.found

    def call(self, node: ast.Call, handled: set[int]) -> None:
        func = node.func
        if isinstance(func, ast.Call) and _method(func.func, self.p, "task"):  # pipeline.task(...)(f)
            handled.add(id(func))
            assert isinstance(func.func, ast.Attribute)
            self.understood.add(id(func.func.value))
            arg = node.args[0] if node.args else None
            self.task(func, arg.id if isinstance(arg, ast.Name) else None, node, {})
        elif _method(func, self.p, "task"):  # pipeline.task(f) or pipeline.task(...) not applied here
            assert isinstance(func, ast.Attribute)
            self.understood.add(id(func.value))
            if node.args and isinstance(node.args[0], ast.Name):
                self.task(node, node.args[0].id, node, {})
            else:
                self.skip(node, "a task registered in a way read only by running it")
        elif _method(func, self.p, "http_task"):
            assert isinstance(func, ast.Attribute)
            self.understood.add(id(func.value))
            self.http_task(node)
        elif isinstance(func, ast.Attribute) and (
            _method(func, self.p, "add_edge")
            or (func.attr in ("set_upstream", "set_downstream") and isinstance(func.value, ast.Subscript))
        ):
            self.method_edge(node)


def _is_shift(node: ast.AST) -> bool:
    return isinstance(node, ast.BinOp) and isinstance(node.op, (ast.RShift, ast.LShift))


def _is_named_paths(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _defaults(func: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, str]:
    """A function task's parameters: its arguments with a literal default (as ``repr`` gives them)."""
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
    found = {}
    for arg, default in pairs:
        ok, value = _literal(default)
        if ok and arg.arg not in RESERVED_NAMES:
            found[arg.arg] = repr(value)
    return found


def _context(setup: ast.FunctionDef, node: ast.AST) -> str:
    """The first line of the innermost statement holding ``node``."""
    found = [s for s in ast.walk(setup) if isinstance(s, ast.stmt) and s is not setup and node in ast.walk(s)]
    if not found:
        return "?"
    text = ast.unparse(found[-1]).splitlines()[0]
    return text if len(text) <= 60 else text[:57] + "..."


def read_declarations(source: str) -> CodeDeclarations:
    """What the ``setup(pipeline)`` function of a tasks file's ``source`` declares, read with ``ast``.

    Never raises for bad source: what cannot be read is listed in ``unread``.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        line = getattr(e, "lineno", None)
        return CodeDeclarations(unread=[f"it is not valid Python{f' (line {line})' if line else ''}"])
    setups = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "setup"]
    if not setups:
        return CodeDeclarations(unread=["it has no setup(pipeline) function nbflow can read"])
    setup = setups[-1]
    params = [*setup.args.posonlyargs, *setup.args.args]
    if not params:
        return CodeDeclarations(unread=[f"line {setup.lineno}: setup() takes no pipeline argument"])
    try:
        return _Reader(params[0].arg).read(setup)
    except RecursionError:
        return CodeDeclarations(unread=["it is nested too deeply to read"])
