"""@node: wrapping, calling, options, validation compiled per node."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from aetherflow import FlowDefinitionError, Node, NodeInputError, NodeOutputError, node


@node
def inc(x: int) -> int:
    return x + 1


def test_node_stays_callable_like_its_function() -> None:
    """A Node can be called directly in unit tests."""
    assert isinstance(inc, Node)
    assert inc(1) == 2
    assert inc.name == "inc"


def test_keyword_only_parameters_are_filled_like_any_other(worker) -> None:
    @node
    def scaled(x: int, *, factor: int, offset: int = 1) -> int:
        return x * factor + offset

    assert scaled.run({"x": 2, "factor": 10}, worker=worker) == 21
    assert scaled.run({"x": 2, "factor": 10, "offset": 0}, worker=worker) == 20


def test_node_with_options_records_them() -> None:
    @node(retries=3, retry_delay=0.1, backoff=2.0, retry_on=(IOError,), timeout=5.0)
    async def fetch(url: str) -> bytes:
        return url.encode()

    assert fetch.is_async and fetch.retries == 3 and fetch.timeout == 5.0
    assert fetch.retry_on == (IOError,)


def test_node_rejects_var_args_with_a_clear_error() -> None:
    with pytest.raises(FlowDefinitionError, match="receive their arguments by name"):

        @node
        def bad(*args: int) -> int:
            return 0


def test_node_rejects_negative_retries() -> None:
    with pytest.raises(FlowDefinitionError, match="retries"):
        node(retries=-1)(lambda x: x)


def test_node_must_be_allowed_to_run_at_least_once() -> None:
    with pytest.raises(FlowDefinitionError, match=r"max_iterations=...\) must be an int >= 1, got 0"):
        node(max_iterations=0)(lambda x: x)


def test_node_coerces_annotated_inputs_like_fastapi(worker) -> None:
    """Lax pydantic validation: '3' becomes 3 for an int parameter."""
    assert inc.run({"x": "3"}, worker=worker) == 4


def test_node_bad_input_raises_node_input_error_naming_parameter(worker) -> None:
    with pytest.raises(NodeInputError) as info:
        inc.run({"x": "three"}, worker=worker)
    err = info.value
    assert err.node == "inc" and err.job_id
    assert "parameter 'x'" in str(err) and "job input 'x'" in str(err)


def test_node_bad_output_raises_node_output_error(worker) -> None:
    @node
    def wrong() -> int:
        return "not a number"  # type: ignore[return-value]

    with pytest.raises(NodeOutputError, match="return annotation"):
        wrong.run(worker=worker)


def test_node_validates_pydantic_models(worker) -> None:
    class User(BaseModel):
        name: str
        age: int

    @node
    def greet(user: User) -> str:
        return f"{user.name} is {user.age}"

    assert greet.run({"user": {"name": "Ada", "age": "36"}}, worker=worker) == "Ada is 36"


def test_validation_errors_are_never_retried(worker) -> None:
    calls = []

    @node(retries=5)
    def strict(x: int) -> int:
        calls.append(x)
        return x

    with pytest.raises(NodeInputError):
        strict.run({"x": "nope"}, worker=worker)
    assert calls == []
