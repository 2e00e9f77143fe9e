"""Needle's differentiable ops on Tensors (``needle.ops``), with the names of the course's API.

Every op is a function of Needle's C++ core, ``needle._core.ops`` (bound once in ``python/src/bind_ops.cpp``
with its docstring; the functions of one operand come from ``include/needle/core/unary_ops.def``), and
this module re-exports them all. ``adapters`` holds the few functions that only adapt argument conventions
(course and PyTorch aliases, TensorTuple results, sequences of axes), and ``op_classes`` the course's op
classes (``ops.EWiseAdd()(a, b)``, ``ops.Summation(axes)(a)``), each a table entry naming the function it
calls. Scalar operands accept Python numbers. Ops marked "no grad" return tensors that never require a
gradient.
"""

from __future__ import annotations

from needle._core import ops as _core_ops
from needle._core.ops import *  # noqa: F403 (every op of the core, under its own name)
from needle.ops import adapters as _adapters
from needle.ops import op_classes as _op_classes
from needle.ops.adapters import *  # type: ignore[assignment]  # noqa: F403 (split returns a TensorTuple)
from needle.ops.op_classes import *  # noqa: F403 (the course's op classes)

#: Every op of the core, the adapters and the op classes (``from needle.ops import *`` and ``needle.*`` export
#: these).
__all__ = sorted(
    {name for name in dir(_core_ops) if not name.startswith("_")} | set(_adapters.__all__) | set(_op_classes.__all__)
)
