"""Every dependency-injector provider, plus the scoped ones AetherFlow adds.

Pick per provider between isolation and sharing:

| provider               | one instance per | seen by                     |
|------------------------|------------------|-----------------------------|
| `Singleton`            | context instance | every thread, guarded       |
| `ThreadLocalSingleton` | worker thread    | one thread, isolated        |
| `WorkerScoped`         | worker           | the worker's threads, guarded |
| `JobScoped`            | job              | the job's nodes, guarded    |
| `NodeScoped`           | (job, node)      | one node, isolated          |
| `Factory`              | injection        | one call, isolated          |

>>> class AppContext(BaseFlowContext):
...     counter = providers.Singleton(Counter)              # shared, lock-protected
...     state = providers.ThreadLocalSingleton(dict)         # isolated per thread
...     db = providers.WorkerScoped(open_db, teardown=lambda c: c.close())
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable as _Fn
from typing import Any

from dependency_injector import providers as _di
from dependency_injector.providers import (  # every dependency-injector provider, re-exported
    AbstractCallable,
    AbstractCoroutine,
    AbstractFactory,
    AbstractSingleton,
    Aggregate,
    AttributeGetter,
    BaseResource,
    BaseSingleton,
    Callable,
    CallableDelegate,
    Configuration,
    ConfigurationOption,
    Container,
    ContextLocalResource,
    ContextLocalSingleton,
    Coroutine,
    CoroutineDelegate,
    Delegate,
    DelegatedCallable,
    DelegatedCoroutine,
    DelegatedFactory,
    DelegatedSingleton,
    DelegatedThreadLocalSingleton,
    DelegatedThreadSafeSingleton,
    DependenciesContainer,
    Dependency,
    Dict,
    ExternalDependency,
    Factory,
    FactoryAggregate,
    FactoryDelegate,
    ItemGetter,
    List,
    MethodCaller,
    Object,
    ProvidedInstance,
    Provider,
    Resource,
    Selector,
    Self,
    SingletonDelegate,
    ThreadSafeSingleton,
    TypedConfigurationOption,
)

from .execution import Running, _current
from .guard import GuardedProxy
from .scopes import Scope, _finish_generator
from .sentinels import UNSET

__all__ = [
    "AbstractCallable",
    "AbstractCoroutine",
    "AbstractFactory",
    "AbstractSingleton",
    "Aggregate",
    "AttributeGetter",
    "BaseResource",
    "BaseSingleton",
    "Callable",
    "CallableDelegate",
    "Configuration",
    "ConfigurationOption",
    "Container",
    "ContextLocalResource",
    "ContextLocalSingleton",
    "Coroutine",
    "CoroutineDelegate",
    "Delegate",
    "DelegatedCallable",
    "DelegatedCoroutine",
    "DelegatedFactory",
    "DelegatedSingleton",
    "DelegatedThreadLocalSingleton",
    "DelegatedThreadSafeSingleton",
    "DependenciesContainer",
    "Dependency",
    "Dict",
    "ExternalDependency",
    "Factory",
    "FactoryAggregate",
    "FactoryDelegate",
    "ItemGetter",
    "List",
    "MethodCaller",
    "Object",
    "ProvidedInstance",
    "Provider",
    "Resource",
    "Selector",
    "Self",
    "SingletonDelegate",
    "ThreadSafeSingleton",
    "TypedConfigurationOption",
    "Singleton",
    "ThreadLocalSingleton",
    "JobScoped",
    "NodeScoped",
    "WorkerScoped",
    "injector_of",
    "scope_of",
]


class _Options:
    """``guard=`` and ``teardown=`` on AetherFlow's providers, kept across container copies."""

    guard: bool
    teardown: _Fn[[Any], Any] | None
    scope: Scope

    def _set_options(self, guard: bool, teardown: _Fn[[Any], Any] | None) -> None:
        self.guard = guard
        self.teardown = teardown
        self._af_handout: tuple[Any, Any] | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        copied = super().__deepcopy__(memo)  # type: ignore[misc]
        copied._set_options(self.guard, self.teardown)
        return copied

    def _wrap(self, instance: Any) -> Any:
        return GuardedProxy(instance) if self.guard else instance

    def inject(self) -> Any:
        """The object a node receives from this provider in the running node's scope."""
        raise NotImplementedError


class Singleton(_Options, _di.Singleton[Any]):  # type: ignore[misc]
    """One instance per context, created once even when threads race, guarded in nodes.

    ``guard=False`` hands out the raw object (for objects that are thread-safe themselves);
    ``teardown=fn`` is called by ``context.shutdown_resources()``.
    """

    scope = Scope.PROCESS

    def __init__(
        self,
        provides: Any = None,
        *args: Any,
        guard: bool = True,
        teardown: _Fn[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._set_options(guard, teardown)
        self._lock = threading.RLock()
        super().__init__(provides, *args, **kwargs)

    def _set_options(self, guard: bool, teardown: _Fn[[Any], Any] | None) -> None:
        super()._set_options(guard, teardown)
        self._lock = threading.RLock()
        self._af_instance: Any = UNSET
        self._af_generator: Any = None

    def _provide(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        instance = self._af_instance
        if instance is not UNSET:
            return instance
        with self._lock:  # one lock per provider: unrelated singletons never wait on each other
            if self._af_instance is UNSET:
                made = super()._provide(args, kwargs)  # type: ignore[misc]
                if inspect.isgenerator(made):
                    self._af_generator = made
                    made = next(made)
                self._af_instance = made
            return self._af_instance

    def reset(self) -> Any:
        with self._lock:
            super().reset()
            self._af_instance = UNSET
            self._af_generator = None
            self._af_handout = None

    def shutdown(self) -> None:
        """Tear the instance down (generator or ``teardown=``) and forget it."""
        with self._lock:
            instance, gen = self._af_instance, self._af_generator
            if instance is UNSET:
                return
            self.reset()
        if gen is not None:
            _finish_generator(gen, repr(self.provides))
        elif self.teardown is not None:
            self.teardown(instance)

    def inject(self) -> Any:
        """The object a node receives: the instance, behind its guard unless ``guard=False``."""
        instance = self() if self.overridden else self._provide((), {})
        handout = self._af_handout
        if handout is not None and handout[0] is instance:
            return handout[1]
        with self._lock:  # two proxies would mean two locks: `locked()` would guard nothing
            handout = self._af_handout
            if handout is None or handout[0] is not instance:
                handout = self._af_handout = (instance, self._wrap(instance))
            return handout[1]


class ThreadLocalSingleton(_Options, _di.ThreadLocalSingleton[Any]):  # type: ignore[misc]
    """One instance per worker thread, torn down when the worker closes; never shared."""

    scope = Scope.THREAD

    def __init__(
        self, provides: Any = None, *args: Any, teardown: _Fn[[Any], Any] | None = None, **kwargs: Any
    ) -> None:
        self._set_options(False, teardown)
        super().__init__(provides, *args, **kwargs)

    def _provide(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        running = _current.get()
        if running is None or running[1] is None:  # outside a node: dependency-injector's behaviour
            return super()._provide(args, kwargs)  # type: ignore[misc]
        return running[1].instance(self, running[0], lambda: self._factory_twin()(*args, **kwargs))[0]

    def _set_options(self, guard: bool, teardown: _Fn[[Any], Any] | None) -> None:
        super()._set_options(guard, teardown)
        self._af_twin: _di.Factory[Any] | None = None

    def _factory_twin(self) -> _di.Factory[Any]:
        """A plain factory of the same call: instances per thread are kept by the worker."""
        twin = self._af_twin
        if twin is None:
            twin = self._af_twin = _di.Factory(self.provides, *self.args, **self.kwargs)
        return twin

    def inject(self) -> Any:
        running = _current.get()
        if running is None or running[1] is None:
            return self()
        return running[1].instance(self, running[0], self._factory_twin())[1]


class _Scoped(_Options, _di.Factory[Any]):  # type: ignore[misc]
    """A factory whose instances live as long as a worker, a job or a node run."""

    default_guard = True

    def __init__(
        self,
        provides: Any = None,
        *args: Any,
        guard: bool | None = None,
        teardown: _Fn[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._set_options(self.default_guard if guard is None else guard, teardown)
        super().__init__(provides, *args, **kwargs)

    def _provide(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ex, scopes = _running(self)
        return scopes.instance(self, ex, lambda: super(_Scoped, self)._provide(args, kwargs))[0]  # type: ignore[misc]

    def inject(self) -> Any:
        ex, scopes = _running(self)
        return scopes.instance(self, ex, lambda: super(_Scoped, self)._provide((), {}))[1]  # type: ignore[misc]


class WorkerScoped(_Scoped):
    """One instance per worker, guarded, torn down when the worker closes."""

    scope = Scope.WORKER


class JobScoped(_Scoped):
    """One instance per job, guarded, torn down when the job ends (also on failure)."""

    scope = Scope.JOB


class NodeScoped(_Scoped):
    """One instance per (job, node) — the routine scope — private to that node."""

    scope = Scope.NODE
    default_guard = False


def _running(provider: _Scoped) -> Running:
    running = _current.get()
    if running is None or running[1] is None:
        raise RuntimeError(
            f"{type(provider).__name__} provider of {provider.provides!r} was called outside a "
            "running node; its instances live in a worker, job or node scope. Inject it into a "
            "node parameter, or call the factory directly in a unit test."
        )
    return running


def injector_of(provider: Any) -> _Fn[[], Any]:
    """What fills a node parameter from ``provider``.

    AetherFlow's own providers hand out their scoped (and guarded) instance; every other
    provider injects what calling it returns. Asked of the type, never of an attribute:
    a `Configuration` answers any attribute name (``config.inject`` is an option).
    """
    if isinstance(provider, _Options):
        return provider.inject
    call: _Fn[[], Any] = provider
    return call


def scope_of(provider: Any) -> Scope:
    """The lifetime of any provider (dependency-injector's own included)."""
    if isinstance(provider, _Options):  # the type, not an attribute: a Configuration answers any name
        return provider.scope
    if isinstance(provider, _di.ThreadLocalSingleton):
        return Scope.THREAD
    if isinstance(provider, _di.BaseSingleton):
        return Scope.PROCESS
    if isinstance(provider, (_di.Configuration, _di.Object, _di.Resource, _di.Dependency)):
        return Scope.PROCESS
    return Scope.INJECTION
