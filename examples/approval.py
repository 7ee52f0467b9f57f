"""A human approval step: the job suspends, waits, and resumes with the decision.

`Suspend` pauses the job (status "suspended", recorded in the store); `worker.resume`
runs the suspended node again with the human's `answer`, without re-running earlier nodes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aetherflow import JobSuspendedError, Suspend, Worker, node


@node
def prepare_payment(amount: float, to: str) -> dict:
    print(f"prepared payment of {amount} to {to}")
    return {"amount": amount, "to": to}


@node
def approve(prepare_payment: dict, answer: bool | None = None) -> dict:
    if answer is None:  # `answer` holds the human's decision only in the run that resumes this suspension
        raise Suspend(f"payment of {prepare_payment['amount']} needs a human decision")
    return {**prepare_payment, "approved": answer}


@node
def execute(approve: dict) -> str:
    return f"sent {approve['amount']} to {approve['to']}" if approve["approved"] else "cancelled"


flow = prepare_payment.then(approve).then(execute).named("payment")

if __name__ == "__main__":
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'runs.db'}"
    with Worker(threads=2, store=url, flows=[flow]) as worker:
        job = worker.submit(flow, {"amount": 120.0, "to": "ACME"})
        try:
            job.result()
        except JobSuspendedError as paused:
            print("suspended:", paused.reason, "| status in store:", worker.store.job(job.id).status)
        resumed = worker.resume(job.id, answer=True)
        print("after approval:", resumed.result())
