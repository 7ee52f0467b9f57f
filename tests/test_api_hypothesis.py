"""Whatever a user passes to the public API, the answer is a result or an AetherFlowError.

Hypothesis generates node signatures (with partials and lambdas), `@node` options, flow
shapes and job inputs (NaN, non-UTF-8 bytes, huge ints, odd keys, non-mappings). Every
outcome must be the documented result or an `AetherFlowError` subclass: never a raw
AttributeError/TypeError/ValueError/RecursionError, never a hang. Each property is
bounded (examples and a wait per job) so the file runs in a few seconds.
"""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any, Self

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, SecretStr

from aetherflow import AetherFlowError, Flow, Node, NodeError, Worker, node

BOUNDED = settings(
    max_examples=150,
    deadline=None,  # a job may hit a timeout on purpose; the per-job wait below bounds it
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
JOB_WAIT = 20.0  # seconds: far beyond any example; reaching it means the job hung


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    w = Worker(threads=2, name="hypothesis")  # the default memory store
    yield w
    w.close()


def outcome(act: Callable[[], Any]) -> Any:
    """``act()``'s result, or the AetherFlowError it raised; anything else fails the test."""
    try:
        return act()
    except AetherFlowError as err:
        assert str(err)  # it explains itself
        if isinstance(err, NodeError) and not isinstance(err.__cause__, AetherFlowError | None):
            assert err.__cause__ is not None
        return err


def run_bounded(worker: Worker, flow: Flow | Node, inputs: Any) -> Any:
    """Run one job; its result or its AetherFlowError. A job still running after JOB_WAIT hung."""
    job = worker.submit(flow, inputs)
    try:
        return job.result(timeout=JOB_WAIT)
    except TimeoutError:
        job.cancel()
        pytest.fail(f"job of {flow!r} with inputs {inputs!r} did not end within {JOB_WAIT} s (a hang)")


# -- values a user may pass ------------------------------------------------------------------

odd_floats = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324])
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**5000, -(10**400), 2**64]),  # beyond int's str conversion limit
    st.floats(allow_nan=True, allow_infinity=True),
    odd_floats,
    st.text(max_size=8),
    st.binary(max_size=8),
    st.sampled_from([b"\xff\xfe", b"\x80abc", "\udcff", "\x00"]),  # non-UTF-8 bytes, lone surrogate
    st.lists(st.integers(), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    st.builds(object),
    st.sampled_from([datetime(2020, 1, 1), {1, 2}, (1, "a"), ..., print, int]),
)
input_keys = st.one_of(
    st.sampled_from(["x", "y", "n", "path", "data", "items", "laod", "secret", "when", "user"]),
    st.text(min_size=1, max_size=6),
)
job_inputs = st.one_of(
    st.none(),
    st.dictionaries(input_keys, values, max_size=5),
    st.dictionaries(st.one_of(st.integers(), st.none(), st.binary(max_size=2)), values, min_size=1, max_size=2),
    st.sampled_from([[1, 2], "x=1", 3, [("x", 1)], {"x"}, b"\xff"]),
)


# -- node signatures ---------------------------------------------------------------------------


class User(BaseModel):
    name: str
    age: int


ANNOTATIONS: dict[str, Any] = {
    "": None,
    "int": int,
    "str": str,
    "float": float,
    "bytes": bytes,
    "bool": bool,
    "list[int]": list[int],
    "dict[str, int]": dict[str, int],
    "int | None": int | None,
    "Positive": Annotated[int, Field(gt=0)],
    "Short": Annotated[str, Field(max_length=3)],
    "User": User,
    "SecretStr": SecretStr,
    "datetime": datetime,
    "Any": Any,
    "Self": Self,  # pydantic cannot build a validator for it
    "Unknown": "Unknown",  # a name that never resolves
}
PARAM_NAMES = ["x", "y", "n", "data", "items", "path", "laod", "secret", "when", "user", "execution", "job_state"]
BODIES = [
    "return {first}",
    "return None",
    "return float('nan')",
    "return 10 ** 5000",
    "return b'\\xff'",
    "raise ValueError('boom')",
    "raise RecursionError('deep')",
    "return [{first}]",
    "return {{'k': {first}}}",
]


@st.composite
def signatures(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """Source text of a function with generated parameters, and its namespace."""
    names = draw(st.lists(st.sampled_from(PARAM_NAMES), unique=True, max_size=4))
    kinds = draw(
        st.lists(
            st.sampled_from(["plain", "default", "kwonly", "star", "starstar", "posonly"]),
            min_size=len(names),
            max_size=len(names),
        )
    )
    parts: list[str] = []
    posonly: list[str] = []
    kwonly: list[str] = []
    extra: list[str] = []
    for name, kind in zip(names, kinds, strict=True):
        ann = draw(st.sampled_from(list(ANNOTATIONS)))
        text = f"{name}: {ann}" if ann else name
        if kind == "default":
            text += " = " + draw(st.sampled_from(["None", "0", "'a'", "1.5"]))
        if kind == "star":
            extra.append(f"*{name}")
        elif kind == "starstar":
            extra.append(f"**{name}")
        elif kind == "posonly":
            posonly.append(text)
        elif kind == "kwonly":
            kwonly.append(text + (" = 1" if "=" not in text and draw(st.booleans()) else ""))
        else:
            parts.append(text)
    # Keep Python's own ordering rules (defaults last) so the source compiles.
    parts.sort(key=lambda p: "=" in p)
    posonly.sort(key=lambda p: "=" in p)
    if posonly and any("=" in p for p in posonly):
        parts = [p if "=" in p else p + " = None" for p in parts]
    params = ", ".join(
        [
            *posonly,
            *(["/"] if posonly else []),
            *parts,
            *[e for e in extra if e.startswith("*") and not e.startswith("**")][:1],
        ]
    )
    if kwonly:
        params += (
            (", " if params else "")
            + ("" if any(e.startswith("*") and not e.startswith("**") for e in extra) else "*, ")
            + ", ".join(kwonly)
        )
    double = [e for e in extra if e.startswith("**")][:1]
    if double:
        params += (", " if params else "") + double[0]
    first = (names[0] if names else "1") if kinds and kinds[0] not in ("star", "starstar") else "1"
    ret = draw(st.sampled_from(list(ANNOTATIONS)))
    prefix = "async def" if draw(st.booleans()) else "def"
    body = draw(st.sampled_from(BODIES)).format(first=first)
    src = f"{prefix} generated({params}){' -> ' + ret if ret else ''}:\n    {body}\n"
    return src, dict(ANNOTATIONS, Annotated=Annotated, Field=Field)


@st.composite
def functions(draw: st.DrawFn) -> Callable[..., Any]:
    src, namespace = draw(signatures())
    try:
        exec(compile(src, "<generated>", "exec"), namespace)
    except SyntaxError:
        return lambda x: x  # an ordering the generator got wrong: a plain lambda instead
    fn = namespace["generated"]
    wrap = draw(st.sampled_from(["plain", "partial", "lambda"]))
    if wrap == "partial":
        params = list(fn.__code__.co_varnames[: fn.__code__.co_argcount])
        if params:
            return functools.partial(fn, **{params[-1]: draw(values)})
    if wrap == "lambda":
        return lambda x, y=2: (x, y)
    return fn  # type: ignore[no-any-return]


def inputs_for(made: Node) -> st.SearchStrategy[Any]:
    """Mostly a value for each input the node reads; sometimes anything at all."""
    read = outcome(lambda: made.inputs)
    names = [] if isinstance(read, AetherFlowError) else sorted(read)
    fitting = st.fixed_dictionaries({n: values for n in names}, optional={"unused": values})
    return st.one_of(fitting, fitting, fitting, job_inputs)


@BOUNDED
@given(fn=functions(), data=st.data())
def test_any_node_signature_and_inputs_give_a_result_or_an_aetherflow_error(
    worker: Worker, fn: Callable[..., Any], data: st.DataObject
) -> None:
    made = outcome(lambda: node(fn))
    if isinstance(made, Node):
        inputs = data.draw(inputs_for(made))
        outcome(lambda: made.run(inputs, worker=worker))
        outcome(lambda: run_bounded(worker, made, inputs))


# -- @node options -----------------------------------------------------------------------------

usable_option_values = st.one_of(
    st.integers(min_value=0, max_value=3),
    st.floats(min_value=0.0, max_value=0.001),
    st.sampled_from([None, (), (ValueError,), ValueError, [KeyError], "step", 1e-9]),
)
option_values = st.one_of(
    usable_option_values,
    usable_option_values,
    values,
    st.integers(min_value=-3, max_value=5),
    st.floats(min_value=-1, max_value=2),
    st.sampled_from([(ValueError, 3), "IOError", 1e400, 10**30, 10**5000]),
)
option_names = st.sampled_from(
    [
        "name",
        "retries",
        "retry_delay",
        "backoff",
        "max_delay",
        "retry_on",
        "timeout",
        "max_iterations",
        "conflict_retries",
        "retires",
        "timout",
        "localns",
    ]
)


@BOUNDED
@given(options=st.dictionaries(option_names, option_values, max_size=4), x=values)
def test_any_node_options_are_checked_when_decorating(worker: Worker, options: dict[str, Any], x: Any) -> None:
    def work(x: int) -> int:  # never fails by itself, so no retry ever waits
        return x

    made = outcome(lambda: node(**options)(work))
    if isinstance(made, Node):
        assert made.retries >= 0 and made.max_iterations >= 1
        assert made.timeout is None or made.timeout > 0
        outcome(lambda: run_bounded(worker, made, {"x": x}))


# -- flow shapes -------------------------------------------------------------------------------


@node(max_iterations=20)
def source(x: Any = 0) -> Any:
    return x


@node(max_iterations=20)
def inc(x: int) -> int:
    return x + 1


@node(max_iterations=20)
def halve(value: float) -> float:
    return value / 2


@node(max_iterations=20)
def gather(parts: Any) -> Any:
    return parts


@node(max_iterations=20)
def split(n: int = 3) -> list[int]:
    return list(range(min(abs(n), 5)))


@node(max_iterations=20)
def is_big(value: Any) -> bool:
    return bool(value) and value == value


@node(max_iterations=20)
def reads_source(source: Any, extra: int = 0) -> Any:
    return (source, extra)


@node(max_iterations=20)
def misspelt(soruce: Any) -> Any:
    return soruce


POOL = [source, inc, halve, gather, split, is_big, reads_source, misspelt]
nodes = st.sampled_from(POOL)
odd_arguments = st.sampled_from([None, 3, "inc", [], [inc], {}, {1: inc}, print, lambda x: x, -1, 0, True, 10**9])


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a sensible argument, sometimes an odd one."""
    return st.one_of(good, good, good, odd_arguments)


step = st.one_of(
    st.tuples(st.just("then"), mostly(nodes)),
    st.tuples(st.just("fan_out_to"), mostly(st.lists(nodes, max_size=3))),
    st.tuples(st.just("fan_in"), mostly(nodes)),
    st.tuples(st.just("map"), mostly(nodes)),
    st.tuples(
        st.just("branch_on"), mostly(st.dictionaries(st.sampled_from([True, False, 0, 1, "a"]), nodes, max_size=2))
    ),
    st.tuples(st.just("repeat"), mostly(st.integers(min_value=-1, max_value=4))),
    st.tuples(st.just("named"), mostly(st.text(max_size=4))),
)


def build(start: Node, steps: list[tuple[str, Any]]) -> Flow:
    flow = start.as_flow()
    for method, argument in steps:
        flow = getattr(flow, method)(argument)
    return flow


@BOUNDED
@given(
    start=nodes,
    steps=st.lists(step, max_size=5),
    inputs=st.one_of(
        st.fixed_dictionaries({"x": values}, optional={"n": values, "value": values, "parts": values}), job_inputs
    ),
)
def test_any_fluent_flow_shape_builds_validates_draws_and_runs_or_says_why(
    worker: Worker, start: Node, steps: list[tuple[str, Any]], inputs: Any
) -> None:
    flow = outcome(lambda: build(start, steps))
    if not isinstance(flow, Flow):
        return
    outcome(lambda: (flow.name, repr(flow), flow.to_mermaid(), flow.to_dot()))
    if isinstance(outcome(flow.validate), AetherFlowError):
        return
    outcome(lambda: flow.inputs)
    outcome(lambda: flow.run(inputs, worker=worker))


@BOUNDED
@given(
    members=st.one_of(
        st.lists(nodes, max_size=5),
        st.lists(nodes, max_size=5),
        st.lists(st.one_of(nodes, odd_arguments), max_size=5),
        odd_arguments,
    ),
    name=st.one_of(st.none(), st.none(), st.text(max_size=4), odd_arguments),
    context=st.sampled_from([None, None, None, None, 3, "ctx", object(), int, Flow]),
    inputs=st.one_of(
        st.fixed_dictionaries({"x": values}, optional={"n": values, "value": values, "parts": values}), job_inputs
    ),
)
def test_any_flow_from_a_list_builds_and_runs_or_says_why(
    worker: Worker, members: Any, name: Any, context: Any, inputs: Any
) -> None:
    flow = outcome(lambda: Flow(members, name=name, context=context))
    if isinstance(flow, Flow):
        outcome(lambda: flow.run(inputs, worker=worker))


@BOUNDED
@given(
    start=nodes,
    ops=st.lists(
        st.tuples(
            st.sampled_from(["add", "connect", "branch"]),
            st.one_of(nodes, st.sampled_from(["source", "inc", "nope", "", 3, None])),
            st.one_of(
                nodes, st.sampled_from(["source", "inc", "nope", 3]), st.dictionaries(st.booleans(), nodes, max_size=2)
            ),
        ),
        max_size=5,
    ),
    inputs=job_inputs,
)
def test_any_explicit_flow_builds_and_runs_or_says_why(
    worker: Worker, start: Node, ops: list[tuple[str, Any, Any]], inputs: Any
) -> None:
    flow = Flow("explicit")
    flow.add(start)
    for op, a, b in ops:
        if op == "add":
            outcome(lambda a=a: flow.add(a))
        elif op == "connect":
            outcome(lambda a=a, b=b: flow.connect(a, b))
        else:
            outcome(lambda a=a, b=b: flow.branch(a, b))
    outcome(lambda: flow.run(inputs, worker=worker))


# -- job inputs against typed parameters --------------------------------------------------------


@node
def typed(
    n: int,
    text: str = "",
    raw: bytes = b"",
    ratio: float = 0.0,
    numbers: list[int] | None = None,
    positive: Annotated[int, Field(gt=0)] = 1,
    user: User | None = None,
    secret: SecretStr | None = None,
    when: datetime | None = None,
) -> dict[str, Any]:
    return {"n": n, "text": text, "raw": raw, "ratio": ratio}


typed_keys = st.sampled_from(["n", "text", "raw", "ratio", "numbers", "positive", "user", "secret", "when", "unused"])


@BOUNDED
@given(
    inputs=st.one_of(
        st.fixed_dictionaries(
            {"n": st.one_of(st.integers(), values)},
            optional={
                k: values for k in ["text", "raw", "ratio", "numbers", "positive", "user", "secret", "when", "unused"]
            },
        ),
        st.dictionaries(typed_keys, values, max_size=6),
        job_inputs,
    )
)
def test_any_job_inputs_give_a_result_or_an_aetherflow_error(worker: Worker, inputs: Any) -> None:
    result = outcome(lambda: typed.run(inputs, worker=worker))
    if not isinstance(result, AetherFlowError):
        assert isinstance(result["n"], int)  # validated and coerced, never passed through raw


@BOUNDED
@given(text=st.text(alphabet=string.printable + "\udcff\x00é", max_size=12))
def test_any_run_argument_for_context_and_worker_is_checked(text: str) -> None:
    for context in (text, 3, object()):
        outcome(lambda context=context: inc.run({"x": 1}, context=context))
    outcome(lambda: inc.run({"x": 1}, worker=text))  # type: ignore[arg-type]
    outcome(lambda: inc.validate(text))


# -- store URLs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("stores"))


file_names = st.text(
    alphabet=st.characters(blacklist_characters="/.", blacklist_categories=("Cs",))
    | st.sampled_from(["\x00", "\udcff"]),
    min_size=0,
    max_size=12,
)
url_texts = st.one_of(
    st.sampled_from(
        ["", "memory://", "memory://x", "mysql://x", "sqlite://", "sqlite:///", "://", "file:///x", "MEMORY://"]
    ),
    st.text(max_size=12),
    st.builds(lambda t: "memory://" + t, st.text(max_size=8)),
)


@BOUNDED
@given(url=st.one_of(url_texts, st.sampled_from([None, 3, b"memory://", ["memory://"]])), name=file_names)
def test_any_store_url_opens_a_store_or_says_why(store_dir: str, url: Any, name: str) -> None:
    from aetherflow import open_store

    # A PostgreSQL URL waits for its server (30 s by default); this suite runs without one.
    assume(not (isinstance(url, str) and url.startswith(("postgres://", "postgresql://"))))
    for candidate in (url, f"sqlite:////{store_dir}/{name}.db"):
        store = outcome(lambda candidate=candidate: open_store(candidate))
        if not isinstance(store, AetherFlowError):
            store.close()
