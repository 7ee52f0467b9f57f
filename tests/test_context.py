"""A flow's context: when a node asks for a provider no context gives, the error names the context to pass."""

from __future__ import annotations

import pytest

from aetherflow import BaseFlowContext, MissingInputError, Worker, node, providers


class Accounts(BaseFlowContext):
    ledger = providers.Singleton(dict)


class Unrelated(BaseFlowContext):
    clock = providers.Object(0)


@node
def post(ledger: dict, amount: int) -> int:
    ledger["total"] = ledger.get("total", 0) + amount
    return ledger["total"]


def test_a_flow_run_without_its_context_names_the_context_that_provides_what_it_asks_for() -> None:
    with Worker(threads=1) as w, pytest.raises(MissingInputError) as info:
        post.run({"amount": 5}, worker=w)
    message = str(info.value)
    assert "'ledger'" in message and "node 'post'" in message
    assert "without a context" in message
    assert "Accounts" in message and "context=Accounts" in message


def test_a_flow_run_with_the_wrong_context_says_which_context_it_used_and_which_to_pass() -> None:
    with Worker(threads=1) as w, pytest.raises(MissingInputError) as info:
        post.run({"amount": 5}, worker=w, context=Unrelated)
    message = str(info.value)
    assert "with the context Unrelated (providers: clock)" in message
    assert "context=Accounts" in message


def test_a_missing_input_no_context_provides_is_still_blamed_on_the_inputs() -> None:
    @node
    def add(amount: int, fee: int) -> int:
        return amount + fee

    with Worker(threads=1) as w, pytest.raises(MissingInputError) as info:
        add.run({"amount": 5}, worker=w)
    assert "Pass it in the job's inputs" in str(info.value)
    assert "context=" not in str(info.value)


def test_the_context_that_provides_it_makes_the_same_flow_run() -> None:
    with Worker(threads=1) as w:
        assert post.run({"amount": 5}, worker=w, context=Accounts) == 5
