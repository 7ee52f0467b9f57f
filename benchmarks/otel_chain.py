"""Tracing's cost per node: one process per OpenTelemetry set-up (a global provider is set once).

``python benchmarks/otel_chain.py MODE`` prints ``traced untraced`` seconds per node of a
200-node chain: the untraced worker is made before the provider is set, so it stays off
(see `aetherflow.tracing.telemetry_for`), and the two are timed in alternating rounds.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aetherflow import Worker, node

sys.path.insert(0, str(Path(__file__).parent))
from compare import paired


def set_provider(mode: str) -> None:
    from opentelemetry import trace

    if mode == "noop":
        trace.set_tracer_provider(trace.NoOpTracerProvider())
        return
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

    provider = TracerProvider(sampler=ALWAYS_OFF if mode == "sampled_out" else ALWAYS_ON)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if mode == "recorded":
        # Keep the exporter's memory flat over the rounds: spans are dropped once counted.
        real_export = exporter.export
        exporter.export = lambda spans: (real_export(spans), exporter.clear())[0]  # type: ignore[method-assign]


@node
def inc(x: int) -> int:
    return x + 1


def main(mode: str, n: int = 200) -> None:
    chain = inc.repeat(n)
    with Worker(threads=4) as untraced:
        set_provider(mode)
        with Worker(threads=4) as traced:
            for w in (untraced, traced):
                chain.run({"x": 0}, worker=w)
            t_traced, t_untraced = paired(
                lambda: chain.run({"x": 0}, worker=traced), lambda: chain.run({"x": 0}, worker=untraced), 5, 7
            )
    print(t_traced / n, t_untraced / n)


if __name__ == "__main__":
    main(sys.argv[1])
