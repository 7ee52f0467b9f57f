"""Names that look like typos of a node, provider or built-in are refused with a suggestion (typos.py)."""

from __future__ import annotations

import pytest

from aetherflow import Flow, FlowDefinitionError, node


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


def test_a_misspelt_built_in_is_explained_when_the_job_starts(worker) -> None:
    from aetherflow import MissingInputError

    @node
    def count(job_sate) -> int:
        return 1

    with pytest.raises(MissingInputError, match="did you mean the built-in 'job_state'"):
        count.run(worker=worker)
