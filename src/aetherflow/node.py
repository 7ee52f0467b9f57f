"""`@node`: a plain function becomes a `Node`, whose parameters are filled by name.

A `Node` stays callable like its function and is also a one-node flow, so every `Flow`
method (`then`, `run`, ...) works on it directly.
"""

from __future__ import annotations

import inspect
import os
import sys
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from pydantic import ConfigDict, SecretBytes, SecretStr, TypeAdapter

from .errors import FlowDefinitionError

if TYPE_CHECKING:
    from .flow import Flow
    from .job import Job  # noqa: F401 - used in string annotations below
    from .worker import Worker


class _Unset:
    """Marks "no value" where ``None`` is a legitimate value (a default, an output)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

_PLAIN_VALIDATED = (int, float, str, bool, bytes, list, dict, tuple, set)
_ADAPTER_CONFIG = ConfigDict(arbitrary_types_allowed=True)


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a node's function."""

    name: str
    default: Any  # UNSET when required
    annotation: Any  # UNSET when absent

    @property
    def required(self) -> bool:
        return self.default is UNSET


def _mentions_secret(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    return any(_mentions_secret(arg) for arg in typing.get_args(annotation))


class Node:
    """A function wrapped by `@node`; see `node` for the options."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        retries: int = 0,
        retry_delay: float = 0.0,
        backoff: float = 1.0,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        timeout: float | None = None,
        max_iterations: int = 10_000,
        conflict_retries: int = 3,
        localns: dict[str, Any] | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.is_async = inspect.iscoroutinefunction(fn)
        self.retries = _int_at_least(0, retries, "retries", self.name)
        self.retry_delay = float(retry_delay)
        self.backoff = float(backoff)
        self.retry_on = tuple(retry_on)
        self.timeout = timeout
        self.max_iterations = _int_at_least(1, max_iterations, "max_iterations", self.name)
        self.conflict_retries = _int_at_least(0, conflict_retries, "conflict_retries", self.name)
        self.params = _read_params(fn, self.name)
        self.call_positional = _positional(fn)
        self.param_names = frozenset(p.name for p in self.params)
        self._localns = localns
        self._resolved: dict[str, Any] | None = None
        self._adapters: dict[str, TypeAdapter[Any] | None] = {}
        self._flow: Flow | None = None
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    # -- calling --------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Node {self.name} at {self.location}>"

    @property
    def location(self) -> str:
        code = getattr(self.fn, "__code__", None)
        if code is None:
            return "?"
        return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"

    def __getstate__(self) -> dict[str, Any]:
        # Travels to Dask workers: resolve annotations here, leave caches and the
        # defining frame's locals behind (they may hold anything, even a client).
        self._resolved = self._hints
        state = dict(self.__dict__)
        state.update(_localns=None, _adapters={}, _flow=None)
        return state

    # -- validation, compiled once per parameter --------------------------------------

    @property
    def _hints(self) -> dict[str, Any]:
        # Resolved on first use, so annotations may name classes defined after the node.
        hints = self._resolved
        if hints is None:
            hints = self._resolved = _type_hints(self.fn, self._localns)
        return hints

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def adapter(self, name: str) -> TypeAdapter[Any] | None:
        """The pydantic adapter for a parameter (or ``"return"``), or None when unannotated."""
        try:
            return self._adapters[name]
        except KeyError:
            pass
        hint = self._hints.get(name, Any)
        adapter = None if hint is Any or (hint is None and name == "return") else _make_adapter(hint)
        self._adapters[name] = adapter
        return adapter

    def checker(self, name: str) -> tuple[Callable[[Any], Any], type | None] | None:
        """How to validate and coerce one parameter (or ``"return"``): ``(validate, exact)``.

        None if unannotated. Built once per parameter. A value whose type is exactly
        ``exact`` (set for plain annotations: ``int``, ``str``, ...) is passed through
        without calling ``validate``; the caller tests it inline, as that costs no call.
        """
        hint = self._hints.get(name)
        if hint is None or hint is Any or hint is type(None):
            return None
        adapter = self.adapter(name)
        if adapter is None:
            return None
        return adapter.validate_python, hint if hint in _PLAIN_VALIDATED else None

    def annotation(self, name: str) -> Any:
        return self._hints.get(name, UNSET)

    def is_secret(self, name: str) -> bool:
        """Whether a parameter is annotated `SecretStr`/`SecretBytes` (its input is stored redacted)."""
        return _mentions_secret(self._hints.get(name))

    # -- a node is a one-node flow ------------------------------------------------------

    def as_flow(self) -> Flow:
        """The one-node flow of this node (built once: its validated graph is reused)."""
        flow = self._flow
        if flow is None:
            from .flow import Flow

            flow = self._flow = Flow([self])
        return flow

    def then(self, nxt: Node | Flow) -> Flow:
        return self.as_flow().then(nxt)

    def fan_out_to(self, nodes: Sequence[Node]) -> Flow:
        return self.as_flow().fan_out_to(nodes)

    def fan_in(self, join: Node) -> Flow:
        return self.as_flow().fan_in(join)

    def map(self, each: Node) -> Flow:
        return self.as_flow().map(each)

    def branch_on(self, targets: Mapping[Any, Node], *, default: Node | None = None) -> Flow:
        return self.as_flow().branch_on(targets, default=default)

    def repeat(self, times: int) -> Flow:
        return self.as_flow().repeat(times)

    def named(self, name: str) -> Flow:
        return self.as_flow().named(name)

    @property
    def inputs(self) -> dict[str, bool]:
        return self.as_flow().inputs

    def validate(self, context: Any = None) -> None:
        self.as_flow().validate(context)

    def to_mermaid(self) -> str:
        return self.as_flow().to_mermaid()

    def to_dot(self) -> str:
        return self.as_flow().to_dot()

    def run(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        context: Any = None,
        worker: Worker | None = None,
    ) -> Any:
        return self.as_flow().run(inputs, context=context, worker=worker)

    def arun(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        context: Any = None,
        worker: Worker | None = None,
    ) -> Awaitable[Any]:
        return self.as_flow().arun(inputs, context=context, worker=worker)


def _make_adapter(hint: Any) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(hint, config=_ADAPTER_CONFIG)
    except Exception:  # noqa: BLE001 - models carry their own config; pydantic refuses a second
        return TypeAdapter(hint)


def _int_at_least(minimum: int, value: int, what: str, node_name: str) -> int:
    if not isinstance(value, int) or value < minimum:
        raise FlowDefinitionError(
            node_name, [f"@node({what}=...) must be an int >= {minimum}, got {value!r}."]
        )
    return value


def _positional(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` taking every parameter by position, in order (a call by name costs more)."""
    keyword_only = [p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY]
    return _KeywordOnly(fn, tuple(keyword_only)) if keyword_only else fn


class _KeywordOnly:
    """Calls a function whose last parameters are keyword-only with all of them by position."""

    def __init__(self, fn: Callable[..., Any], names: tuple[str, ...]) -> None:
        self.fn, self.names = fn, names

    def __call__(self, *args: Any) -> Any:
        split = len(args) - len(self.names)
        return self.fn(*args[:split], **dict(zip(self.names, args[split:], strict=True)))


def _read_params(fn: Callable[..., Any], name: str) -> tuple[Param, ...]:
    params = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise FlowDefinitionError(
                name,
                [
                    f"node '{name}' has parameter '{p}', but nodes receive their "
                    "arguments by name: use plain named parameters instead."
                ],
            )
        default = UNSET if p.default is p.empty else p.default
        annotation = UNSET if p.annotation is p.empty else p.annotation
        params.append(Param(p.name, default, annotation))
    return tuple(params)


def _type_hints(fn: Callable[..., Any], localns: dict[str, Any] | None) -> dict[str, Any]:
    """Resolve annotations one by one, so one unresolvable name only skips its own check."""
    try:
        # include_extras keeps `Annotated[int, Field(gt=0)]` whole: its constraints are the point.
        return typing.get_type_hints(fn, localns=localns, include_extras=True)
    except Exception:  # noqa: BLE001 - fall back to resolving each annotation on its own
        pass
    hints = {}
    globalns = getattr(fn, "__globals__", {})
    for name, ann in getattr(fn, "__annotations__", {}).items():
        try:
            hints[name] = eval(ann, globalns, localns or {}) if isinstance(ann, str) else ann
        except Exception:  # noqa: BLE001 - unresolvable: that parameter is not validated
            continue
    return hints


@overload
def node(fn: Callable[..., Any], /) -> Node: ...


@overload
def node(
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: float = 0.0,
    backoff: float = 1.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    timeout: float | None = None,
    max_iterations: int = 10_000,
    conflict_retries: int = 3,
) -> Callable[[Callable[..., Any]], Node]: ...


def node(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Turn a function (sync or ``async def``) into a `Node`.

    >>> @node
    ... def load(path: str) -> list[str]:
    ...     return open(path).read().splitlines()
    >>> @node(retries=3, retry_delay=0.1, backoff=2.0, retry_on=(IOError,), timeout=5.0)
    ... async def fetch(url: str, http_client) -> bytes: ...
    """
    caller = sys._getframe(1)
    # A node defined inside a function may annotate with classes local to that function.
    localns = None if caller.f_locals is caller.f_globals else dict(caller.f_locals)
    if fn is not None:
        return Node(fn, localns=localns)
    return lambda f: Node(f, localns=localns, **options)
