"""Providers and scopes: shared vs isolated, lifetimes, teardown, reserved names, profiles."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from dependency_injector import providers as di_providers

from aetherflow import BaseFlowContext, Flow, FlowDefinitionError, NodeError, Worker, node, providers


class SlowCounter:
    instances = 0

    def __init__(self) -> None:
        time.sleep(0.05)  # a slow constructor widens the race
        SlowCounter.instances += 1
        self.n = 0

    def inc(self) -> int:
        value = self.n
        time.sleep(0)  # yield the GIL mid-update: unguarded, updates get lost
        self.n = value + 1
        return self.n


def test_singleton_created_once_when_sixteen_threads_race() -> None:
    """dependency-injector's own Singleton builds several instances in this race."""
    SlowCounter.instances = 0

    class Ctx(BaseFlowContext):
        counter = providers.Singleton(SlowCounter)

    ctx = Ctx()
    start = threading.Barrier(16)
    got = []

    def grab() -> None:
        start.wait()
        got.append(ctx.counter())

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert SlowCounter.instances == 1
    assert len({id(c) for c in got}) == 1


def test_unrelated_singletons_do_not_wait_on_each_other() -> None:
    gate = threading.Event()

    def blocked() -> str:
        gate.wait(5)
        return "blocked"

    class Ctx(BaseFlowContext):
        slow = providers.Singleton(blocked)
        quick = providers.Singleton(dict)

    ctx = Ctx()
    t = threading.Thread(target=ctx.slow)
    t.start()
    time.sleep(0.05)
    started = time.perf_counter()
    ctx.quick()
    assert time.perf_counter() - started < 1.0
    gate.set()
    t.join()


class Ctx(BaseFlowContext):
    counter = providers.Singleton(SlowCounter)
    raw_counter = providers.Singleton(SlowCounter, guard=False)
    per_thread = providers.ThreadLocalSingleton(dict)
    per_job = providers.JobScoped(list)
    per_node = providers.NodeScoped(dict)
    fresh = providers.Factory(dict)


def test_guarded_singleton_loses_no_updates_under_eight_threads() -> None:
    @node
    def bump(i: int, counter: SlowCounter) -> bool:
        for _ in range(200):
            counter.inc()
        return isinstance(counter, SlowCounter)

    with Worker(Ctx, threads=8) as w:
        assert all(w.map(bump, [{"i": i} for i in range(40)], progress=False))
        assert w._contexts[Ctx].counter().n == 40 * 200


def test_guard_false_hands_out_the_raw_object() -> None:
    @node
    def kind(raw_counter: SlowCounter) -> str:
        return type(raw_counter).__name__ + ("" if type(raw_counter) is SlowCounter else "-proxy")

    with Worker(Ctx, threads=2) as w:
        assert kind.run(worker=w) == "SlowCounter"


def test_thread_local_instances_are_never_shared_between_threads() -> None:
    seen: dict[int, set[str]] = {}
    lock = threading.Lock()

    @node
    def touch(i: int, per_thread: dict) -> None:
        per_thread.setdefault("owner", threading.current_thread().name)
        with lock:
            seen.setdefault(id(per_thread), set()).add(threading.current_thread().name)
        time.sleep(0.001)

    with Worker(Ctx, threads=8) as w:
        w.map(touch, [{"i": i} for i in range(200)], progress=False)
    assert all(len(threads) == 1 for threads in seen.values())
    assert 1 < len(seen) <= 8


def test_job_scoped_is_one_per_job_and_never_seen_by_two_jobs() -> None:
    per_job_ids: dict[str, set[int]] = {}
    lock = threading.Lock()

    @node
    def a(per_job: list, execution) -> int:
        per_job.append("a")
        with lock:
            per_job_ids.setdefault(execution.job_id, set()).add(id(per_job._af_obj))
        return 1

    @node
    def b(a: int, per_job: list, execution) -> int:
        per_job.append("b")
        with lock:
            per_job_ids.setdefault(execution.job_id, set()).add(id(per_job._af_obj))
        return len(per_job)

    with Worker(Ctx, threads=8) as w:
        results = w.map(a.then(b), [{} for _ in range(100)], progress=False)
    assert results == [2] * 100
    assert all(len(ids) == 1 for ids in per_job_ids.values())
    all_ids = [next(iter(ids)) for ids in per_job_ids.values()]
    assert len(per_job_ids) == 100
    # ids may be reused after a job's list is freed, but never within running jobs
    assert len(all_ids) == 100


def test_node_scoped_is_private_to_one_node_in_one_job(worker) -> None:
    @node
    def first(per_node: dict) -> int:
        per_node["who"] = "first"
        return id(per_node)

    @node
    def second(first: int, per_node: dict) -> bool:
        return id(per_node) != first and "who" not in per_node

    with Worker(Ctx, threads=2) as w:
        assert first.then(second).run(worker=w) is True


def test_factory_gives_a_new_instance_per_injection() -> None:
    @node
    def twice(fresh: dict, execution) -> int:
        return id(fresh)

    @node
    def again(twice: int, fresh: dict) -> bool:
        return id(fresh) != twice

    with Worker(Ctx, threads=2) as w:
        assert twice.then(again).run(worker=w) is True


def test_job_scope_is_torn_down_when_the_job_fails() -> None:
    closed = []

    class Res(BaseFlowContext):
        tx = providers.JobScoped(list, teardown=lambda x: closed.append("tx"))

    @node
    def boom(tx: list) -> None:
        raise RuntimeError("fail")

    with Worker(Res, threads=1) as w:
        job = w.submit(boom)
        with pytest.raises(NodeError):
            job.result()
        assert closed == ["tx"]  # before result() returned


def test_thread_local_teardown_at_worker_close_once_per_thread() -> None:
    closed = []

    class Res(BaseFlowContext):
        buf = providers.ThreadLocalSingleton(list, teardown=lambda b: closed.append(id(b)))

    @node
    def use(i: int, buf: list) -> None:
        time.sleep(0.002)

    w = Worker(Res, threads=4)
    w.map(use, [{"i": i} for i in range(40)], progress=False)
    assert closed == []
    w.close()
    assert 1 <= len(closed) <= 4 and len(set(closed)) == len(closed)


def test_singleton_teardown_on_shutdown_resources_not_worker_close() -> None:
    closed = []

    class Res(BaseFlowContext):
        shared = providers.Singleton(dict, teardown=lambda d: closed.append("shared"))

    @node
    def use(shared: dict) -> int:
        return len(shared)

    ctx = Res()
    with Worker(ctx, threads=1) as w:
        use.run(worker=w)
    assert closed == []
    ctx.shutdown_resources()
    assert closed == ["shared"]


def test_reserved_names_as_providers_are_build_errors() -> None:
    class Bad(BaseFlowContext):
        job_state = providers.Factory(dict)

    @node
    def n(job_state) -> None:
        return None

    with pytest.raises(FlowDefinitionError, match="'job_state' is a built-in injectable"):
        n.validate(Bad)


def test_scoped_provider_outside_a_node_explains_itself() -> None:
    ctx = Ctx()
    with pytest.raises(RuntimeError, match="outside a running node"):
        ctx.per_job()


def test_context_choice_run_then_flow_then_worker() -> None:
    class A(BaseFlowContext):
        who = providers.Object("A")

    class B(BaseFlowContext):
        who = providers.Object("B")

    class C(BaseFlowContext):
        who = providers.Object("C")

    @node
    def name(who: str) -> str:
        return who

    flow = Flow([name], context=B)
    with Worker(C, threads=1) as w:
        assert flow.run(worker=w, context=A) == "A"
        assert flow.run(worker=w) == "B"
        assert name.run(worker=w) == "C"
        assert name.run(worker=w, context=A()) == "A"


# -- every dependency-injector provider kind, injected ---------------------------------------

_CONFIG = {"dsn": "sqlite://", "mode": "b"}


def _resource() -> Iterator[str]:
    yield "open resource"


def _providers_of_every_kind(config: providers.Configuration) -> dict[str, tuple[object, object]]:
    """Provider kind -> (provider, what a node receives from it), given ``config`` = `_CONFIG`."""
    holder = type("Holder", (), {"attr": "attribute value", "word": "abc"})()
    return {
        "Object": (providers.Object(42), 42),
        "Callable": (providers.Callable(lambda: "called"), "called"),
        "Factory": (providers.Factory(dict, a=1), {"a": 1}),
        "di Singleton": (di_providers.Singleton(dict, a=1), {"a": 1}),
        "ThreadSafeSingleton": (providers.ThreadSafeSingleton(dict, a=1), {"a": 1}),
        "di ThreadLocalSingleton": (di_providers.ThreadLocalSingleton(dict, a=1), {"a": 1}),
        "ContextLocalSingleton": (providers.ContextLocalSingleton(dict, a=1), {"a": 1}),
        "Configuration": (config, _CONFIG),
        "ConfigurationOption": (config.dsn, "sqlite://"),
        "Resource": (providers.Resource(_resource), "open resource"),
        "List": (providers.List(providers.Object(1), providers.Object(2)), [1, 2]),
        "Dict": (providers.Dict(one=providers.Object(1)), {"one": 1}),
        "Selector": (providers.Selector(config.mode, a=providers.Object("A"), b=providers.Object("B")), "B"),
        "Dependency with default": (providers.Dependency(instance_of=int, default=5), 5),
        "AttributeGetter": (providers.Object(holder).provided.attr, "attribute value"),
        "ItemGetter": (providers.Object({"k": "item"}).provided["k"], "item"),
        "MethodCaller": (providers.Object(holder).provided.word.upper.call(), "ABC"),
        "Callable with a provider argument": (providers.Callable(lambda n: n * 2, config.mode), "bb"),
    }


@pytest.mark.parametrize("kind", list(_providers_of_every_kind(providers.Configuration())))
def test_every_dependency_injector_provider_injects_what_calling_it_returns(kind: str) -> None:
    """A parameter named after any provider receives what calling that provider returns."""
    config = providers.Configuration()
    provider, expected = _providers_of_every_kind(config)[kind]
    ctx = type("Ctx", (BaseFlowContext,), {"config": config, "service": provider})()
    ctx.config.from_dict(_CONFIG)

    @node
    def receive(service: object) -> object:
        return service

    with Worker(ctx, threads=1) as w:
        got = receive.run(worker=w)
    assert got == expected
    assert got == ctx.service()
    ctx.shutdown_resources()


# -- an abandoned (timed-out) attempt keeps its scoped instances -------------------------------
