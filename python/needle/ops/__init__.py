"""Needle's differentiable ops on Tensors (``needle.ops``), with the names of the course's API.

Every op is a function of Needle's C++ core, ``needle._core.ops`` (bound once in ``python/src/bind_ops.cpp``
with its docstring; the functions of one operand come from ``include/needle/core/unary_ops.def``), and
this module re-exports them all. The few functions defined here only adapt argument conventions (course
aliases, TensorTuple results, sequences of axes). Scalar operands accept Python numbers. Ops marked "no
grad" return tensors that never require a gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

from needle._core import Tensor
from needle._core import ops as _core_ops
from needle._core.ops import *  # noqa: F403 (every op of the core, under its own name)
from needle.autograd import TensorTuple

# ---- shapes ---------------------------------------------------------------------------------------


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """PyTorch's name for concat."""
    return _core_ops.concat(list(tensors), dim)


def split(a: Tensor, axis: int = 0) -> TensorTuple:  # type: ignore[no-redef]  # wraps _core.ops.split
    """Needle's split: the slices of ``a`` along ``axis``, with that axis removed, as a TensorTuple."""
    return TensorTuple(_core_ops.split(a, axis))


# ---- tuples ---------------------------------------------------------------------------------------


def make_tuple(*tensors: Tensor) -> TensorTuple:
    """A TensorTuple of the given tensors."""
    return TensorTuple(tensors)


def tuple_get_item(value: TensorTuple, index: int) -> Tensor:
    """Element ``index`` of a TensorTuple."""
    return value[index]


# ---- indexing -------------------------------------------------------------------------------------


def take_along_axis(a: Tensor, indices: Tensor, axis: int) -> Tensor:
    """NumPy's name and argument order for gather."""
    return _core_ops.gather(a, axis, indices)


# ---- neural-network functions ---------------------------------------------------------------------


def log_softmax(a: Tensor, dim: int = -1) -> Tensor:
    """PyTorch's name for logsoftmax."""
    return _core_ops.logsoftmax(a, dim)


#: Every op of the core plus the adapters above (``from needle.ops import *`` and ``needle.*`` export these).
__all__ = sorted(
    {name for name in dir(_core_ops) if not name.startswith("_")}
    | {"cat", "log_softmax", "make_tuple", "take_along_axis", "tuple_get_item"}
)
