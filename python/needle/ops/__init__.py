"""Needle's differentiable ops on Tensors (``needle.ops``), with the names of the course's API.

Almost every name here is an op of Needle's C++ core itself (``needle._core.Ops``, bound once in
``python/src/bind_ops.cpp`` with its docstring): values are computed there, and the gradient of each op is
written there with the same ops. The few functions defined here only adapt argument conventions (course
aliases, TensorTuple results). Axes accept an int or a sequence of ints; scalar operands accept Python
numbers. Ops marked "no grad" return tensors that never require a gradient.
"""

from __future__ import annotations

import types
from collections.abc import Sequence

from needle._core import Ops as _Ops
from needle._core import Tensor
from needle.autograd import TensorTuple

Scalar = bool | int | float
Axes = int | Sequence[int] | None
IndexKey = int | slice | types.EllipsisType | None | tuple[int | slice | types.EllipsisType | None, ...]

# ---- element-wise ---------------------------------------------------------------------------------
add = _Ops.add
add_scalar = _Ops.add_scalar
sub = _Ops.sub
multiply = _Ops.multiply
mul_scalar = _Ops.mul_scalar
divide = _Ops.divide
divide_scalar = _Ops.divide_scalar
power = _Ops.power
power_scalar = _Ops.power_scalar
rpower_scalar = _Ops.rpower_scalar
rdivide_scalar = _Ops.rdivide_scalar
negate = _Ops.negate
exp = _Ops.exp
log = _Ops.log
sqrt = _Ops.sqrt
abs = _Ops.abs
relu = _Ops.relu
leaky_relu = _Ops.leaky_relu
tanh = _Ops.tanh
sigmoid = _Ops.sigmoid
gelu = _Ops.gelu
maximum = _Ops.maximum
minimum = _Ops.minimum
where = _Ops.where
astype = _Ops.astype


# ---- comparisons (no grad) ------------------------------------------------------------------------
eq = _Ops.eq
ne = _Ops.ne
lt = _Ops.lt
le = _Ops.le
gt = _Ops.gt
ge = _Ops.ge


# ---- shapes ---------------------------------------------------------------------------------------
reshape = _Ops.reshape
broadcast_to = _Ops.broadcast_to
sum_to_shape = _Ops.sum_to_shape
transpose = _Ops.transpose
permute = _Ops.permute
squeeze = _Ops.squeeze
unsqueeze = _Ops.unsqueeze
flip = _Ops.flip
pad = _Ops.pad
getitem = _Ops.getitem


def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Joins tensors along an existing ``axis``."""
    return _Ops.concat(list(tensors), axis)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """PyTorch's name for concat."""
    return _Ops.concat(list(tensors), dim)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Joins tensors of one shape along a new ``axis``."""
    return _Ops.stack(list(tensors), axis)


def split(a: Tensor, axis: int = 0) -> TensorTuple:
    """Needle's split: the slices of ``a`` along ``axis``, with that axis removed, as a TensorTuple."""
    return TensorTuple(_Ops.split(a, axis))


def dilate(a: Tensor, axes: Axes, dilation: int) -> Tensor:
    """``dilation`` zeros inserted after each element along ``axes``."""
    return _Ops.dilate(a, _axes_list(axes), dilation)


def undilate(a: Tensor, axes: Axes, dilation: int) -> Tensor:
    """The inverse of dilate: every (dilation + 1)-th element along ``axes``."""
    return _Ops.undilate(a, _axes_list(axes), dilation)


def _axes_list(axes: Axes) -> list[int]:
    if axes is None:
        return []
    if isinstance(axes, int):
        return [axes]
    return list(axes)


# ---- tuples ---------------------------------------------------------------------------------------


def make_tuple(*tensors: Tensor) -> TensorTuple:
    """A TensorTuple of the given tensors."""
    return TensorTuple(tensors)


def tuple_get_item(value: TensorTuple, index: int) -> Tensor:
    """Element ``index`` of a TensorTuple."""
    return value[index]


# ---- reductions -----------------------------------------------------------------------------------
summation = _Ops.summation
mean = _Ops.mean
max = _Ops.max
min = _Ops.min
logsumexp = _Ops.logsumexp
argmax = _Ops.argmax


# ---- linear algebra -------------------------------------------------------------------------------
matmul = _Ops.matmul


# ---- indexing -------------------------------------------------------------------------------------
gather = _Ops.gather


def take_along_axis(a: Tensor, indices: Tensor, axis: int) -> Tensor:
    """NumPy's name and argument order for gather."""
    return _Ops.gather(a, axis, indices)


embedding = _Ops.embedding
one_hot = _Ops.one_hot


# ---- neural-network functions ---------------------------------------------------------------------
logsoftmax = _Ops.logsoftmax


def log_softmax(a: Tensor, dim: int = -1) -> Tensor:
    """PyTorch's name for logsoftmax."""
    return _Ops.logsoftmax(a, dim)


softmax = _Ops.softmax
cross_entropy = _Ops.cross_entropy
mse_loss = _Ops.mse_loss
dropout = _Ops.dropout
layer_norm = _Ops.layer_norm
batch_norm = _Ops.batch_norm
scaled_dot_product_attention = _Ops.scaled_dot_product_attention
conv = _Ops.conv
max_pool2d = _Ops.max_pool2d
avg_pool2d = _Ops.avg_pool2d


__all__ = [
    "abs",
    "add",
    "add_scalar",
    "argmax",
    "astype",
    "avg_pool2d",
    "batch_norm",
    "broadcast_to",
    "cat",
    "concat",
    "conv",
    "cross_entropy",
    "dilate",
    "divide",
    "divide_scalar",
    "dropout",
    "embedding",
    "eq",
    "exp",
    "flip",
    "gather",
    "ge",
    "gelu",
    "getitem",
    "gt",
    "layer_norm",
    "le",
    "leaky_relu",
    "log",
    "log_softmax",
    "logsoftmax",
    "logsumexp",
    "lt",
    "make_tuple",
    "matmul",
    "max",
    "max_pool2d",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mse_loss",
    "mul_scalar",
    "multiply",
    "ne",
    "negate",
    "one_hot",
    "pad",
    "permute",
    "power",
    "power_scalar",
    "rdivide_scalar",
    "relu",
    "reshape",
    "rpower_scalar",
    "scaled_dot_product_attention",
    "sigmoid",
    "softmax",
    "split",
    "sqrt",
    "squeeze",
    "stack",
    "sub",
    "sum_to_shape",
    "summation",
    "take_along_axis",
    "tanh",
    "transpose",
    "tuple_get_item",
    "undilate",
    "unsqueeze",
    "where",
]
