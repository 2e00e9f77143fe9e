"""Ops of ``needle.ops`` that adapt argument conventions around the C++ ops (course and PyTorch names, TensorTuple
results, sequences of axes): each calls the C++ op that does the work, so no math lives here."""

from __future__ import annotations

from collections.abc import Sequence

from needle._core import Tensor
from needle._core import ops as _core_ops
from needle.autograd import TensorTuple

Scalar = bool | int | float

# ---- shapes ---------------------------------------------------------------------------------------


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """PyTorch's name for concat."""
    return _core_ops.concat(list(tensors), dim)


def split(a: Tensor, axis: int = 0) -> TensorTuple:
    """Needle's split: the slices of ``a`` along ``axis``, with that axis removed, as a TensorTuple."""
    return TensorTuple(_core_ops.split(a, axis))


# ---- tuples ---------------------------------------------------------------------------------------


def make_tuple(*tensors: Tensor) -> TensorTuple:
    """A TensorTuple of the given tensors."""
    return TensorTuple(tensors)


def tuple_get_item(value: TensorTuple, index: int) -> Tensor:
    """Element ``index`` of a TensorTuple."""
    return value[index]


def fused_add_scalars(x: Tensor, c0: Scalar, c1: Scalar) -> TensorTuple:
    """The course's example of a tuple-valued op: (x + c0, x + c1)."""
    return TensorTuple((_core_ops.add_scalar(x, c0), _core_ops.add_scalar(x, c1)))


# ---- indexing -------------------------------------------------------------------------------------


def take_along_axis(a: Tensor, indices: Tensor, axis: int) -> Tensor:
    """NumPy's name and argument order for gather."""
    return _core_ops.gather(a, axis, indices)


# ---- neural-network functions ---------------------------------------------------------------------


def log_softmax(a: Tensor, dim: int = -1) -> Tensor:
    """PyTorch's name for logsoftmax."""
    return _core_ops.logsoftmax(a, dim)


__all__ = [
    "cat",
    "fused_add_scalars",
    "log_softmax",
    "make_tuple",
    "split",
    "take_along_axis",
    "tuple_get_item",
]
