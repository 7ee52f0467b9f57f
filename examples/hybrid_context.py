"""Seed 004, hybrid: a context profile mixes isolated and shared providers, no code change.

contexts/hybrid.toml makes `user_state` per thread, `counter` and `cache` shared and
`pool` one per worker; contexts/isolated.toml and shared.toml switch the same nodes to
the other modes.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from aetherflow import Worker, load_context, node

ROOT = Path(__file__).resolve().parent.parent


@node
def handle(user: int, user_state: dict, counter, pool) -> dict[str, object]:
    user_state["last_user"] = user  # per-thread in the hybrid profile
    total = counter.add(1)  # shared and guarded
    rows = pool.query(f"SELECT * FROM users WHERE id = {user}")
    return {"user": user, "thread": threading.current_thread().name, "seen": total, "rows": len(rows)}


if __name__ == "__main__":
    profile = sys.argv[1] if len(sys.argv) > 1 else "hybrid.toml"
    ctx = load_context(ROOT / "contexts" / profile)
    with Worker(ctx, threads=4) as worker:
        results = worker.map(handle, [{"user": u} for u in range(30)])
    kinds = {name: type(p).__name__ for name, p in ctx.providers.items()}
    print(f"profile {profile}: providers {kinds}")
    print(
        f"{len(results)} requests on {len({r['thread'] for r in results})} threads; highest count seen {max(r['seen'] for r in results)}"
    )
