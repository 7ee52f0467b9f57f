"""`@node`: a plain function becomes a `Node`, whose parameters are filled by name.

A `Node` stays callable like its function and is also a one-node flow, so every `Flow`
method (`then`, `run`, ...) works on it directly.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
import sys
import threading
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from .errors import NodeDefinitionError, closest, short_repr
from .sentinels import UNSET

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from .flow import Flow
    from .worker import Worker


_PLAIN_VALIDATED = (int, float, str, bool, bytes, list, dict, tuple, set)


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a node's function."""

    name: str
    default: Any  # UNSET when required
    annotation: Any  # UNSET when absent

    @property
    def required(self) -> bool:
        return self.default is UNSET


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
        max_delay: float | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        timeout: float | None = None,
        max_iterations: int = 10_000,
        conflict_retries: int = 3,
        localns: dict[str, Any] | None = None,
        **unknown: Any,
    ) -> None:
        _check_option_names(unknown, fn)  # a raw TypeError would not say which options exist
        self.fn = _usable_function(fn, name)
        self.name = name if name is not None else _function_name(fn)
        location = _location(fn)
        options = _Options(self.name, location)
        self.retries = options.integer("retries", retries, minimum=0)
        self.retry_delay = options.seconds("retry_delay", retry_delay)
        self.backoff = options.factor("backoff", backoff, positive=True)
        self.max_delay = None if max_delay is None else options.seconds("max_delay", max_delay)
        self.retry_on = options.exception_types("retry_on", retry_on)
        self.timeout = None if timeout is None else options.seconds("timeout", timeout, positive=True)
        self.max_iterations = options.integer("max_iterations", max_iterations, minimum=1)
        self.conflict_retries = options.integer("conflict_retries", conflict_retries, minimum=0)
        options.check_longest_wait(self.retries, self.retry_delay, self.backoff, self.max_delay)
        options.raise_problems()
        self.is_async = _is_async(fn)
        self.params = _read_params(fn, self.name, location)
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
        return _location(self.fn)

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
        adapter = None if hint is Any or (hint is None and name == "return") else self._compile(name, hint)
        self._adapters[name] = adapter
        return adapter

    def _compile(self, name: str, hint: Any) -> TypeAdapter[Any]:
        try:
            return _make_adapter(hint)
        except Exception as exc:  # pydantic's schema errors vary: any of them means "cannot validate this"
            what = "its return annotation" if name == "return" else f"parameter '{name}'"
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
            raise NodeDefinitionError(
                self.name,
                [
                    f"{what} is annotated {short_repr(hint)}, which pydantic cannot validate ({reason}). "
                    "Use a type pydantic understands, or Any to skip validation."
                ],
                self.location,
            ) from exc

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
        from .redaction import mentions_secret

        return mentions_secret(self._hints.get(name))

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
    # pydantic is imported when the first annotated node is compiled, not with the package:
    # `import aetherflow` (and the command line) stay quick.
    from pydantic import ConfigDict, TypeAdapter

    try:
        return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
    except Exception:  # noqa: BLE001 - models carry their own config; pydantic refuses a second
        return TypeAdapter(hint)


OPTIONS = (
    "name", "retries", "retry_delay", "backoff", "max_delay", "retry_on", "timeout",
    "max_iterations", "conflict_retries",
)  # fmt: skip
# The longest wait a thread can be asked for (time.sleep and Event.wait refuse more).
_LONGEST_WAIT = threading.TIMEOUT_MAX


class _Options:
    """Checks `@node` options, collecting every problem so one error lists them all."""

    def __init__(self, node: str, location: str) -> None:
        self.node, self.location = node, location
        self.problems: list[str] = []

    def integer(self, what: str, value: Any, *, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            self.problems.append(f"@node({what}=...) must be an int >= {minimum}, got {short_repr(value)}.")
            return minimum
        return int(value)

    def seconds(self, what: str, value: Any, *, positive: bool = False) -> float:
        """A wait: a finite number of seconds >= 0 (> 0 if ``positive``) a thread can sleep."""
        number = self.factor(what, value, positive=positive)
        if number > _LONGEST_WAIT:
            self.problems.append(f"@node({what}=...) must be at most {_LONGEST_WAIT:.0f} s, got {number:g}.")
            return 1.0
        return number

    def factor(self, what: str, value: Any, *, positive: bool = False) -> float:
        """A finite number >= 0, or > 0 if ``positive``."""
        number = _as_float(value)
        if not (math.isfinite(number) and (number > 0 or (number == 0 and not positive))):
            bound = "> 0" if positive else ">= 0"
            self.problems.append(f"@node({what}=...) must be a finite number {bound}, got {short_repr(value)}.")
            return 1.0
        return number

    def exception_types(self, what: str, value: Any) -> tuple[type[BaseException], ...]:
        types = (value,) if isinstance(value, type) else value
        if not isinstance(types, (tuple, list)) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in types
        ):
            self.problems.append(
                f"@node({what}=...) must be an exception class or a tuple of them, e.g. "
                f"{what}=(IOError, TimeoutError), got {short_repr(value)}."
            )
            return (Exception,)
        return tuple(types)

    def check_longest_wait(self, retries: int, delay: float, backoff: float, cap: float | None) -> None:
        """Refuse a backoff whose last wait no thread could sleep (and that no one wants)."""
        if retries == 0 or delay == 0 or self.problems:
            return
        try:
            longest = delay * backoff ** (retries - 1)
        except OverflowError:
            longest = math.inf
        if cap is not None:
            longest = min(longest, cap)
        if longest > _LONGEST_WAIT:
            self.problems.append(
                f"retry_delay={delay:g} with backoff={backoff:g} would wait {longest:.3g} s before "
                f"retry {retries}; cap the wait with @node(max_delay=...) or use fewer retries."
            )

    def raise_problems(self) -> None:
        if self.problems:
            raise NodeDefinitionError(self.node, self.problems, self.location)


def _as_float(value: Any) -> float:
    """``value`` as a float: NaN if it is no real number, inf if too large for a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.inf
    except (TypeError, ValueError):
        return math.nan


def _check_option_names(options: Mapping[str, Any], fn: Any) -> None:
    """Refuse option names `@node` does not know, suggesting the closest one."""
    unknown = [k for k in options if k not in OPTIONS]
    if unknown:
        problems = []
        for k in unknown:
            near = closest(str(k), OPTIONS)
            hint = f"did you mean '{near[0]}'?" if near else "the options are " + ", ".join(OPTIONS) + "."
            problems.append(f"@node has no option {k!r}; {hint}")
        raise NodeDefinitionError(_function_name(fn), problems, _location(fn))


def _usable_function(fn: Any, name: Any) -> Callable[..., Any]:
    """``fn`` if `@node` can wrap it: callable, with a signature, given a usable name."""
    label = name if isinstance(name, str) and name else _function_name(fn)
    if isinstance(fn, Node):
        raise NodeDefinitionError(label, [f"{fn!r} is already a node; use it as it is, or @node its function (.fn)."])
    if not callable(fn):
        raise NodeDefinitionError(label, [f"@node wraps a function, found {short_repr(fn)} ({type(fn).__name__})."])
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise NodeDefinitionError(label, [f"@node(name=...) must be a non-empty str, got {short_repr(name)}."])
    try:
        inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise NodeDefinitionError(
            label,
            [f"the signature of {short_repr(fn)} cannot be read ({exc}); wrap it in a def with named parameters."],
        ) from exc
    return fn  # type: ignore[no-any-return]


def _function_name(fn: Any) -> str:
    """A vertex name for ``fn``: its ``__name__`` (a partial's function's), else its type's."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__name__", None)
    if isinstance(name, str) and name:
        return name
    return type(fn).__name__


def _location(fn: Any) -> str:
    code = getattr(_hinted(fn), "__code__", None)
    if code is None:
        return "?"
    return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"


def _hinted(fn: Any) -> Any:
    """The function whose annotations describe ``fn``'s parameters (under partials, __call__)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, type):
        return fn.__init__  # type: ignore[misc]  # a class is called like its __init__
    if not (inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn)) and callable(fn):
        return type(fn).__call__  # an object called like a function: its method has the hints
    return fn


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(_hinted(fn))


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


def _read_params(fn: Callable[..., Any], name: str, location: str) -> tuple[Param, ...]:
    params = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise NodeDefinitionError(
                name,
                [
                    f"node '{name}' has parameter '{p}', but nodes receive their "
                    "arguments by name: use plain named parameters instead."
                ],
                location,
            )
        default = UNSET if p.default is p.empty else p.default
        annotation = UNSET if p.annotation is p.empty else p.annotation
        params.append(Param(p.name, default, annotation))
    return tuple(params)


def _type_hints(fn: Callable[..., Any], localns: dict[str, Any] | None) -> dict[str, Any]:
    """Resolve annotations one by one, so one unresolvable name only skips its own check."""
    fn = _hinted(fn)
    try:
        # include_extras keeps `Annotated[int, Field(gt=0)]` whole: its constraints are the point.
        return typing.get_type_hints(fn, localns=localns, include_extras=True)
    except Exception:  # noqa: BLE001 - fall back to resolving each annotation on its own
        pass
    hints = {}
    globalns = getattr(fn, "__globals__", {})
    annotations = getattr(fn, "__annotations__", None)
    for name, ann in (annotations if isinstance(annotations, dict) else {}).items():
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
    max_delay: float | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
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

    def decorate(f: Callable[..., Any]) -> Node:
        _check_option_names(options, f)  # before the call: `localns=` is not a user's option
        return Node(f, localns=localns, **options)

    return decorate(fn) if fn is not None else decorate
