"""Context profiles: TOML files switch provider scopes without touching nodes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aetherflow import ContextProfileError, Worker, load_context, node, providers
from aetherflow.guard import GuardedProxy
from aetherflow.profiles import base_module

ROOT = Path(__file__).resolve().parent.parent


@node
def count(i: int, counter) -> str:
    counter.add(1)
    return counter.__class__.__name__ + (":guarded" if type(counter) is GuardedProxy else "")


def _run(profile: str) -> tuple[list[str], object]:
    ctx = load_context(ROOT / "contexts" / profile)
    with Worker(ctx, threads=4) as w:
        out = w.map(count, [{"i": i} for i in range(40)], progress=False)
    return out, ctx


def test_shared_profile_gives_one_guarded_counter() -> None:
    out, ctx = _run("shared.toml")
    assert set(out) == {"Counter:guarded"}
    assert isinstance(ctx.providers["counter"], providers.Singleton)
    assert ctx.counter().value == 40


def test_isolated_profile_gives_one_counter_per_thread() -> None:
    out, ctx = _run("isolated.toml")
    assert set(out) == {"Counter"}
    assert isinstance(ctx.providers["counter"], providers.ThreadLocalSingleton)


def test_hybrid_profile_mixes_scopes() -> None:
    ctx = load_context(ROOT / "contexts" / "hybrid.toml")
    assert isinstance(ctx.providers["user_state"], providers.ThreadLocalSingleton)
    assert isinstance(ctx.providers["pool"], providers.WorkerScoped)
    assert isinstance(ctx.providers["counter"], providers.Singleton)


def test_profile_errors_name_the_section_and_the_choices(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[context]\nbase = "examples.services:AppContext"\n[providers.countr]\nscope = "shared"\n[providers.cache]\nscope = "global"\n'
    )
    with pytest.raises(ContextProfileError) as info:
        load_context(bad)
    text = str(info.value)
    assert "[providers.countr]: examples.services:AppContext has no provider 'countr'" in text
    assert "[providers.cache] scope must be one of shared, thread, worker, job, node, factory, found 'global'" in text


def test_profile_with_unimportable_base(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[context]\nbase = "nowhere.at_all:Ctx"\n')
    with pytest.raises(ContextProfileError, match="cannot import context base 'nowhere.at_all:Ctx'"):
        load_context(bad)


def test_base_module_is_the_module_a_profile_imports_its_base_from(tmp_path: Path) -> None:
    """The command line records where this module was found, so `resume` finds it from any folder."""
    assert base_module(ROOT / "contexts" / "shared.toml") == "examples.services"
    bad = tmp_path / "bad.toml"
    bad.write_text('[context]\nbase = "no_colon"\n')
    with pytest.raises(ContextProfileError, match="base must be \"module:Class\", found 'no_colon'"):
        base_module(bad)


def test_thread_profile_instances_stay_on_their_thread() -> None:
    owners: dict[int, set[str]] = {}
    lock = threading.Lock()

    @node
    def touch(i: int, cache) -> None:
        with lock:
            owners.setdefault(id(cache), set()).add(threading.current_thread().name)

    ctx = load_context(ROOT / "contexts" / "isolated.toml")
    with Worker(ctx, threads=4) as w:
        w.map(touch, [{"i": i} for i in range(60)], progress=False)
    assert all(len(v) == 1 for v in owners.values())
