"""`BaseFlowContext`: the dependency-injector container whose providers fill node parameters.

>>> class AppContext(BaseFlowContext):
...     config = providers.Configuration()
...     counter = providers.Singleton(Counter)
...     db = providers.WorkerScoped(open_db, dsn=config.dsn)
"""

from __future__ import annotations

import logging
from typing import Any

from dependency_injector import containers

from .providers import Singleton

log = logging.getLogger("aetherflow.context")


class FlowContext(containers.DynamicContainer):  # type: ignore[misc]
    """What instantiating a `BaseFlowContext` subclass returns (dependency-injector's design)."""

    def shutdown_resources(self, *args: Any, **kwargs: Any) -> Any:
        """Tear down the context's singletons (``teardown=`` or generator), then its resources."""
        for name, provider in reversed(list(self.providers.items())):
            if isinstance(provider, Singleton):
                try:
                    provider.shutdown()
                except Exception:
                    log.error("Teardown of singleton '%s' failed", name, exc_info=True)
        return super().shutdown_resources(*args, **kwargs)


class BaseFlowContext(containers.DeclarativeContainer):  # type: ignore[misc]
    """Subclass it and declare providers; pass the class or an instance to a flow or worker."""

    instance_type = FlowContext


def provider_names(context: Any) -> frozenset[str]:
    """Names of the providers a context (class, instance or None) offers."""
    if context is None:
        return frozenset()
    providers = getattr(context, "providers", None)
    if providers is None:
        raise TypeError(f"a flow context must be a BaseFlowContext subclass or instance, found {context!r}.")
    return frozenset(providers)


def is_context_class(context: Any) -> bool:
    return isinstance(context, type) and issubclass(context, containers.DeclarativeContainer)
