"""Drawing a flow: Mermaid and DOT text from its topology (viz.py)."""

from __future__ import annotations

from aetherflow import node
from shapes import even, is_even, odd


def test_mermaid_and_dot_show_nodes_and_branch_labels() -> None:
    flow = is_even.branch_on({True: even, False: odd})
    mermaid = flow.to_mermaid()
    assert mermaid.startswith("flowchart TD")
    assert 'is_even -->|"True"| even' in mermaid
    dot = flow.to_dot()
    assert '"is_even" -> "odd" [label="False"];' in dot


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
