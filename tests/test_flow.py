"""Building flows: chains, fan-out/in, map, branches, loops, explicit form, pictures."""

from __future__ import annotations

import sys

import pytest

from aetherflow import Flow, FlowDefinitionError, LoopLimitError, NodeError, UsageError, node


@node
def inc(x: int) -> int:
    return x + 1


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


@node
def split(n: int) -> list[int]:
    return list(range(n))


@node
def square(i: int) -> int:
    return i * i


@node
def total(values: list[int]) -> int:
    return sum(values)


def test_map_runs_once_per_item_in_order(worker) -> None:
    assert split.map(square).run({"n": 6}, worker=worker) == [0, 1, 4, 9, 16, 25]
    assert split.map(square).fan_in(total).run({"n": 4}, worker=worker) == 14


def test_map_over_empty_list_gives_empty_list(worker) -> None:
    assert split.map(square).run({"n": 0}, worker=worker) == []


def test_map_over_non_iterable_fails_clearly(worker) -> None:
    @node
    def scalar() -> int:
        return 3

    with pytest.raises(NodeError, match="not iterable"):
        scalar.map(square).run(worker=worker)


@node
def is_even(x: int) -> bool:
    return x % 2 == 0


@node
def even(x: int) -> str:
    return f"{x} is even"


@node
def odd(x: int) -> str:
    return f"{x} is odd"


def test_branch_takes_one_path_and_skips_the_other(worker) -> None:
    flow = is_even.branch_on({True: even, False: odd})
    assert flow.run({"x": 2}, worker=worker) == {"even": "2 is even"}
    job = worker.submit(flow, {"x": 3})
    assert job.result() == {"odd": "3 is odd"}
    assert job.node_statuses["even"] == "skipped"


def test_branch_value_matching_no_key_fails_naming_value_and_keys(worker) -> None:
    @node
    def pick(x: int) -> int:
        return x

    flow = pick.branch_on({1: even, 2: odd})
    with pytest.raises(NodeError, match=r"returned 7, which matches no branch \(keys: 1, 2\)"):
        flow.run({"x": 7}, worker=worker)


def test_branch_default_catches_other_values(worker) -> None:
    @node
    def pick(x: int) -> int:
        return x

    @node
    def other(x: int) -> str:
        return "other"

    assert pick.branch_on({1: even}, default=other).run({"x": 9}, worker=worker) == {"other": "other"}


def test_node_after_skipped_node_is_skipped_unless_default(worker) -> None:
    @node
    def after(odd: str) -> str:
        return odd.upper()

    @node
    def tolerant(odd: str = "none") -> str:
        return odd

    flow = is_even.branch_on({True: even, False: odd}).then(after)
    job = worker.submit(flow, {"x": 2})
    job.result()
    assert job.node_statuses["after"] == "skipped"
    flow2 = is_even.branch_on({True: even, False: odd}).fan_in(tolerant)
    assert flow2.run({"x": 2}, worker=worker) == "none"


def test_loop_through_branch_repeats_until_exit(worker) -> None:
    @node
    def step(job_state) -> int:
        return job_state.apply("n", lambda n: n + 1, default=0)

    @node
    def more(step: int) -> bool:
        return step < 5

    @node
    def done(step: int) -> int:
        return step

    flow = step.then(more).branch_on({True: step, False: done})
    job = worker.submit(flow)
    assert job.result() == 5
    assert job.state == {"n": 5}


def test_loop_limit_stops_endless_loops(worker) -> None:
    @node(max_iterations=20)
    def spin() -> bool:
        return True

    @node
    def never() -> None:
        return None

    flow = spin.branch_on({True: spin, False: never})
    with pytest.raises(LoopLimitError, match="max_iterations=20"):
        flow.run(worker=worker)


def test_explicit_form_builds_a_loop(worker) -> None:
    @node
    def tick(job_state) -> int:
        return job_state.apply("t", lambda t: t + 1, default=0)

    @node
    def finish(job_state) -> int:
        return job_state["t"]

    @node
    def check(tick: int) -> bool:
        return tick >= 3

    flow = Flow("ticker")
    flow.add(tick, check, finish)
    flow.connect(tick, check)
    flow.branch(check, {False: tick, True: finish})
    assert flow.run(worker=worker) == 3


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


def test_mermaid_and_dot_show_nodes_and_branch_labels() -> None:
    flow = is_even.branch_on({True: even, False: odd})
    mermaid = flow.to_mermaid()
    assert mermaid.startswith("flowchart TD")
    assert 'is_even -->|"True"| even' in mermaid
    dot = flow.to_dot()
    assert '"is_even" -> "odd" [label="False"];' in dot


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


# -- misspelt and ambiguous parameter names (issue 14, item 6) --------------------------------


@node
def load(path: str) -> list[str]:
    return path.split(",")


@node
def clean(load: list[str]) -> list[str]:
    return [s.strip() for s in load if s.strip()]


def test_a_misspelt_node_name_is_refused_instead_of_piped() -> None:
    """report(clean, laod): 'laod' must not silently receive clean's output."""

    @node
    def report(clean: list[str], laod: list[str]) -> str:
        return f"kept {len(clean)} of {len(laod)}"

    with pytest.raises(FlowDefinitionError) as info:
        load.then(clean).then(report).validate()
    message = str(info.value)
    assert "did you mean the node 'load'?" in message
    assert "parameter 'laod' of node 'report'" in message
    assert "node 'clean'" in message  # where its value would have come from


def test_a_misspelt_node_name_is_refused_instead_of_taken_as_a_job_input() -> None:
    @node
    def report(clean: list[str], cleen: int = 0) -> int:
        return len(clean) + cleen

    with pytest.raises(FlowDefinitionError, match=r"parameter 'cleen' .* job input .*did you mean the node 'clean'\?"):
        Flow([load, clean, report]).validate()


def test_a_misspelt_provider_name_is_refused(worker) -> None:
    from aetherflow import BaseFlowContext, providers

    class Ctx(BaseFlowContext):
        database = providers.Object("db")

    @node
    def query(databse: str) -> str:
        return databse

    with pytest.raises(FlowDefinitionError, match=r"did you mean the provider 'database'\?"):
        query.validate(Ctx)
    query.validate()  # without that provider, 'databse' is an ordinary job input


def test_the_typo_check_runs_before_any_job_starts(worker) -> None:
    ran = []

    @node
    def report(clean: list[str], laod: list[str]) -> str:
        ran.append(1)
        return "?"

    with pytest.raises(FlowDefinitionError):
        worker.submit(load.then(clean).then(report), {"path": "a,b"})
    assert ran == []


def test_short_names_far_from_every_node_are_not_typos(worker) -> None:
    """x is one letter from a and b, but shares nothing with them: it is a plain input."""

    @node
    def a(x: int) -> int:
        return x + 1

    @node
    def b(a: int, y: int = 10) -> int:
        return a * y

    @node
    def c(b: int, n: int = 1) -> int:
        return b + n

    assert a.then(b).then(c).run({"x": 1}, worker=worker) == 21
    assert a.then(b).then(c).inputs == {"x": True, "y": False, "n": False}


def test_short_names_two_edits_from_a_provider_are_plain_inputs(worker) -> None:
    """Two edits is a typo only for long names: 'date' is no misspelt 'state'."""
    from aetherflow import BaseFlowContext, providers

    class Ctx(BaseFlowContext):
        state = providers.Object({"open": True})
        counter = providers.Object(10)

    @node
    def stamp(state: dict, counter: int, date: str, count: int = 1) -> str:
        return f"{date}: {counter + count} {state['open']}"

    assert stamp.run({"date": "today"}, context=Ctx, worker=worker) == "today: 11 True"


def test_a_parameter_named_like_its_own_node_is_not_a_typo(worker) -> None:
    @node
    def paths(path: str) -> list[str]:
        return path.split(",")

    assert paths.run({"path": "a,b"}, worker=worker) == ["a", "b"]


def test_a_correctly_spelt_name_next_to_a_similar_one_is_fine(worker) -> None:
    """'load' is a node: reading it is no typo even though 'loads' is close to nothing else."""

    @node
    def report(clean: list[str], load: list[str]) -> str:
        return f"kept {len(clean)} of {len(load)}"

    assert load.then(clean).then(report).run({"path": "a,,b"}, worker=worker) == "kept 2 of 3"


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


def test_pictures_escape_quotes_and_survive_unprintable_branch_values() -> None:
    @node
    def pick(x: int) -> int:
        return x

    flow = pick.branch_on({'say "hi"': even, 10**5000: odd}).named('the "flow"')
    dot = flow.to_dot()
    assert dot.startswith('digraph "the \\"flow\\"" {')
    assert '"pick" -> "even" [label="\'say \\"hi\\"\'"];' in dot
    assert "#quot;hi#quot;" in flow.to_mermaid()
    assert "<int object>" in flow.to_mermaid()


def test_a_misspelt_built_in_is_explained_when_the_job_starts(worker) -> None:
    from aetherflow import MissingInputError

    @node
    def count(job_sate) -> int:
        return 1

    with pytest.raises(MissingInputError, match="did you mean the built-in 'job_state'"):
        count.run(worker=worker)
