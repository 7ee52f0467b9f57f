"""Small nodes several test modules share: a step, a map, a branch."""

from __future__ import annotations

from aetherflow import node


@node
def inc(x: int) -> int:
    return x + 1


@node
def split(n: int) -> list[int]:
    return list(range(n))


@node
def square(i: int) -> int:
    return i * i


@node
def total(values: list[int]) -> int:
    return sum(values)


@node
def is_even(x: int) -> bool:
    return x % 2 == 0


@node
def even(x: int) -> str:
    return f"{x} is even"


@node
def odd(x: int) -> str:
    return f"{x} is odd"
