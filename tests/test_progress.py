"""Progress bars: drawn in a real terminal (a pseudo-terminal here), silent when piped."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

SCRIPT = """
import time
from aetherflow import Worker, node

@node
def nap(i: int) -> int:
    time.sleep(0.01)
    return i

with Worker(threads=4) as w:
    assert w.map(nap, [{"i": i} for i in range(60)], progress=True) == list(range(60))
print("DONE")
"""


def _in_terminal(code: str) -> str:
    """Run Python with a pseudo-terminal as stdout and stderr; return what it drew."""
    main, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=secondary, stderr=secondary, env={**os.environ, "COLUMNS": "100"})
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = os.read(main, 4096)
        except OSError:  # the program ended and closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    return b"".join(chunks).decode(errors="replace")


def test_map_draws_a_progress_bar_in_a_terminal() -> None:
    screen = _in_terminal(SCRIPT)
    assert "DONE" in screen
    assert "60/60" in screen  # rich's M-of-N column reached the end
    assert "nap" in screen


def test_map_is_quiet_when_output_is_not_a_terminal() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "DONE\n" and result.stderr == ""
