"""Shared mode: the guarded proxy is transparent and holds the instance's lock."""

from __future__ import annotations

import threading
import time

import pytest

from aetherflow import locked
from aetherflow.guard import GuardedProxy


class Box:
    def __init__(self) -> None:
        self.items: dict[str, int] = {}
        self.n = 0

    def bump(self) -> int:
        value = self.n
        time.sleep(0)
        self.n = value + 1
        return self.n


def test_proxy_is_transparent_for_isinstance_and_attributes() -> None:
    box = Box()
    proxy = GuardedProxy(box)
    assert isinstance(proxy, Box)
    assert proxy.bump() == 1 and proxy.n == 1
    proxy.n = 10
    assert box.n == 10


def test_special_methods_are_forwarded_under_the_lock() -> None:
    d = GuardedProxy({"a": 1})
    d["b"] = 2
    assert d["a"] == 1 and len(d) == 2 and "b" in d
    assert sorted(d) == ["a", "b"]
    del d["a"]
    assert d == {"b": 2}


def test_many_threads_through_proxy_lose_no_updates() -> None:
    proxy = GuardedProxy(Box())

    def work() -> None:
        for _ in range(2000):
            proxy.bump()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert proxy.n == 16_000


def test_locked_holds_the_lock_across_compound_steps() -> None:
    counts = GuardedProxy({"seen": 0})

    def work() -> None:
        for _ in range(2000):
            with locked(counts) as raw:
                value = raw["seen"]
                time.sleep(0)
                raw["seen"] = value + 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert counts["seen"] == 16_000


def test_locked_on_a_raw_object_explains_why_not() -> None:
    with pytest.raises(TypeError, match="Isolated instances .* need no lock"), locked({}):
        pass
