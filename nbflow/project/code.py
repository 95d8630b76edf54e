"""Read what a folder's ``nbflow_tasks.py`` declares, with :mod:`ast`, without running it.

The file is user code: it runs when the user runs the pipeline, never when a view looks
at the folder. A view still lists the tasks it defines, read from the source of its
``setup(pipeline)`` function: each kind declared in code gives a :class:`TaskReader` (its
``Pipeline`` method, the *facade*: ``@pipeline.task(...)`` functions,
``pipeline.task(...)(f)``, ``pipeline.http_task(...)`` calls), ``pipeline.add_task("kind",
"name", ...)`` for any of them, and edges between literal task names
(``pipeline["a"] >> pipeline["b"]``, ``pipeline.add_edge("a", "b")``). A name, an upstream
list or a product that is not a literal is not guessed: the task (or the file) is reported
as defined in code and not read. Pure: source text and readers in, declarations out; the
readers come from the kinds (the caller's registry), never imported here.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbflow.project.specs import RESERVED_NAMES, Product

#: the ``Pipeline`` method declaring a task of any kind declared in code: ``add_task(kind, name, /, **declaration)``
ADD_TASK = "add_task"


@dataclass(frozen=True)
class DeclaredTask:
    """A task of ``nbflow_tasks.py`` as its source declares it."""

    name: str
    #: the name of its kind (``python``, ``http``, ...)
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


@dataclass(frozen=True)
class TaskCall:
    """One declaration of a task in ``setup``, as written, handed to its kind's :class:`TaskReader`.

    ``pipeline.<facade>(...)`` (or ``@pipeline.<facade>``, ``pipeline.<facade>(...)(f)`` for a
    kind whose facade decorates), or ``pipeline.add_task("<kind>", "<name>", ...)``.
    """

    #: the line it is on
    line: int
    #: its positional arguments (for ``add_task``: those after the kind and the name)
    args: tuple[ast.expr, ...] = ()
    #: its keyword arguments (none is ``**mapping``: such a call is not handed to a reader)
    keywords: Mapping[str, ast.expr] = field(default_factory=dict)
    #: the task's name, when the call spells it apart (``add_task``'s second argument)
    name: str | None = None
    #: the function it decorates (``@pipeline.task``), its definition being in ``setup``
    function: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    #: the name of the function it decorates or is applied to (``pipeline.task(...)(f)``)
    function_name: str | None = None


@dataclass(frozen=True)
class TaskReader:
    """How the tasks of one kind declared in code are read from ``nbflow_tasks.py``."""

    #: the kind's name (``add_task``'s first argument, :attr:`DeclaredTask.kind`)
    kind: str
    #: one declaration -> the task it declares, or why it cannot be read without running it
    read: Callable[[TaskCall], DeclaredTask | str]
    #: the ``Pipeline`` method declaring a task of this kind (None: only ``add_task``)
    facade: str | None = None
    #: the facade decorates a function (``@pipeline.task``) and returns it, not the task
    decorates: bool = False
    #: what one task is called in messages ("HTTP task")
    noun: str = "task"


def literal(node: ast.AST | None) -> tuple[bool, Any]:
    """``(True, value)`` for a literal expression (``ast.literal_eval``), ``(False, None)`` otherwise."""
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
        ok, value = literal(node.slice)
        return value if ok and isinstance(value, str) else None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


class _Reader:
    def __init__(self, pipeline: str, readers: Iterable[TaskReader]) -> None:
        self.p = pipeline
        self.kinds = {r.kind: r for r in readers}
        #: the readers by facade (a ``Pipeline`` method name)
        self.facades = {r.facade: r for r in self.kinds.values() if r.facade}
        self.found = CodeDeclarations()
        #: the ``pipeline`` name nodes of constructs understood
        self.understood: set[int] = set()
        #: the nodes read already (a decorator, a call read as a side of ``>>``)
        self.handled: set[int] = set()
        #: the task each declaring call node declares (None: not read)
        self.names: dict[int, str | None] = {}

    def skip(self, node: ast.AST, why: str) -> None:
        self.found.unread.append(f"line {getattr(node, 'lineno', '?')}: {why}")

    # -- registrations -----------------------------------------------------------------

    def declare(self, reader: TaskReader, call: TaskCall | None, node: ast.AST) -> str | None:
        """Hand ``call`` to ``reader``: the task's name, or None (noted) if it cannot be read."""
        if call is None:
            return None
        found = reader.read(call)
        if isinstance(found, str):
            self.skip(node, found)
            return None
        self.found.tasks.append(found)
        return found.name

    def facade(self, node: ast.AST, *, decorates: bool | None = None) -> TaskReader | None:
        """The reader whose facade ``node`` (``pipeline.<facade>``) names, if any."""
        if not (isinstance(node, ast.Attribute) and _is_pipeline(node.value, self.p)):
            return None
        reader = self.facades.get(node.attr)
        if reader is None or (decorates is not None and reader.decorates != decorates):
            return None
        return reader

    def task_call(self, reader: TaskReader, call: ast.Call | None, node: ast.AST, **given: Any) -> TaskCall | None:
        """``call``'s arguments as a :class:`TaskCall` (None, noted, if they are ``*args`` or ``**mapping``)."""
        if call is None:
            return TaskCall(getattr(node, "lineno", 0), **given)
        if any(k.arg is None for k in call.keywords) or any(isinstance(a, ast.Starred) for a in call.args):
            self.skip(node, f"{article(reader.noun)}'s arguments given as *args or **mapping")
            return None
        keywords = {k.arg: k.value for k in call.keywords if k.arg}
        args = tuple(call.args[2:] if given.get("name") is not None else call.args)
        return TaskCall(call.lineno, args, keywords, **given)

    def add_task(self, call: ast.Call) -> str | None:
        """``pipeline.add_task("kind", "name", ...)``: the task's name, once handed to its kind's reader."""
        if any(isinstance(a, ast.Starred) for a in call.args[:2]) or len(call.args) < 2:
            self.skip(call, f"a task whose kind and name are not the first two arguments of {ADD_TASK}")
            return None
        ok, kind = literal(call.args[0])
        reader = self.kinds.get(kind) if ok and isinstance(kind, str) else None
        if reader is None:
            what = f"of kind {kind!r}, which is no kind declared in code" if ok else "whose kind is not a literal"
            self.skip(call, f"a task {what}")
            return None
        ok, name = literal(call.args[1])
        if not ok or not isinstance(name, str) or not name:
            self.skip(call, f"{article(reader.noun)} whose name is not a literal")
            return None
        if len(call.args) > 2:
            self.skip(call, f"{ADD_TASK} takes the kind and the name, then keywords only")
            return None
        return self.declare(reader, self.task_call(reader, call, call, name=name), call)

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
        if isinstance(node, ast.Call) and (
            _method(node.func, self.p, ADD_TASK) or self.facade(node.func, decorates=False) is not None
        ):  # a declaration returning its Task: the task it declares
            if id(node) not in self.handled:
                self.handled.add(id(node))
                self.call(node)
            name = self.names.get(id(node))
            return [name] if name else None
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
        handled = self.handled
        for node in ast.walk(setup):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node is not setup:
                for deco in node.decorator_list:
                    target = deco.func if isinstance(deco, ast.Call) else deco
                    reader = self.facade(target, decorates=True)
                    if reader is not None:
                        assert isinstance(target, ast.Attribute)
                        self.understood.add(id(target.value))
                        handled.add(id(deco))
                        call = deco if isinstance(deco, ast.Call) else None
                        found = self.task_call(reader, call, deco, function=node, function_name=node.name)
                        self.declare(reader, found, deco)
            elif isinstance(node, ast.Call) and id(node) not in handled:
                handled.add(id(node))
                self.call(node)
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

    def call(self, node: ast.Call) -> None:
        func = node.func
        reader = self.facade(func.func, decorates=True) if isinstance(func, ast.Call) else None
        if reader is not None:  # pipeline.task(...)(f)
            assert isinstance(func, ast.Call) and isinstance(func.func, ast.Attribute)
            self.handled.add(id(func))
            self.understood.add(id(func.func.value))
            arg = node.args[0] if node.args else None
            found = self.task_call(reader, func, node, function_name=arg.id if isinstance(arg, ast.Name) else None)
            self.declare(reader, found, node)
            return
        reader = self.facade(func)
        if reader is not None:  # pipeline.http_task(...), pipeline.task(f)
            assert isinstance(func, ast.Attribute)
            self.understood.add(id(func.value))
            self.names[id(node)] = self.declare(reader, self.task_call(reader, node, node), node)
        elif _method(func, self.p, ADD_TASK):
            assert isinstance(func, ast.Attribute)
            self.understood.add(id(func.value))
            self.names[id(node)] = self.add_task(node)
        elif isinstance(func, ast.Attribute) and (
            _method(func, self.p, "add_edge")
            or (func.attr in ("set_upstream", "set_downstream") and isinstance(func.value, ast.Subscript))
        ):
            self.method_edge(node)


def _is_shift(node: ast.AST) -> bool:
    return isinstance(node, ast.BinOp) and isinstance(node.op, (ast.RShift, ast.LShift))


def _is_named_paths(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def article(noun: str) -> str:
    """``noun`` after "a" or "an": "an HTTP task", "a task", "an SQL task" (an initialism by its letters)."""
    first = noun.split(" ", 1)[0]
    vowel = first[:1].upper() in ("AEFHILMNORSX" if first.isupper() and len(first) > 1 else "AEIOU")
    return f"{'an' if vowel else 'a'} {noun}"


def declared_task(
    kind: str, name: str, keywords: Mapping[str, ast.expr], defaults: Mapping[str, str], line: int
) -> DeclaredTask:
    """The task ``name`` whose ``upstream`` and ``product`` are the literals of ``keywords``
    (either is noted unread when it is not a literal of the right shape)."""
    unread = []
    upstream: tuple[str, ...] = ()
    if "upstream" in keywords:
        ok, value = literal(keywords["upstream"])
        if ok and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            upstream = tuple(value)
        else:
            unread.append("upstream")
    product: Product = None
    if "product" in keywords:
        ok, value = literal(keywords["product"])
        if ok and (value is None or isinstance(value, str) or _is_named_paths(value)):
            product = value
        else:
            unread.append("product")
    return DeclaredTask(name, kind, upstream, product, dict(defaults), line, tuple(unread))


def function_defaults(func: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, str]:
    """A function's parameters: its arguments with a literal default (as ``repr`` gives them)."""
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
    found = {}
    for arg, default in pairs:
        ok, value = literal(default)
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


def read_declarations(source: str, readers: Iterable[TaskReader] = ()) -> CodeDeclarations:
    """What the ``setup(pipeline)`` function of a tasks file's ``source`` declares, read with ``ast``
    by ``readers`` (one a kind declared in code; the pipeline passes the registry's).

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
        return _Reader(params[0].arg, readers).read(setup)
    except RecursionError:
        return CodeDeclarations(unread=["it is nested too deeply to read"])
