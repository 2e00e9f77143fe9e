"""Trace one training step of a small MLP: every op, backward node and kernel, down to the GEMM.

    python examples/python/trace_step.py                 # writes out/trace/
    python examples/python/trace_step.py --out DIR --batch 128 --hidden 256

Trains a few warm-up steps on random data shaped like Fashion-MNIST (the trace is about the step, not the
data), then records one step with ``needle.trace()`` and writes:

- ``step.json``: Chrome trace JSON (open it in https://ui.perfetto.dev or chrome://tracing),
- ``summary.txt``: time per op, backward node and kernel, with GFLOP/s and GB/s (also printed),
- ``graph.dot`` (and ``graph.svg`` when Graphviz's ``dot`` is installed): the autograd graph of the step.

docs/tracing.md walks through its output.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import numpy as np

import needle as ndl
from needle import nn


def print_tree(events: list[dict[str, Any]], root: dict[str, Any], indent: str = "") -> None:
    """One event and everything nested in it, with durations (and GFLOP/s for kernels that have FLOPs)."""
    rate = f", {root['flops'] / root['dur'] / 1e3:.1f} GFLOP/s" if root.get("flops") else ""
    shapes = " x ".join(str(tuple(s)) for s in root["inputs"])
    print(f"{indent}{root['cat']} {root['name']} {shapes} {root['dur']:.1f} us{rate}")
    for child in events:
        if child["parent"] == root["id"]:
            print_tree(events, child, indent + "  ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/trace"))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    ndl.manual_seed(0)
    rng = np.random.default_rng(0)
    images = ndl.Tensor(rng.standard_normal((args.batch, 784)).astype(np.float32), requires_grad=False)
    labels = ndl.Tensor(rng.integers(0, 10, args.batch), dtype="int64")
    model = nn.Sequential(nn.Linear(784, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10))
    loss_fn = nn.SoftmaxLoss()
    optimizer = ndl.optim.SGD(model.parameters(), lr=0.1)

    def step() -> ndl.Tensor:
        loss = loss_fn(model(images), labels)
        optimizer.reset_grad()
        loss.backward()
        optimizer.step()
        return loss

    for _ in range(args.warmup):
        step()

    with ndl.trace() as trace:
        loss = step()
    trace.save(args.out / "step.json")
    summary = trace.summary()
    (args.out / "summary.txt").write_text(summary)
    print(summary)

    # From loss.backward() down to the GEMM: the backward node of the first layer's x @ W + b and all it ran.
    events = trace.events
    first_linear = [e for e in events if e["cat"] == "backward" and e["name"] == "linear"][-1]
    print("backward node of the first Linear:")
    print_tree(events, first_linear, "  ")

    # backward() released the step's graph, so draw the graph of a fresh forward pass, under a trace so
    # that its ops carry the lines that created them.
    with ndl.trace():
        graph_loss = loss_fn(model(images), labels)
    ndl.viz.graph(graph_loss, args.out / "graph.dot")
    written = ["step.json", "summary.txt", "graph.dot"]
    if shutil.which("dot") is not None:
        ndl.viz.graph(graph_loss, args.out / "graph.svg", format="svg")
        written.append("graph.svg")
    print(f"loss {float(loss.numpy()):.4f}; wrote {', '.join(written)} to {args.out}")


if __name__ == "__main__":
    main()
