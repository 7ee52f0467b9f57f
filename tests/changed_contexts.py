"""Context instances set up on the driver after they were made: what must travel to Dask with them.

Each gives ``n == 7`` where its class alone gives 1 (or nothing): a config set on the
instance, an override, a replaced provider, a dependency given when instantiated.
"""

from __future__ import annotations

import pytest

from aetherflow import BaseFlowContext, providers


def _configured() -> object:
    class Configured(BaseFlowContext):
        config = providers.Configuration()
        n = providers.Callable(int, config.n)

    ctx = Configured()
    ctx.config.from_dict({"n": 7})
    return ctx


def _overridden() -> object:
    class Overridden(BaseFlowContext):
        n = providers.Object(1)

    ctx = Overridden()
    ctx.n.override(providers.Object(7))
    return ctx


def _replaced() -> object:
    class Replaced(BaseFlowContext):
        n = providers.Object(1)

    ctx = Replaced()
    ctx.set_provider("n", providers.Object(7))
    return ctx


def _given() -> object:
    class NeedsN(BaseFlowContext):
        n = providers.Dependency(instance_of=int)

    return NeedsN(n=providers.Object(7))


# Parametrises a test over the four: ``@each_changed_instance`` then ``def test_...(make)``.
each_changed_instance = pytest.mark.parametrize(
    "make",
    [_configured, _overridden, _replaced, _given],
    ids=["config-from_dict", "override", "set_provider", "dependency-given"],
)
