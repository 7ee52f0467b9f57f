"""@node: wrapping, calling, options, validation compiled per node."""

from __future__ import annotations

import functools
import importlib
import re
import threading
import time
import typing
from typing import Annotated

import pytest
from pydantic import BaseModel, Field, ValidationError

from aetherflow import (
    FlowDefinitionError,
    Node,
    NodeDefinitionError,
    NodeError,
    NodeInputError,
    NodeOutputError,
    NodeTimeoutError,
    node,
)
from shapes import inc


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


# -- Annotated constraints (issue 14, item 5) ---------------------------------------------


@node
def halve(x: Annotated[int, Field(gt=0)]) -> Annotated[int, Field(lt=10)]:
    return x // 2


def test_annotated_field_constraint_refuses_a_bad_input(worker) -> None:
    with pytest.raises(NodeInputError) as info:
        halve.run({"x": -4}, worker=worker)
    err = info.value
    assert err.node == "halve"
    assert "parameter 'x'" in str(err)
    assert "greater than 0" in str(err)  # pydantic's own message
    assert isinstance(err.__cause__, ValidationError)


def test_annotated_field_constraint_refuses_a_bad_output(worker) -> None:
    with pytest.raises(NodeOutputError) as info:
        halve.run({"x": 40}, worker=worker)
    assert info.value.node == "halve"
    assert "less than 10" in str(info.value)


def test_annotated_field_constraint_accepts_and_coerces_a_good_value(worker) -> None:
    assert halve.run({"x": "8"}, worker=worker) == 4


def test_annotated_constraint_between_nodes_names_the_upstream(worker) -> None:
    @node
    def negative() -> int:
        return -1

    @node
    def positive_only(n: Annotated[int, Field(ge=0)]) -> int:
        return n

    with pytest.raises(NodeInputError, match=r"parameter 'n'.*greater than or equal to 0.*node 'negative'"):
        negative.then(positive_only).run(worker=worker)


def test_validation_is_compiled_once_per_node(worker, monkeypatch) -> None:
    node_module = importlib.import_module("aetherflow.node")  # the package's `node` is the decorator
    built = []
    real = node_module._make_adapter
    monkeypatch.setattr(node_module, "_make_adapter", lambda hint: built.append(hint) or real(hint))

    @node
    def bounded(x: Annotated[int, Field(gt=0)]) -> int:
        return x

    for i in range(1, 20):
        assert bounded.run({"x": i}, worker=worker) == i
    assert len(built) == 2  # the parameter and the return value, once each


# -- NodeTimeoutError vs a slow wait (issue 14, item 12) ----------------------------------


def test_node_timeout_is_a_node_error_not_a_builtin_timeout(worker) -> None:
    """`except TimeoutError` around job.result(timeout=) must mean "still running", never "failed"."""

    @node(timeout=0.05)
    def sluggish() -> int:
        time.sleep(1)
        return 1

    job = worker.submit(sluggish)
    try:
        job.result(timeout=5)
    except TimeoutError:  # pragma: no cover - the failure this test guards against
        pytest.fail("a node's own timeout was caught as a slow wait for the job")
    except NodeTimeoutError as err:
        assert err.node == "sluggish" and err.job_id == job.id
        assert isinstance(err, NodeError)
        assert not isinstance(err, TimeoutError)
    assert job.status == "failed"


def test_waiting_too_short_for_a_job_raises_builtin_timeout_error(worker) -> None:
    release = threading.Event()

    @node
    def waits() -> int:
        release.wait(5)
        return 1

    job = worker.submit(waits)
    try:
        with pytest.raises(TimeoutError) as info:
            job.result(timeout=0.02)
        assert not isinstance(info.value, NodeError)  # the job did not fail: it is still running
        assert job.status == "running"
    finally:
        release.set()
    assert job.result(timeout=5) == 1


# -- options and functions are checked at decoration time (issue 14, item 10) ---------------


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"retries": -1}, "retries=...) must be an int >= 0, got -1"),
        ({"retries": True}, "retries=...) must be an int >= 0, got True"),
        ({"retries": 1.5}, "retries=...) must be an int >= 0, got 1.5"),
        ({"retry_delay": "x"}, "retry_delay=...) must be a finite number >= 0, got 'x'"),
        ({"retry_delay": -0.5}, "retry_delay=...) must be a finite number >= 0, got -0.5"),
        ({"backoff": 0}, "backoff=...) must be a finite number > 0, got 0"),
        ({"backoff": float("inf")}, "backoff=...) must be a finite number > 0, got inf"),
        ({"max_delay": -1}, "max_delay=...) must be a finite number >= 0, got -1"),
        ({"timeout": "x"}, "timeout=...) must be a finite number > 0, got 'x'"),
        ({"timeout": 0}, "timeout=...) must be a finite number > 0, got 0"),
        ({"timeout": float("nan")}, "timeout=...) must be a finite number > 0, got nan"),
        ({"timeout": 1e300}, "timeout=...) must be at most"),
        ({"max_iterations": 0}, "max_iterations=...) must be an int >= 1, got 0"),
        ({"conflict_retries": -2}, "conflict_retries=...) must be an int >= 0, got -2"),
        ({"retry_on": "IOError"}, "retry_on=...) must be an exception class or a tuple of them"),
        ({"retry_on": (IOError, 3)}, "retry_on=...) must be an exception class or a tuple of them"),
        ({"name": ""}, "name=...) must be a non-empty str, got ''"),
        ({"name": 7}, "name=...) must be a non-empty str, got 7"),
        ({"retires": 3}, "@node has no option 'retires'; did you mean 'retries'?"),
    ],
)
def test_a_bad_option_is_refused_when_the_function_is_decorated(options: dict, says: str) -> None:
    def work(x: int) -> int:
        return x

    with pytest.raises(NodeDefinitionError) as info:
        node(**options)(work)
    assert says in str(info.value)
    assert isinstance(info.value, FlowDefinitionError)  # a node that cannot be made is a definition error


def test_every_bad_option_is_listed_at_once() -> None:
    with pytest.raises(NodeDefinitionError) as info:
        node(retries=-1, timeout="soon")(lambda x: x)
    assert len(info.value.problems) == 2
    assert "@node '<lambda>'" in str(info.value) and "2 problems" in str(info.value)


def test_a_backoff_no_thread_could_sleep_is_refused_unless_capped() -> None:
    with pytest.raises(NodeDefinitionError, match="cap the wait with @node\\(max_delay=...\\)"):
        node(retries=500, retry_delay=1.0, backoff=10.0)(lambda x: x)
    capped = node(retries=500, retry_delay=1.0, backoff=10.0, max_delay=30.0)(lambda x: x)
    assert capped.max_delay == 30.0


def test_good_options_are_normalised() -> None:
    @node(retry_on=IOError, timeout=2, retry_delay=1)
    def fetch(url: str) -> str:
        return url

    assert fetch.retry_on == (IOError,)
    assert fetch.timeout == 2.0 and isinstance(fetch.timeout, float)
    assert fetch.max_delay is None


def test_options_given_with_the_function_are_not_ignored() -> None:
    def work(x: int) -> int:
        return x

    assert node(work, retries=2).retries == 2


def test_a_partial_becomes_a_node_named_after_its_function(worker) -> None:
    def scale(x: int, factor: int) -> int:
        return x * factor

    triple = node(functools.partial(scale, factor=3))
    assert triple.name == "scale"
    assert triple.run({"x": "2"}, worker=worker) == 6  # annotations of the wrapped function apply
    with pytest.raises(NodeInputError, match="parameter 'x'"):
        triple.run({"x": "two"}, worker=worker)


def test_an_async_partial_is_an_async_node(worker) -> None:
    async def add(x: int, y: int) -> int:
        return x + y

    plus_one = node(functools.partial(add, y=1))
    assert plus_one.is_async
    assert plus_one.run({"x": 1}, worker=worker) == 2


def test_a_lambda_and_a_callable_object_are_nodes(worker) -> None:
    assert node(lambda x: x * 2).run({"x": 4}, worker=worker) == 8

    class Doubler:
        def __call__(self, x: int) -> int:
            return x * 2

    doubler = node(Doubler())
    assert doubler.name == "Doubler"
    assert doubler.run({"x": "5"}, worker=worker) == 10


@pytest.mark.parametrize(
    ("thing", "says"),
    [
        (3, "@node wraps a function, found 3 (int)"),
        ("load", "@node wraps a function, found 'load' (str)"),
        (max, "cannot be read"),
        (len, "receive their arguments by name"),
    ],
)
def test_something_that_is_not_a_usable_function_is_refused(thing: object, says: str) -> None:
    with pytest.raises(NodeDefinitionError, match=re.escape(says)):
        node(thing)  # type: ignore[arg-type]


def test_decorating_a_node_again_is_explained() -> None:
    with pytest.raises(NodeDefinitionError, match="already a node"):
        node(inc)  # type: ignore[arg-type]


def test_the_node_class_checks_option_names_too() -> None:
    with pytest.raises(NodeDefinitionError, match="@node has no option 'timout'; did you mean 'timeout'?"):
        Node(lambda x: x, timout=1)


def test_an_annotation_pydantic_cannot_validate_is_explained_before_the_job_runs(worker) -> None:
    ran = []

    @node
    def odd(x: typing.Self) -> int:  # type: ignore[misc]
        ran.append(x)
        return 1

    with pytest.raises(
        NodeDefinitionError, match=r"parameter 'x' is annotated typing.Self, which pydantic cannot validate"
    ) as info:
        odd.run({"x": 1}, worker=worker)
    assert info.value.__cause__ is not None
    assert ran == []
