"""A context class defined in a function travels by value and is rebuilt in another process."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("cloudpickle")
from dependency_injector import containers

from aetherflow import BaseFlowContext, providers
from aetherflow.shipping import ContextNotShippableError, ship, ship_context

# Rebuilds the shipped class in a fresh interpreter (where the class was never defined)
# and prints what its providers give.
READ_BACK = """
import json, pickle, sys
from aetherflow.shipping import unship
cls = unship(pickle.loads(sys.stdin.buffer.read()))
ctx = cls()
ctx.config.from_dict({"n": 7, "mode": "b"})
print(json.dumps({
    "name": cls.__name__,
    "shared_same": ctx.shared() is ctx.shared(),
    "shared": ctx.shared().n,
    "per_thread_same": ctx.per_thread() is ctx.per_thread(),
    "fresh_differ": ctx.fresh() is not ctx.fresh(),
    "fresh": ctx.fresh().n,
    "from_config": ctx.from_config().n,
    "from_shared": ctx.from_shared().n,
    "attribute": ctx.with_attribute().extra,
    "dependency": ctx.dependency(),
    "selected": ctx.selected().n,
    "nested": ctx.nested.inner().n,
    "worker_guard": ctx.per_worker.guard,
    "worker_teardown": ctx.per_worker.teardown is not None,
    "listed": ctx.listed(),
}))
"""


def _read_back(blob: bytes) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", READ_BACK], input=blob, capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_shipping_rebuilds_a_local_context_in_another_process() -> None:
    """Every kind of provider comes back with its construction, and without the driver's instances."""

    class Box:
        def __init__(self, n: int = 0) -> None:
            self.n = n

    made_here: list[Box] = []

    def make_shared() -> Box:
        box = Box(1)
        made_here.append(box)
        return box

    class Inner(containers.DeclarativeContainer):
        inner = providers.Factory(Box, 9)

    class LocalContext(BaseFlowContext):
        config = providers.Configuration()
        shared = providers.Singleton(make_shared)
        per_thread = providers.ThreadLocalSingleton(dict)
        fresh = providers.Factory(Box, 3)
        from_config = providers.Factory(Box, n=config.n)
        from_shared = providers.Factory(Box, shared.provided.n)
        with_attribute = providers.Factory(Box).add_attributes(extra="x")
        dependency = providers.Dependency(instance_of=int, default=5)
        selected = providers.Selector(config.mode, a=providers.Factory(Box, 1), b=providers.Factory(Box, 2))
        nested = providers.Container(Inner)
        per_worker = providers.WorkerScoped(Box, guard=False, teardown=print)
        listed = providers.List(1, providers.Object(2))

    LocalContext.shared()  # an instance made in the driver stays in the driver
    shipped = ship(LocalContext)
    assert ship(LocalContext) is shipped  # pickled once per class
    assert _read_back(pickle.dumps(shipped)) == {
        "name": "LocalContext",
        "shared_same": True,
        "shared": 1,
        "per_thread_same": True,
        "fresh_differ": True,
        "fresh": 3,
        "from_config": 7,
        "from_shared": 1,
        "attribute": "x",
        "dependency": 5,
        "selected": 2,
        "nested": 9,
        "worker_guard": False,
        "worker_teardown": True,
        "listed": [1, 2],
    }
    assert len(made_here) == 1


def test_shipping_a_subclass_keeps_inherited_providers() -> None:
    """A local subclass of a local context travels with its base's providers."""

    class Base(BaseFlowContext):
        config = providers.Configuration()
        shared = providers.Singleton(lambda: type("Box", (), {"n": 1})())

    class LocalContext(Base):
        per_thread = providers.ThreadLocalSingleton(dict)
        fresh = providers.Factory(lambda: type("Box", (), {"n": 3})())
        from_config = providers.Factory(lambda n: type("Box", (), {"n": n})(), Base.config.n)

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pickle, sys; from aetherflow.shipping import unship; "
            "c = unship(pickle.loads(sys.stdin.buffer.read()))(); c.config.from_dict({'n': 4}); "
            "print(*sorted(c.providers), c.shared().n, c.fresh().n, c.from_config().n)",
        ],
        input=pickle.dumps(ship(LocalContext)),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["config", "fresh", "from_config", "per_thread", "shared", "1", "3", "4"]


def test_shipping_a_context_that_cannot_travel_names_the_provider() -> None:
    """A provider holding a lock cannot be pickled: the error names it and says what to do."""

    class LocalContext(BaseFlowContext):
        fine = providers.Factory(dict)
        lock = providers.Object(threading.Lock())
        uses_lock = providers.Factory(list, lock)

    with pytest.raises(ContextNotShippableError) as caught:
        ship(LocalContext)
    assert str(caught.value) == (
        f"The context {__name__}.test_shipping_a_context_that_cannot_travel_names_the_provider.<locals>."
        "LocalContext cannot travel to the Dask workers: its provider 'lock' (Object) cannot be pickled "
        "(TypeError: cannot pickle '_thread.lock' object). Define the context at the top of a module the Dask "
        "workers can import (it then travels by reference), or build that provider from plain values."
    )


def test_shipping_a_top_level_context_sends_a_reference(tmp_path: Path) -> None:
    """A context in an importable module travels as a reference, not as its providers."""
    sys.path.insert(0, str(Path(__file__).parent / "resources"))
    try:
        import dask_flows
    finally:
        sys.path.pop(0)
    blob = ship(dask_flows.DaskContext).blob
    assert b"dask_flows" in blob and b"open_conn" not in blob


def test_shipping_refuses_an_instance_changed_after_it_was_made(tmp_path: Path) -> None:
    """A profile's re-scoped provider would be lost on the workers: refused, saying what to do."""
    from aetherflow.profiles import load_context

    (tmp_path / "shipping_profile_base.py").write_text(
        "from aetherflow import BaseFlowContext, providers\n"
        "class AppContext(BaseFlowContext):\n"
        "    cache = providers.Singleton(dict)\n"
    )
    (tmp_path / "thread.toml").write_text(
        '[context]\nbase = "shipping_profile_base:AppContext"\n[providers.cache]\nscope = "thread"\n'
    )
    ctx = load_context(tmp_path / "thread.toml")
    with pytest.raises(ContextNotShippableError) as caught:
        ship_context(ctx, "etl")
    assert str(caught.value) == (
        "The context of flow 'etl' differs from its class shipping_profile_base.AppContext: provider 'cache' is a "
        "ThreadLocalSingleton here, a Singleton in the class. The Dask workers build the context from its class, "
        "so a TOML profile or set_provider() would be lost there. Declare the change in a subclass of the context "
        "and pass that class."
    )
