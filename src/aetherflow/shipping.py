"""Shipping a context class by value: to a Dask worker, from a notebook, a script or a function.

A context class defined in ``__main__`` or inside a function cannot be imported on a Dask
worker, so the driver pickles the class itself with cloudpickle (Dask's own serialiser)
and the worker rebuilds it. One obstacle: dependency-injector's providers are C extension
types whose default pickling carries their state, and a singleton's state is a lock, a
``threading.local`` or a context variable, none of which pickles (nor should travel: a
`Singleton` is made afresh in each process). So a provider with a construction
(``provides``, ``args``, ``kwargs``, attribute injections, overridings) travels as that
construction and is rebuilt the way dependency-injector's own ``__deepcopy__`` copies it:
an empty provider of the same type, then its setters. Other providers (``Object``,
``Configuration``, ``Self``...) keep dependency-injector's default pickling; one that
cannot travel is named in a `ContextNotShippableError`.

One class identity per Dask worker process: the driver pickles each class once and keys
it by the digest of its bytes; a worker rebuilds a key once and keeps its one context
instance, so the second job that uses a context finds the same providers, and a
`Singleton` stays one per process.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

try:
    import cloudpickle
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "Shipping a context to Dask needs cloudpickle. Install it with: pip install 'aetherflow[dask]'"
    ) from exc

from dependency_injector import providers as _di

from .errors import AetherFlowError
from .providers import _Options

# Providers that dependency-injector's ``__deepcopy__`` copies as an empty provider plus
# setters; their other fields are runtime state (an instance, a lock, a thread-local).
_CALLS = (_di.Callable, _di.Factory, _di.BaseSingleton, _di.BaseResource, _di.MethodCaller)
_GETTERS = (_di.AttributeGetter, _di.ItemGetter)


class ContextNotShippableError(AetherFlowError, TypeError):
    """A context class that cannot be pickled to travel to the Dask workers."""


@dataclass(frozen=True)
class ShippedContext:
    """A context class as bytes, with the digest a Dask worker keeps its instance by."""

    key: str  # sha256 of ``blob``: the same class sent twice is the same key
    name: str  # the class's qualified name, for messages
    blob: bytes


def _construction(provider: Any) -> dict[str, Any] | None:
    """What ``provider``'s ``__deepcopy__`` copies, by setter name; None for other providers."""
    state: dict[str, Any]
    if isinstance(provider, _CALLS):
        state = {"provides": provider.provides, "args": provider.args, "kwargs": provider.kwargs}
        if isinstance(provider, (_di.Factory, _di.BaseSingleton)):
            state["attributes"] = provider.attributes
    elif isinstance(provider, _GETTERS):
        state = {"provides": provider.provides, "name": provider.name}
    elif isinstance(provider, _di.ProvidedInstance):
        state = {"provides": provider.provides}
    elif isinstance(provider, _di.Dependency):
        state = {"instance_of": provider.instance_of, "default": provider.default, "parent": provider.parent}
    else:
        return None
    if isinstance(provider, _Options):
        state["options"] = (provider.guard, provider.teardown)
    state["overridden"] = provider.overridden
    return state


_SETTERS: dict[str, Callable[[Any, Any], Any]] = {
    "provides": lambda p, v: p.set_provides(v),
    "args": lambda p, v: p.set_args(*v),
    "kwargs": lambda p, v: p.set_kwargs(**v),
    "attributes": lambda p, v: p.set_attributes(**v),
    "name": lambda p, v: p.set_name(v),
    "instance_of": lambda p, v: p.set_instance_of(v),
    "default": lambda p, v: p.set_default(v),
    "parent": lambda p, v: None if v is None else p.assign_parent(v),
    "options": lambda p, v: p._set_options(*v),
    "overridden": lambda p, v: [p.override(o) for o in v],
}


def _rebuild(provider: Any, state: dict[str, Any]) -> None:
    """Give an empty provider its construction back, in the order ``__deepcopy__`` does."""
    for setter, value in state.items():
        _SETTERS[setter](provider, value)


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, with providers pickled as their construction instead of their fields.

    dependency-injector's providers have no ``__reduce__`` of their own: Cython's default
    pickles every field, so a singleton's lock or thread-local fails, and a provider whose
    ``__getattr__`` answers any name (``s.provided.attr``, ``Dependency``) recurses forever.
    """

    def reducer_override(self, obj: Any) -> Any:
        if not isinstance(obj, type):
            state = _construction(obj)
            if state is not None:
                # An empty provider first, memoized before its state: a provider that refers
                # back to it (an overriding, a parent) finds the same object.
                return (type(obj), (), state, None, None, _rebuild)
        return super().reducer_override(obj)


def _dumps(obj: Any, apart: object = None) -> bytes:
    """``obj`` pickled; ``apart`` (when given) left out, so a part can be tried alone."""
    buffer = io.BytesIO()
    pickler = _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    if apart is not None:
        pickler.persistent_id = lambda o: "apart" if o is apart else None
    pickler.dump(obj)
    return buffer.getvalue()


_shipped: weakref.WeakKeyDictionary[type, ShippedContext] = weakref.WeakKeyDictionary()
_checked: weakref.WeakKeyDictionary[Any, ShippedContext] = weakref.WeakKeyDictionary()  # by context instance
_shipped_lock = threading.Lock()


def ship_context(context: Any, flow: str) -> ShippedContext:
    """The class of the context instance ``context`` (that flow ``flow`` runs in), shipped.

    The Dask workers build the context from its class, so an instance whose providers were
    changed after it was made (a TOML profile, ``set_provider``) is refused rather than
    silently run as its class.
    """
    shipped = _checked.get(context)
    if shipped is None:
        cls = getattr(context, "declarative_parent", None)
        if cls is None:
            raise ContextNotShippableError(
                f"The context of flow '{flow}' must be a BaseFlowContext subclass or an instance of one to run on "
                f"Dask, found {context!r}: the Dask workers build the context from its class."
            )
        _refuse_changed(context, cls, flow)
        shipped = _checked[context] = ship(cls)
    return shipped


def _refuse_changed(context: Any, cls: type, flow: str) -> None:
    """Raise if ``context`` has providers its class does not (a profile re-scoped them)."""
    declared: dict[str, Any] = getattr(cls, "providers", {})
    for name, provider in context.providers.items():
        if name not in declared or type(declared[name]) is not type(provider):
            found = f"a {type(provider).__name__} here, " + (
                f"a {type(declared[name]).__name__} in the class" if name in declared else "absent from the class"
            )
            raise ContextNotShippableError(
                f"The context of flow '{flow}' differs from its class {_name(cls)}: provider '{name}' is {found}. "
                "The Dask workers build the context from its class, so a TOML profile or set_provider() would be "
                "lost there. Declare the change in a subclass of the context and pass that class."
            )


def ship(cls: type) -> ShippedContext:
    """The context class ``cls`` as bytes for the Dask workers, pickled once per class.

    A class that a worker can import (at the top of an installed module) travels as a
    reference; any other (``__main__``, a notebook, a function's body) travels by value.
    """
    shipped = _shipped.get(cls)
    if shipped is None:
        with _shipped_lock:
            shipped = _shipped.get(cls)
            if shipped is None:
                blob = _pickled(cls)
                shipped = _shipped[cls] = ShippedContext(hashlib.sha256(blob).hexdigest(), _name(cls), blob)
    return shipped


def _pickled(cls: type) -> bytes:
    try:
        return _dumps(cls)
    except Exception as exc:  # any pickling failure (TypeError, PicklingError...): find the provider to blame
        culprit = _culprit(cls)
        where = f"its provider '{culprit[0]}' ({type(culprit[1]).__name__})" if culprit else "it"
        raise ContextNotShippableError(
            f"The context {_name(cls)} cannot travel to the Dask workers: {where} cannot be pickled "
            f"({type(exc).__name__}: {exc}). Define the context at the top of a module the Dask workers "
            "can import (it then travels by reference), or build that provider from plain values."
        ) from exc


def _culprit(cls: type) -> tuple[str, Any] | None:
    """The first provider of ``cls`` that does not pickle on its own."""
    for name, provider in getattr(cls, "providers", {}).items():
        try:
            _dumps(provider, apart=cls)  # a provider's parent is the class: try the provider alone
        except Exception:  # noqa: BLE001 - this is the one to name
            return name, provider
    return None


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def unship(shipped: ShippedContext) -> type:
    """The class back from its bytes, on a Dask worker."""
    cls: type = pickle.loads(shipped.blob)
    return cls
