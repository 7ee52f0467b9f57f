"""Is a parameter name a typo of a node or provider name? (build-time "did you mean").

A name is *within a typo's reach* of another when their optimal-string-alignment
distance (insertions, deletions, substitutions and swaps of neighbours, each 1) is at
most what the shorter name allows: 0 for 1-2 letters, 1 for 3-5, 2 from 6 on. Short
names need the tighter bound to stay apart when they share little: ``x`` is one edit
from a node ``a`` and ``date`` two from a provider ``state``, but neither is a typo,
while ``laod`` is one swap from ``load`` and ``databse`` one letter from ``database``.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_DISTANCE = 2
# Above this many distance computations, index the candidates by their deletion variants
# instead of comparing every pair (a 10,000-node flow must not validate in O(n^2)).
_BRUTE_FORCE_LIMIT = 20_000


def reach(a: str, b: str) -> int:
    """How many edits a typo may make between ``a`` and ``b``, from the shorter one's length."""
    shorter = min(len(a), len(b))
    return 0 if shorter <= 2 else 1 if shorter <= 5 else MAX_DISTANCE


def distance(a: str, b: str, limit: int = MAX_DISTANCE) -> int:
    """Optimal string alignment distance of ``a`` and ``b``, or ``limit + 1`` if above ``limit``."""
    if a == b:
        return 0
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                best = min(best, previous2[j - 2] + 1)
            current[j] = best
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return min(previous[-1], limit + 1)


def is_typo(name: str, candidate: str) -> bool:
    """Whether ``name`` looks like a misspelling of ``candidate`` (and is not it)."""
    limit = reach(name, candidate)
    return limit > 0 and name != candidate and distance(name, candidate, limit) <= limit


class NearNames:
    """The candidates (node and provider names) a queried name may be a typo of."""

    def __init__(self, candidates: Iterable[str]) -> None:
        self._by_length: dict[int, list[str]] = {}
        for c in dict.fromkeys(candidates):
            self._by_length.setdefault(len(c), []).append(c)
        self._variants: dict[str, list[str]] | None = None
        self._compared = 0
        self._memo: dict[str, list[str]] = {}

    def of(self, name: str) -> list[str]:
        """Candidates ``name`` is a typo of, nearest first (then alphabetical)."""
        found = self._memo.get(name)
        if found is None:
            found = self._memo[name] = sorted(self._near(name), key=lambda c: (distance(name, c), c))
        return found

    def _near(self, name: str) -> list[str]:
        pool = [
            c for n in range(len(name) - MAX_DISTANCE, len(name) + MAX_DISTANCE + 1) for c in self._by_length.get(n, ())
        ]
        self._compared += len(pool)
        if self._compared > _BRUTE_FORCE_LIMIT:
            pool = self._indexed(name)
        return [c for c in pool if is_typo(name, c)]

    def _indexed(self, name: str) -> list[str]:
        # Two names within 2 edits share a string reached by deleting at most 2 letters
        # from each, so only candidates with a common deletion variant need a comparison.
        if self._variants is None:
            self._variants = {}
            for group in self._by_length.values():
                for c in group:
                    for v in _deletions(c):
                        self._variants.setdefault(v, []).append(c)
        return list(dict.fromkeys(c for v in _deletions(name) for c in self._variants.get(v, ())))


def _deletions(word: str) -> set[str]:
    once = {word[:i] + word[i + 1 :] for i in range(len(word))}
    return {word} | once | {w[:i] + w[i + 1 :] for w in once for i in range(len(w))}
