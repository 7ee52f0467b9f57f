"""Small things several test modules share: nodes (a step, a map, a branch) and a tiny switch interval."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def tiny_switch_interval() -> Iterator[None]:
    """Make CPython switch threads every microsecond, so races show up at once."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


# The opening of a child process's script whose job-scoped `scratch` prints TEARING DOWN,
# then sleeps TEARDOWN_SECONDS (the script sets it first) while its job's scopes are torn
# down: the moment the end-of-job tests kill or interrupt the process.
SLOW_TEARDOWN_CONTEXT = """
import sys, threading, time
from aetherflow import BaseFlowContext, Worker, node, providers

def session():
    yield {}
    print("TEARING DOWN", flush=True)
    time.sleep(TEARDOWN_SECONDS)

class Ctx(BaseFlowContext):
    scratch = providers.JobScoped(session)
"""


# The end of a child process's script that runs `flow` on `inputs` with worker `w` on its
# own thread (the script defines all three, and imports threading): it says INTERRUPTED
# if a Ctrl-C cut `run` short, then CLOSED, or HANGS if `w.close()` took over 10 s.
RUN_INTERRUPTED_THEN_CLOSE = """
try:
    w.run(flow, inputs)
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
closing = threading.Thread(target=w.close, daemon=True)
closing.start()
closing.join(10)
print("HANGS" if closing.is_alive() else "CLOSED", flush=True)
"""


def signalled_while_tearing_down(script: str, url: str, signum: int) -> str:
    """Run ``script`` (which opens with SLOW_TEARDOWN_CONTEXT) on store ``url``, send it
    ``signum`` as its job's scopes are torn down, and return what it printed after."""
    import subprocess

    with subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "TEARING DOWN"
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=60)
    return out
