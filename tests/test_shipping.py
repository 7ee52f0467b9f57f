"""A context class defined in a function travels by value and is rebuilt in another process."""

from __future__ import annotations

import importlib
import json
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("cloudpickle")
from dependency_injector import containers

from aetherflow import BaseFlowContext, providers
from aetherflow.shipping import ContextNotShippableError, ship, ship_context
from changed_contexts import each_changed_instance

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


def _run_shipped(shipped: object, code: str, path: Path | None = None) -> str:
    """Rebuilds ``shipped`` in a fresh interpreter as ``ctx`` (an instance) and prints what ``code`` evaluates to."""
    prelude = "import pickle, sys\n"
    if path is not None:
        prelude += f"sys.path.insert(0, {str(path)!r})\n"
    script = (
        prelude + "from aetherflow.shipping import unship\n"
        "ctx = unship(pickle.loads(sys.stdin.buffer.read()))\n"
        "ctx = ctx() if isinstance(ctx, type) else ctx\n"
        f"print(repr({code}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=pickle.dumps(shipped), capture_output=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


@each_changed_instance
def test_shipping_an_instance_carries_what_was_set_on_it(make: object) -> None:
    """An instance configured, overridden or given a dependency on the driver gives the same values elsewhere."""
    ctx = make()  # type: ignore[operator]
    assert ctx.n() == 7
    assert _run_shipped(ship_context(ctx, "etl"), "ctx.n()") == "7"


def test_shipping_an_unchanged_instance_again_is_the_same_shipment() -> None:
    """Using a context on the driver (a config value read, a Singleton made) does not make it a new context."""

    class Used(BaseFlowContext):
        config = providers.Configuration()
        n = providers.Callable(int, config.n)
        shared = providers.Singleton(dict)

    ctx = Used()
    ctx.config.from_dict({"n": 1})
    first = ship_context(ctx, "etl")
    assert ctx.n() == 1 and ctx.shared() == {}
    assert ship_context(ctx, "etl") is first
    ctx.config.from_dict({"n": 2})
    changed = ship_context(ctx, "etl")
    assert changed.key != first.key
    assert _run_shipped(changed, "ctx.n()") == "2"


def test_shipping_a_class_changed_after_it_was_shipped_sends_the_change() -> None:
    """A class configured again after its first shipment travels again, as a new key."""

    class Settings(BaseFlowContext):
        config = providers.Configuration()
        n = providers.Callable(int, config.n)

    Settings.config.from_dict({"n": 1})
    first = ship(Settings)
    Settings.config.from_dict({"n": 2})
    second = ship(Settings)
    assert second.key != first.key
    assert _run_shipped(second, "ctx.n()") == "2"


def test_shipping_a_profile_instance_carries_its_rescoped_provider(tmp_path: Path) -> None:
    """A TOML profile's re-scoped provider travels with the instance: the other side gets the new scope."""
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
    shipped = ship_context(ctx, "etl")
    assert _run_shipped(shipped, "(type(ctx.cache).__name__, ctx.cache())", tmp_path) == "('ThreadLocalSingleton', {})"


def _importable(folder: Path, name: str, source: str) -> ModuleType:
    """Module ``name`` written in ``folder`` and imported from there: a context class importable by name."""
    (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def test_shipping_an_importable_contexts_own_values_by_reference(tmp_path: Path) -> None:
    """A value an importable class holds (a lock made at import) is imported on the other side, not pickled."""
    shipping_locked_base = _importable(
        tmp_path,
        "shipping_locked_base",
        (
            "import threading\n"
            "from aetherflow import BaseFlowContext, providers\n"
            "class LockedContext(BaseFlowContext):\n"
            "    config = providers.Configuration()\n"
            "    lock = providers.Object(threading.Lock())\n"
        ),
    )
    ctx = shipping_locked_base.LockedContext()
    ctx.config.from_dict({"n": 3})
    shipped = ship_context(ctx, "etl")
    assert _run_shipped(shipped, "(type(ctx.lock()).__name__, ctx.config.n())", tmp_path) == "('lock', 3)"


def test_shipping_an_instance_changed_with_a_value_that_cannot_travel_says_what_to_do(tmp_path: Path) -> None:
    """An importable class's instance given a lock: the error names the provider and how to make it on the workers."""
    shipping_plain_base = _importable(
        tmp_path,
        "shipping_plain_base",
        (
            "from aetherflow import BaseFlowContext, providers\n"
            "class PlainContext(BaseFlowContext):\n"
            "    lock = providers.Object(None)\n"
        ),
    )
    ctx = shipping_plain_base.PlainContext()
    ctx.lock.override(providers.Object(threading.Lock()))
    with pytest.raises(ContextNotShippableError) as caught:
        ship_context(ctx, "etl")
    assert str(caught.value) == (
        "The context of flow 'etl' (shipping_plain_base.PlainContext) cannot travel to the Dask workers: its "
        "provider 'lock' (Object) cannot be pickled (TypeError: cannot pickle '_thread.lock' object). The workers "
        "import the class and receive what was changed on this instance: declare the value in the class, or give "
        "the provider a factory that makes it on each worker (providers.Singleton(threading.Lock))."
    )
