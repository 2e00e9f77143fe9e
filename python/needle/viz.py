"""Pictures of the autograd graph: ``needle.viz.graph(tensor)`` (Graphviz DOT, SVG or PNG)."""

from __future__ import annotations

import os
import shutil
import subprocess

from needle import _core
from needle.autograd import Tensor

__all__ = ["graph"]

_FORMATS = ("dot", "svg", "png")


def graph(tensor: Tensor, path: str | os.PathLike[str] | None = None, format: str = "dot") -> str:
    """The autograd graph behind ``tensor`` as Graphviz DOT: a box per op (name, output shape, dtype and the
    line that created it when known), an ellipse per leaf (requires_grad, where gradients accumulate),
    tensors used several times marked where their gradients are summed.

    Returns the DOT text. With ``path``, also writes the graph there: as DOT, or rendered to SVG/PNG by
    Graphviz's ``dot`` program (RuntimeError when it is not installed)."""
    if format not in _FORMATS:
        raise ValueError(f"graph: format must be one of {', '.join(_FORMATS)}, got {format!r}")
    dot = str(_core.graph_dot(tensor))
    if path is None:
        if format != "dot":
            raise ValueError(f"graph: format={format!r} needs a path to write to")
        return dot
    target = os.fspath(path)
    if format == "dot":
        with open(target, "w", encoding="utf-8") as file:
            file.write(dot)
        return dot
    program = shutil.which("dot")
    if program is None:
        raise RuntimeError(
            f"graph: rendering {format} needs Graphviz's `dot` program (Debian: apt-get install graphviz); "
            "format='dot' writes the DOT text without it"
        )
    result = subprocess.run([program, f"-T{format}", "-o", target], input=dot, text=True, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"graph: dot failed to render {format}: {result.stderr.strip()}")
    return dot
