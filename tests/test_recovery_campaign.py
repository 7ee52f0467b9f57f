"""The kill -9 campaign: exactly once, whatever is killed when.

Each trial starts a process that submits one job of each shape (chain, fan-out, map,
loop, suspend), kills it with SIGKILL at a random moment, then starts recovering
processes, killing some of them too (a crash during recovery), until a last one finishes
every job. Then, over all processes: no node run recorded ``completed`` ran again, each
ran exactly once in the process that recorded it, every committed ``job_state`` key is
there, and no job is left running. ``AETHERFLOW_CAMPAIGN_TRIALS`` sets the trial count.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from aetherflow import open_store
from storecase import PG_URL, postgres_url

RESOURCES = Path(__file__).parent / "resources"
TRIALS = int(os.environ.get("AETHERFLOW_CAMPAIGN_TRIALS", "8"))
SHAPES = 5


def _process(url: str, marks: Path, kill_at: int = 0) -> subprocess.Popen[str]:
    path = os.pathsep.join(filter(None, [str(RESOURCES), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "CAMPAIGN_KILL_AT": str(kill_at)}
    return subprocess.Popen(
        [sys.executable, str(RESOURCES / "campaign.py"), url, str(marks)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _run_generations(url: str, marks: Path, rng: random.Random) -> list[int]:
    """Killed processes, then unkilled ones until every job ended; returns the pids in order."""
    pids = []
    for _ in range(rng.randint(1, 4)):
        # Half the kills come from outside at a random moment (mid-node, mid-commit, mid-recovery),
        # half from inside as the n-th node starts (right after a commit, where a re-run is most likely).
        from_inside = rng.random() < 0.5
        with _process(url, marks, kill_at=rng.randint(1, 25) if from_inside else 0) as proc:
            pids.append(proc.pid)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
            if from_inside:
                proc.wait(90)
            else:
                time.sleep(rng.uniform(0.0, 0.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
    for _ in range(3):
        with _process(url, marks) as proc:
            pids.append(proc.pid)
            assert proc.wait(90) == 0
        with open_store(url) as store:
            if len(store.jobs(status="completed")) == SHAPES:
                break
    return pids


def _check_exactly_once(url: str, marks: Path, pids: list[int]) -> None:
    generation = {pid: g for g, pid in enumerate(pids)}
    ran: dict[tuple[str, str, int, str], list[int]] = defaultdict(list)  # run -> generations that ran it
    for line in marks.read_text().splitlines() if marks.exists() else []:
        pid, job, node_name, iteration, item = line.split()
        ran[(job, node_name, int(iteration), item)].append(generation[int(pid)])
    with open_store(url) as store:
        jobs = store.jobs(limit=100)
        acknowledged = set(Path(f"{marks}.acks").read_text().split())
        assert acknowledged <= {j.id for j in jobs}, "submit() returned for a job the store does not have"
        assert sorted(j.flow for j in jobs) == ["chain", "fanout", "loop", "map", "suspend"]
        assert {j.status for j in jobs} == {"completed"}, {j.flow: j.status for j in jobs}
        for job in jobs:
            completed = [r for r in store.node_runs(job.id) if r.status == "completed"]
            keys = [(job.id, r.node, r.iteration, "-" if r.item is None else str(r.item)) for r in completed]
            assert not [k for k, n in Counter(keys).items() if n > 1], f"{job.flow}: a run recorded completed twice"
            for run, key in zip(completed, keys, strict=True):
                if run.node == "again":
                    continue  # no side effect to count
                by = generation[int(run.thread.split("-")[1])]
                assert ran[key].count(by) == 1, (
                    f"{job.flow}: {key} ran {ran[key].count(by)}x in the generation that recorded it"
                )
                assert max(ran[key]) == by, (
                    f"{job.flow}: {key} recorded completed in generation {by}, ran again in {max(ran[key])}"
                )
            committed = {
                f"{node_name}:{iteration}:{item}" for _, node_name, iteration, item in keys if node_name != "again"
            }
            assert committed <= set(job.output), (
                f"{job.flow}: committed state lost: {sorted(committed - set(job.output))}"
            )


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_9_at_random_points_never_reruns_a_completed_node_on_sqlite(tmp_path: Path, trial: int) -> None:
    url = f"sqlite:///{tmp_path / 'campaign.db'}"
    marks = tmp_path / "marks"
    pids = _run_generations(url, marks, random.Random(trial))
    _check_exactly_once(url, marks, pids)


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="no PostgreSQL server: set AETHERFLOW_PG_URL (.ci/run starts one)")
@pytest.mark.parametrize("trial", range(max(1, TRIALS // 2)))
def test_kill_9_at_random_points_never_reruns_a_completed_node_on_postgres(tmp_path: Path, trial: int) -> None:
    url = postgres_url()
    marks = tmp_path / "marks"
    pids = _run_generations(url, marks, random.Random(1000 + trial))
    _check_exactly_once(url, marks, pids)
