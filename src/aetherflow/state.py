"""State with commit-at-completion: `job_state`, `node_state` and `worker_state`.

A node gets a `StateHandle` per state it asks for. Its writes are buffered in the handle
(the node reads its own writes); when the node completes, `commit` publishes every
handle's write-set at once, so other nodes see them only after a successful completion
and a failed attempt leaves no trace. Conflict rules:

- ``apply(key, fn)`` is re-applied on the latest committed value at commit time, so
  parallel applies never lose an update (keep ``fn`` pure: it may run more than once);
- a node that *read* a key and then ``set`` it, while another node committed that key
  in between, gets `StateConflict` (the worker re-runs the node);
- blind writes (a ``set`` without a prior read): the last commit wins.

The `Commit` records produced here are what a store appends, as they are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .sentinels import DELETED, UNSET


class StateScope(str, Enum):
    JOB = "job"
    NODE = "node"
    WORKER = "worker"


@dataclass(frozen=True, slots=True)
class Write:
    key: str
    value: Any  # DELETED when the key was deleted
    version: int


@dataclass(frozen=True, slots=True)
class Commit:
    """One state namespace's write-set, as committed (and as a store records it)."""

    scope: StateScope
    namespace: str  # "" for job_state, the node for node_state, "flow/node" for worker_state
    job_id: str
    node: str
    writes: tuple[Write, ...]
    ts: float


class StateConflict(Exception):  # noqa: N818 - internal signal: the worker re-runs the node
    """A read-then-set lost to another node's commit of the same key."""

    def __init__(self, key: str, read_version: int, current_version: int) -> None:
        self.key = key
        super().__init__(
            f"state key '{key}' was read at version {read_version} and set, but another "
            f"node committed version {current_version} in between"
        )


class StateSpace:
    """The committed values of one namespace: key -> (value, version)."""

    __slots__ = ("entries", "lock", "namespace", "scope")

    def __init__(self, scope: StateScope, namespace: str = "") -> None:
        self.scope = scope
        self.namespace = namespace
        self.entries: dict[str, tuple[Any, int]] = {}
        self.lock = threading.Lock()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {k: v for k, (v, _) in self.entries.items() if v is not UNSET}

    def versioned(self) -> dict[str, tuple[Any, int]]:
        """Every key with its value and version (deleted keys included), read at one instant."""
        with self.lock:
            return dict(self.entries)

    def restore(self, values: Mapping[str, tuple[Any, int]]) -> None:
        """Load committed values (with versions), e.g. from a store when a job resumes."""
        with self.lock:
            self.entries.update(values)


_Op = tuple[str, Any, Any]  # ("set", value, _) | ("delete", _, _) | ("apply", fn, default)

# In a handle's reads: the node read the whole namespace (snapshot, iteration, len), so a
# key it did not find then was read as absent (version 0). A string, not an object, because
# reads travel pickled from Dask workers; no user key starts with a NUL.
_EVERY_KEY = "\x00every key"


class StateHandle:
    """What a node receives as ``job_state``, ``node_state`` or ``worker_state``.

    >>> @node
    ... def count(job_state, node_state):
    ...     node_state.apply("calls", lambda n: n + 1, default=0)
    ...     return job_state.get("total", 0)
    """

    __slots__ = ("_ops", "_overlay", "_reads", "space")

    def __init__(self, space: StateSpace) -> None:
        self.space = space
        self._overlay: dict[str, Any] = {}
        self._ops: dict[str, list[_Op]] = {}
        self._reads: dict[str, int] = {}

    # -- reading -------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        value = self._lookup(key, record_read=True)
        return default if value is UNSET else value

    def __getitem__(self, key: str) -> Any:
        value = self._lookup(key, record_read=True)
        if value is UNSET:
            raise KeyError(key)
        return value

    def __contains__(self, key: str) -> bool:
        return self._lookup(key, record_read=True) is not UNSET

    def snapshot(self) -> dict[str, Any]:
        """Everything this node sees now: committed values plus its own pending writes.

        Counts as a read of every key, found or not: setting one afterwards conflicts if
        another node committed it in between.
        """
        return self._view(record_read=True)

    def keys(self) -> list[str]:
        """The keys this node sees now; a read of every key, like `snapshot`."""
        return list(self.snapshot())

    def values(self) -> list[Any]:
        """The values this node sees now; a read of every key, like `snapshot`."""
        return list(self.snapshot().values())

    def items(self) -> list[tuple[str, Any]]:
        """The (key, value) pairs this node sees now; a read of every key, like `snapshot`."""
        return list(self.snapshot().items())

    def __iter__(self) -> Iterator[str]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        return len(self.snapshot())

    def __repr__(self) -> str:
        return f"<{self.space.scope.value}_state {self._view(record_read=False)!r}>"  # looking is not reading

    def _view(self, *, record_read: bool) -> dict[str, Any]:
        committed = self.space.versioned()
        if record_read:
            self._record_whole_read(committed)
        merged = {k: v for k, (v, _) in committed.items() if v is not UNSET}
        for key, value in self._overlay.items():
            if value is DELETED:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def _record_whole_read(self, committed: dict[str, tuple[Any, int]]) -> None:
        # The first read of a key counts. A key this node wrote before counts too, at the
        # version committed now: only another node's commit in between makes it conflict.
        reads = self._reads
        for key, (_, version) in committed.items():
            if key not in reads:
                reads[key] = version
        reads.setdefault(_EVERY_KEY, 0)

    # -- writing (buffered until the node completes) ---------------------------------

    def set(self, key: str, value: Any) -> None:
        self._overlay[key] = value
        self._ops[key] = [("set", value, None)]

    __setitem__ = set

    def update(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self.set(key, value)

    def delete(self, key: str) -> None:
        self._overlay[key] = DELETED
        self._ops[key] = [("delete", None, None)]

    __delitem__ = delete

    def apply(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        """Atomic read-modify-write: ``fn(current or default)``, re-applied at commit."""
        current = self._lookup(key, record_read=False)
        new = fn(default if current is UNSET else current)
        self._overlay[key] = new
        self._ops.setdefault(key, []).append(("apply", fn, default))
        return new

    # -- for the committer --------------------------------------------------------------

    def pending_values(self) -> list[tuple[str, Any]]:
        """The values this node wrote (as it sees them), deletions left out."""
        return [(k, v) for k, v in self._overlay.items() if v is not DELETED]

    def writeset(self) -> tuple[dict[str, list[_Op]], dict[str, int]]:
        """The buffered writes and the versions read: what travels back from a Dask task."""
        return self._ops, self._reads

    @classmethod
    def from_writeset(cls, space: StateSpace, ops: dict[str, list[_Op]], reads: dict[str, int]) -> StateHandle:
        """A handle on ``space`` carrying writes made elsewhere, ready for `commit`."""
        handle = cls(space)
        handle._ops, handle._reads = ops, reads
        return handle

    def _lookup(self, key: str, *, record_read: bool) -> Any:
        if key in self._overlay:
            value = self._overlay[key]
            return UNSET if value is DELETED else value
        value, version = self.space.entries.get(key, (UNSET, 0))
        if record_read and key not in self._reads:
            self._reads[key] = version
        return value

    def _check(self) -> None:
        entries = self.space.entries
        reads = self._reads
        read_all = _EVERY_KEY in reads
        for key, ops in self._ops.items():
            read = reads.get(key, 0 if read_all else None)  # absent from a whole read: read as absent
            if read is None or all(op[0] == "apply" for op in ops):
                continue
            current = entries.get(key, (None, 0))[1]
            if current != read:
                raise StateConflict(key, read, current)

    def _apply(self, job_id: str, node: str, ts: float) -> Commit:
        entries = self.space.entries
        writes = []
        for key, ops in self._ops.items():
            value, version = entries.get(key, (UNSET, 0))
            for kind, arg, default in ops:
                if kind == "set":
                    value = arg
                elif kind == "delete":
                    value = UNSET
                else:
                    value = arg(default if value is UNSET else value)
            version += 1
            entries[key] = (value, version)  # a deleted key keeps its version (a tombstone)
            writes.append(Write(key, DELETED if value is UNSET else value, version))
        space = self.space
        return Commit(space.scope, space.namespace, job_id, node, tuple(writes), ts)


def commit(handles: list[StateHandle], job_id: str, node: str) -> list[Commit]:
    """Publish every dirty handle's writes at once, or none of them (raises `StateConflict`)."""
    dirty = [h for h in handles if h._ops]
    if not dirty:
        return []
    locks = sorted({id(h.space): h.space.lock for h in dirty}.items())
    for _, lock in locks:
        lock.acquire()
    try:
        for h in dirty:
            h._check()
        ts = time.time()
        return [h._apply(job_id, node, ts) for h in dirty]
    finally:
        for _, lock in reversed(locks):
            lock.release()
