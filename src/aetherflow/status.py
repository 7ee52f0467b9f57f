"""Lifecycles of a job and of a node run, as `str` enums (``job.status == "completed"``)."""

from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    PENDING = "pending"  # recorded, no node started yet
    RUNNING = "running"  # nodes are running or ready
    COMPLETED = "completed"  # every reachable node completed or was skipped
    FAILED = "failed"  # a node failed; no further node was started
    SUSPENDED = "suspended"  # a node raised Suspend; waits for worker.resume(...)
    CANCELLED = "cancelled"  # job.cancel(): pending nodes never started

    def __str__(self) -> str:
        return self.value

    # str's hash, not Enum's (Python code hashing the name): equal to the hash of the equal
    # string, and cheap enough for the per-job `status in FINISHED` tests.
    __hash__ = str.__hash__

    @property
    def finished(self) -> bool:
        return self in FINISHED


class NodeStatus(str, Enum):
    PENDING = "pending"  # not started (yet)
    RUNNING = "running"
    COMPLETED = "completed"  # its output and state writes are committed
    FAILED = "failed"  # raised; its writes were discarded
    SKIPPED = "skipped"  # on a branch not taken, or its input came from a skipped node
    SUSPENDED = "suspended"  # raised Suspend; runs again when the job resumes

    def __str__(self) -> str:
        return self.value

    __hash__ = str.__hash__  # as JobStatus's


FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ENDED = FINISHED | {JobStatus.SUSPENDED}  # no node runs any more (until a resume)
