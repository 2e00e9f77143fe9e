"""needle.viz.graph: the autograd graph as DOT that Graphviz parses, naming every op of a known graph."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import needle as ndl

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")


def known_graph() -> tuple[ndl.Tensor, list[str]]:
    x = ndl.Tensor(np.ones((4, 3), dtype=np.float32), requires_grad=False)
    w = ndl.Tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
    b = ndl.Tensor(np.ones((2,), dtype=np.float32), requires_grad=True)
    h = x @ w + b
    loss = ndl.ops.summation(ndl.ops.relu(h) * h)
    return loss, ["matmul", "add", "relu", "multiply", "summation"]


def test_dot_names_every_op_leaf_and_edge() -> None:
    loss, ops = known_graph()
    dot = ndl.viz.graph(loss)
    assert dot.startswith("digraph needle {")
    labels = re.findall(r'label="([^"]*)"', dot)
    node_ops = [label.split("\\n")[0] for label in labels if "\\n" in label]
    assert sorted(op for op in node_ops if op != "leaf") == sorted(ops)
    assert node_ops.count("leaf") == 3
    assert dot.count("gradients accumulate in .grad") == 2
    assert dot.count("gradients of 2 uses summed here") == 1
    assert len(re.findall(r"t\d+ -> t\d+", dot)) == 8
    assert f"{Path(__file__).name}:" not in dot  # sites are recorded only while a tool is on


@needs_dot
def test_graphviz_parses_the_dot_and_renders_svg_and_png(tmp_path: Path) -> None:
    loss, ops = known_graph()
    result = subprocess.run(["dot", "-Tsvg"], input=ndl.viz.graph(loss), text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    for op in ops:
        assert f">{op}</text>" in result.stdout, op
    svg = tmp_path / "graph.svg"
    ndl.viz.graph(loss, svg, format="svg")
    assert "<svg" in svg.read_text()
    png = tmp_path / "graph.png"
    ndl.viz.graph(loss, png, format="png")
    assert png.read_bytes().startswith(b"\x89PNG")


def test_dot_file_and_call_sites_under_a_trace(tmp_path: Path) -> None:
    w = ndl.Tensor(np.ones((2,), dtype=np.float32), requires_grad=True)
    with ndl.trace():
        y = ndl.ops.exp(w)
    path = tmp_path / "g.dot"
    text = ndl.viz.graph(y, path)
    assert path.read_text() == text
    assert f"{Path(__file__).name}:" in text


def test_bad_arguments() -> None:
    loss, _ = known_graph()
    with pytest.raises(ValueError, match="format"):
        ndl.viz.graph(loss, format="gif")
    with pytest.raises(ValueError, match="needs a path"):
        ndl.viz.graph(loss, format="svg")
