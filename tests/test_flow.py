"""Building flows: chains, fan-out/in, map, branches, loops, explicit form, pictures."""

from __future__ import annotations

import sys

import pytest

from aetherflow import Flow, FlowDefinitionError, UsageError, node
from shapes import even, inc, odd, split, square, total


@node
def double(x: int) -> int:
    return x * 2


def test_then_pipes_single_parameter(worker) -> None:
    """inc.then(double): double's only free parameter receives inc's output."""
    assert inc.then(double).run({"x": 3}, worker=worker) == 8


def test_same_node_twice_is_two_vertices(worker) -> None:
    flow = inc.then(inc)
    assert flow.graph.names == ["inc", "inc_2"]
    assert flow.run({"x": 0}, worker=worker) == 2


def test_repeat_runs_n_copies(worker) -> None:
    assert inc.repeat(5).run({"x": 0}, worker=worker) == 5


def test_fluent_steps_do_not_change_their_parent(worker) -> None:
    base = inc.then(double)
    a = base.then(inc)
    b = base.then(double)
    assert base.run({"x": 1}, worker=worker) == 4
    assert a.run({"x": 1}, worker=worker) == 5
    assert b.run({"x": 1}, worker=worker) == 8


@node
def source(x: int) -> int:
    return x


@node
def left(source: int) -> int:
    return source + 1


@node
def right(source: int) -> int:
    return source + 2


@node
def merge(left: int, right: int) -> int:
    return left * right


@node
def gather(parts: dict) -> dict:
    return parts


def test_fan_out_and_in_by_parameter_names(worker) -> None:
    assert source.fan_out_to([left, right]).fan_in(merge).run({"x": 1}, worker=worker) == 6


def test_join_single_free_parameter_gets_dict_of_upstreams(worker) -> None:
    flow = source.fan_out_to([left, right]).fan_in(gather)
    assert flow.run({"x": 1}, worker=worker) == {"left": 2, "right": 3}


def test_any_ancestor_output_is_reachable_by_name(worker) -> None:
    @node
    def report(source: int, right: int) -> str:
        return f"{source}->{right}"

    flow = source.then(right).then(report)
    assert flow.run({"x": 5}, worker=worker) == "5->7"


def test_flow_from_list_infers_edges_from_names(worker) -> None:
    @node
    def load(path: str) -> list[str]:
        return path.split(",")

    @node
    def clean(load: list[str]) -> list[str]:
        return [s.strip() for s in load]

    @node
    def count(clean: list[str]) -> int:
        return len(clean)

    flow = Flow([count, clean, load], name="etl")
    assert flow.name == "etl"
    assert flow.inputs == {"path": True}
    assert flow.run({"path": "a, b ,c"}, worker=worker) == 3


def test_several_sinks_return_a_dict(worker) -> None:
    assert source.fan_out_to([left, right]).run({"x": 1}, worker=worker) == {"left": 2, "right": 3}


def test_cycle_without_branch_is_a_definition_error() -> None:
    @node
    def ping(pong: int) -> int:
        return pong

    @node
    def pong(ping: int) -> int:
        return ping

    with pytest.raises(FlowDefinitionError, match="cycle that does not go through a branch"):
        Flow([ping, pong]).validate()


def test_ten_thousand_node_chain_builds_and_runs(worker) -> None:
    """No recursion anywhere: 10,000 vertices in a chain."""
    limit = sys.getrecursionlimit()
    flow = inc.repeat(10_000)
    assert len(flow.graph.names) == 10_000 > limit
    assert flow.run({"x": 0}, worker=worker) == 10_000


def test_plain_function_in_flow_is_explained() -> None:
    def plain(x: int) -> int:
        return x

    with pytest.raises(FlowDefinitionError, match="decorate it with @node"):
        inc.then(plain)  # type: ignore[arg-type]


def test_named_renames_the_flow() -> None:
    assert inc.then(double).named("calc").name == "calc"
    assert inc.then(double).name == "inc"


# -- fan_in joins (issue 14, item 7) -------------------------------------------------------


def test_fan_in_after_a_one_branch_fan_out_still_gets_a_dict(worker) -> None:
    """A join receives {branch: output} whatever the number of branches, even one."""
    flow = source.fan_out_to([left]).fan_in(gather)
    assert flow.run({"x": 1}, worker=worker) == {"left": 2}


def test_fan_in_after_map_receives_the_mapped_list(worker) -> None:
    """A map's single tail is its list of outputs: fan_in(total) sums it."""
    assert split.map(square).fan_in(total).run({"n": 3}, worker=worker) == 5


def test_fan_out_to_nothing_is_refused_when_built() -> None:
    with pytest.raises(FlowDefinitionError, match=r"fan_out_to\(\[\]\) needs at least one node"):
        source.fan_out_to([])


def test_fan_out_to_a_single_node_instead_of_a_list_is_explained() -> None:
    with pytest.raises(FlowDefinitionError, match=r"fan_out_to\(\.\.\.\) takes a list of nodes"):
        source.fan_out_to(left)  # type: ignore[arg-type]


# -- long fluent chains (issue 14, item 8) ---------------------------------------------------


def _fluent_chain(length: int) -> Flow:
    @node
    def inc(x: int) -> int:  # a fresh node: nothing about it is cached by earlier tests
        return x + 1

    flow = inc.then(inc)
    for _ in range(length - 2):
        flow = flow.then(inc)
    return flow


def test_ten_thousand_fluent_then_steps_work_at_the_default_recursion_limit(worker) -> None:
    assert sys.getrecursionlimit() <= 1_000 < 10_000
    flow = _fluent_chain(10_000)
    assert flow.name == "inc"
    assert repr(flow) == "<Flow inc: 10000 nodes>"
    flow.validate()
    assert flow.inputs == {"x": True}
    assert flow.run({"x": 0}, worker=worker) == 10_000
    mermaid = flow.to_mermaid()
    assert "inc_9999 --> inc_10000" in mermaid
    assert '"inc_10000" [shape=box]' in flow.to_dot()


def test_ten_thousand_fluent_steps_run_on_the_default_worker() -> None:
    assert _fluent_chain(10_000).named("long").run({"x": 1}) == 10_001


def test_a_long_fluent_chain_and_its_intermediate_flows_can_be_freed() -> None:
    flow = _fluent_chain(10_000)
    middle = flow
    del flow
    assert middle.name == "inc"  # still usable after its children are gone
    del middle  # freeing 10,000 linked flows must not recurse either


# -- ambiguous parameter names (issue 14, item 6; misspelt ones: test_typos.py) --------------------


def test_reading_the_first_of_several_repeat_copies_is_ambiguous() -> None:
    @node
    def report(inc: int) -> int:
        return inc

    with pytest.raises(FlowDefinitionError) as info:
        inc.repeat(3).then(report).validate()
    message = str(info.value)
    assert "parameter 'inc' of node 'report'" in message
    assert "ambiguous" in message
    assert "'inc_2'" in message and "'inc_3'" in message


def test_reading_a_named_copy_is_not_ambiguous(worker) -> None:
    @node
    def report(inc_3: int, inc: int) -> str:
        return f"{inc} -> {inc_3}"

    with pytest.raises(FlowDefinitionError, match="ambiguous"):
        inc.repeat(3).then(report).validate()  # 'inc' still is

    @node
    def last(inc_3: int) -> int:
        return inc_3

    assert inc.repeat(3).then(last).run({"x": 0}, worker=worker) == 3


def test_a_copy_downstream_of_the_reader_does_not_make_it_ambiguous(worker) -> None:
    @node
    def report(inc: int) -> int:
        return inc * 10

    assert inc.then(report).then(inc).run({"x": 0}, worker=worker) == 11


# -- arguments the public API cannot use (issue 14, item 10) ----------------------------------


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ([1, 2], "A job's inputs must be a mapping of input names to values, e.g. {'x': 1}; found [1, 2]"),
        ("x=1", "A job's inputs must be a mapping of input names to values"),
        ({1: 2}, "A job's input names are parameter names (str); found the key 1"),
    ],
)
def test_job_inputs_that_are_not_a_mapping_of_names_are_refused(worker, inputs: object, says: str) -> None:
    with pytest.raises(UsageError) as info:
        inc.run(inputs, worker=worker)  # type: ignore[arg-type]
    assert says in str(info.value)
    with pytest.raises(UsageError, match="A job's input"):
        worker.submit(inc, inputs)  # type: ignore[arg-type]


def test_submitting_something_that_is_not_a_flow_is_refused(worker) -> None:
    with pytest.raises(UsageError, match=r"submit\(flow\) needs a Flow or a @node, found 'inc'"):
        worker.submit("inc")  # type: ignore[arg-type]


def test_a_context_or_worker_of_the_wrong_kind_is_refused(worker) -> None:
    with pytest.raises(UsageError, match=r"run\(context=...\) needs a BaseFlowContext subclass or instance") as info:
        inc.run({"x": 1}, context="production", worker=worker)
    assert isinstance(info.value.__cause__, TypeError)  # what revealed the mistake, chained
    with pytest.raises(UsageError, match=r"run\(worker=...\) needs an aetherflow Worker, found 4"):
        inc.run({"x": 1}, worker=4)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"Flow\(..., context=...\)"):
        Flow([inc], context=42)


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda: inc.repeat(0), "repeat(times) needs an int from 1 to 100,000, got 0"),
        (lambda: inc.repeat(True), "repeat(times) needs an int from 1 to 100,000, got True"),
        (lambda: inc.repeat(10**9), "to loop more often, use branch_on"),
        (lambda: inc.branch_on([even, odd]), "branch_on(...) takes a mapping of values to nodes"),
        (lambda: Flow(inc), "Flow(...) takes a list of nodes or a name, found <Node inc"),
        (lambda: Flow([inc, 3]), "expected a @node function, found 3"),
        (lambda: inc.then(inc).fan_in(inc.then(double)), "use then(flow) to append a whole flow"),
        (lambda: Flow("explicit").add(inc).branch(inc, "even"), "branch(...) takes a mapping of values to nodes"),
        (lambda: Flow("explicit").add(inc).connect(inc, 3.5).validate(), "expected a @node function, found 3.5"),
    ],
)
def test_flow_shapes_that_cannot_be_built_are_explained(build, says: str) -> None:
    with pytest.raises(FlowDefinitionError) as info:
        build()
    assert says in str(info.value)


@pytest.mark.parametrize("name", ["", "   ", 3, None])
def test_a_flow_name_must_be_a_non_empty_string(name: object) -> None:
    with pytest.raises(UsageError, match="needs a non-empty str as the flow's name"):
        inc.named(name)  # type: ignore[arg-type]
