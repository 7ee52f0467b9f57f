"""``aetherflow graph``: a flow's graph as Mermaid or Graphviz DOT."""

from __future__ import annotations

import click

from .options import UsageError, argument
from .running import check_context


@click.command()
@argument("target", help="path/to/file.py:flow or package.module:flow")
@click.option("--format", default="mermaid", help="mermaid or dot")
@click.option(
    "--context",
    help="Also check the flow against this context (module:Class, path/to/file.py:Class or a .toml profile).",
)
def graph(target: str, format: str, context: str | None) -> None:
    """Print a flow's graph as Mermaid or Graphviz DOT."""
    from ..targets import load_context_ref, load_target

    flow = load_target(target)
    if format not in ("mermaid", "dot"):
        raise UsageError(f"--format must be 'mermaid' or 'dot', found {format!r}.")
    flow.graph  # noqa: B018 - the shape's own checks (cycles, maps); which context fills a parameter is not drawn
    if context is not None:
        check_context(flow, load_context_ref(context), {}, action="was checked")
    print(flow.to_mermaid() if format == "mermaid" else flow.to_dot(), end="")
