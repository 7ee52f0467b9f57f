"""Shipping a context to a Dask worker: the driver's instance as it is, whatever its class.

The Dask workers must give nodes what the driver's context instance gives on threads:
its configuration, its overridings, the providers set or given on it. So the driver
pickles the instance with cloudpickle (Dask's own serialiser), afresh at every submit
(``ship_context``); its class travels by reference when a worker can import it, by value
when it is defined in ``__main__``, a notebook or a function. One obstacle: dependency-injector's providers are C extension
types whose default pickling carries their state, and a singleton's state is a lock, a
``threading.local`` or a context variable, none of which pickles (nor should travel: a
`Singleton` is made afresh in each process). So a provider with a construction
(``provides``, ``args``, ``kwargs``, attribute injections, overridings) travels as that
construction and is rebuilt the way dependency-injector's own ``__deepcopy__`` copies it:
an empty provider of the same type, then its setters. Other providers (``Object``,
``Configuration``, ``Self``...) keep dependency-injector's default pickling; one that
cannot travel is named in a `ContextNotShippableError`. ``Configuration`` travels as its
values and its options as their names (an option caches its value behind a sentinel that
would not survive default pickling). A value an importable class holds in an ``Object``
is imported on the worker, as the class is, rather than pickled.

One context instance per Dask worker process: a shipment is keyed by the digest of its
bytes, and a worker rebuilds a key once and keeps that instance, so the jobs that use an
unchanged context find the same providers, and a `Singleton` stays one per process. The
same bytes pickled again are the same shipment (the driver compares them with the last
ones, so the digest is taken only for a change); a changed context is a new key.
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
# dependency-injector's "not set" sentinel (absent from its stubs): pickled by name, it stays itself.
_UNDEFINED: Any = getattr(_di, "UNDEFINED")  # noqa: B009 - the stubs do not declare it


class ContextNotShippableError(AetherFlowError, TypeError):
    """A context that cannot be pickled to travel to the Dask workers."""


@dataclass(frozen=True)
class ShippedContext:
    """A context (an instance, or a class) as bytes, with the digest a Dask worker keeps its instance by."""

    key: str  # sha256 of ``blob``: the same context sent twice unchanged is the same key
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
    elif isinstance(provider, _di.Configuration):  # its options register again as they are unpickled
        state = {
            "name": provider.get_name(),
            "default": provider.get_default(),
            "strict": provider.get_strict(),
            "files": (provider.get_ini_files(), provider.get_yaml_files(), provider.get_json_files()),
            "pydantic_settings": provider.get_pydantic_settings(),
        }
    elif type(provider) is _di.Object:  # not its async mode, which its first call settles
        state = {"provides": provider.provides}
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
    "strict": lambda p, v: p.set_strict(v),
    "files": lambda p, v: (p.set_ini_files(v[0]), p.set_yaml_files(v[1]), p.set_json_files(v[2])),
    "pydantic_settings": lambda p, v: p.set_pydantic_settings(v),
    "options": lambda p, v: p._set_options(*v),
    "overridden": lambda p, v: [p.override(o) for o in v],
}


def _rebuild(provider: Any, state: dict[str, Any]) -> None:
    """Give an empty provider its construction back, in the order ``__deepcopy__`` does."""
    for setter, value in state.items():
        _SETTERS[setter](provider, value)


def _option(root: Any, segments: tuple[Any, ...], required: bool) -> Any:
    """A configuration option again: looked up from its root, so it is the one the root hands out."""
    if required or not segments or not isinstance(segments[0], str) or segments[0].startswith("__"):
        # not kept by the root on the driver either; the stubs lack the (name, root, required) signature
        return _di.ConfigurationOption(segments, root, required)  # type: ignore[call-arg]
    option = getattr(root, segments[0])
    for segment in segments[1:]:
        option = option[segment]
    return option


def _imported(cls: type, name: str) -> Any:
    """The value the importable class ``cls`` holds in its ``Object`` provider ``name``, as imported here."""
    return getattr(cls, name).provides


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, with providers pickled as their construction instead of their fields.

    dependency-injector's providers have no ``__reduce__`` of their own: Cython's default
    pickles every field, so a singleton's lock or thread-local fails, a provider whose
    ``__getattr__`` answers any name (``s.provided.attr``, ``Dependency``) recurses forever,
    and a configuration option's empty cache (a sentinel ``object()``) comes back as a value.
    """

    def __init__(self, file: io.BytesIO, imported: dict[int, tuple[type, str]]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.imported = imported  # id of a value an importable class holds -> (class, provider name)

    def reducer_override(self, obj: Any) -> Any:
        if obj is _UNDEFINED:
            return (getattr, (_di, "UNDEFINED"))
        if not isinstance(obj, type):
            where = self.imported.get(id(obj))
            if where is not None:
                return (_imported, where)
            if isinstance(obj, _di.ConfigurationOption):
                return (_option, (obj._get_root(), obj.get_name_segments(), obj.is_required()))
            state = _construction(obj)
            if state is not None:
                # An empty provider first, memoized before its state: a provider that refers
                # back to it (an overriding, a parent) finds the same object.
                return (type(obj), (), state, None, None, _rebuild)
        return super().reducer_override(obj)


def _dumps(obj: Any, apart: tuple[object, ...] = ()) -> bytes:
    """``obj`` pickled; the objects ``apart`` (when given) left out, so a part can be tried alone."""
    buffer = io.BytesIO()
    pickler = _Pickler(buffer, _imported_values(_class_of(obj)))
    if apart:
        pickler.persistent_id = lambda o: "apart" if any(o is a for a in apart) else None
    pickler.dump(obj)
    return buffer.getvalue()


def _class_of(context: Any) -> type | None:
    if isinstance(context, type):
        return context
    cls = getattr(context, "declarative_parent", None)
    return cls if isinstance(cls, type) else None


def _imported_values(cls: type | None) -> dict[int, tuple[type, str]]:
    """The values an importable class holds in its ``Object`` providers: a worker imports them with the class.

    They travelled that way when the class alone travelled by reference (a lock, a client made at
    import), and an instance shares them with its class until it is changed.
    """
    if cls is None or not _by_reference(cls):
        return {}
    return {
        id(p.provides): (cls, name)
        for name, p in getattr(cls, "providers", {}).items()
        if isinstance(p, _di.Object) and not isinstance(p, _di.Configuration) and p.provides is not None
    }


def _by_reference(cls: type) -> bool:
    """Whether cloudpickle sends ``cls`` as ``module.name`` (the worker imports it)."""
    return bool(cloudpickle.cloudpickle._should_pickle_by_reference(cls))


_last: weakref.WeakKeyDictionary[Any, ShippedContext] = weakref.WeakKeyDictionary()  # by class or instance
_last_lock = threading.Lock()


def ship_context(context: Any, flow: str) -> ShippedContext:
    """The context instance ``context`` (that flow ``flow`` runs in) as it is now, for the Dask workers.

    Pickled afresh at each call, so what was set on the instance since (a configuration, an
    overriding, ``set_provider``) travels; unchanged, it is the same shipment as before.
    """
    if isinstance(context, type) or not hasattr(context, "providers"):
        raise ContextNotShippableError(
            f"The context of flow '{flow}' must be a BaseFlowContext subclass or an instance of one to run on "
            f"Dask, found {context!r}."
        )
    return _ship(context, f"The context of flow '{flow}' ({_name(_class_of(context) or type(context))})")


def ship(cls: type) -> ShippedContext:
    """The context class ``cls`` as it is now, as bytes (the same shipment as before while it is unchanged).

    A class that a worker can import (at the top of an installed module) travels as a
    reference; any other (``__main__``, a notebook, a function's body) travels by value.
    """
    return _ship(cls, f"The context {_name(cls)}")


def _ship(context: Any, what: str) -> ShippedContext:
    blob = _pickled(context, what)
    last = _last.get(context)
    if last is not None and last.blob == blob:  # a compare, not a digest: the common case stays cheap
        return last
    # Pickling can leave a cache behind the first time (copyreg's ``__slotnames__`` on a class
    # whose instance was pickled), which the next bytes would differ by: a new context, or a
    # changed one, is pickled once more, so an unchanged context keeps its key from now on.
    blob = _pickled(context, what)
    cls = _class_of(context) or type(context)
    shipped = ShippedContext(hashlib.sha256(blob).hexdigest(), _name(cls), blob)
    with _last_lock:
        _last[context] = shipped
    return shipped


def _pickled(context: Any, what: str) -> bytes:
    try:
        return _dumps(context)
    except Exception as exc:  # any pickling failure (TypeError, PicklingError...): find the provider to blame
        culprit = _culprit(context)
        where = f"its provider '{culprit[0]}' ({type(culprit[1]).__name__})" if culprit else "it"
        cls = _class_of(context)
        if cls is not None and _by_reference(cls):  # the class is imported there: the change on the instance is not
            fix = (
                "The workers import the class and receive what was changed on this instance: declare the value "
                "in the class, or give the provider a factory that makes it on each worker "
                "(providers.Singleton(threading.Lock))."
            )
        else:
            fix = (
                "Define the context at the top of a module the Dask workers can import (it then travels by "
                "reference), or build that provider from plain values."
            )
        raise ContextNotShippableError(
            f"{what} cannot travel to the Dask workers: {where} cannot be pickled ({type(exc).__name__}: {exc}). {fix}"
        ) from exc


def _culprit(context: Any) -> tuple[str, Any] | None:
    """The first provider of ``context`` that does not pickle on its own."""
    apart = (context, _class_of(context))  # a provider's parent is its container: try the provider alone
    for name, provider in getattr(context, "providers", {}).items():
        try:
            _dumps(provider, apart=apart)
        except Exception:  # noqa: BLE001 - this is the one to name
            return name, provider
    return None


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def unship(shipped: ShippedContext) -> Any:
    """The context back from its bytes, on a Dask worker: an instance (or a class, if a class was shipped)."""
    return pickle.loads(shipped.blob)
