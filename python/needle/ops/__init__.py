"""Needle's differentiable ops on Tensors (``needle.ops``), with the names of the course's API.

Every function here is a thin wrapper over an op of Needle's C++ core (``needle._core.Ops``): values are
computed there, and the gradient of each op is written there with the same ops. Axes accept an int or a
sequence of ints; scalar operands accept Python numbers. Ops marked "no grad" return tensors that never
require a gradient.
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


def add(a: Tensor, b: Tensor) -> Tensor:
    """a + b (broadcasting)."""
    return _Ops.add(a, b)


def add_scalar(a: Tensor, scalar: Scalar) -> Tensor:
    """a + scalar."""
    return _Ops.add_scalar(a, scalar)


def sub(a: Tensor, b: Tensor) -> Tensor:
    """a - b (broadcasting)."""
    return _Ops.sub(a, b)


def multiply(a: Tensor, b: Tensor) -> Tensor:
    """a * b (broadcasting)."""
    return _Ops.multiply(a, b)


def mul_scalar(a: Tensor, scalar: Scalar) -> Tensor:
    """a * scalar."""
    return _Ops.mul_scalar(a, scalar)


def divide(a: Tensor, b: Tensor) -> Tensor:
    """a / b (broadcasting)."""
    return _Ops.divide(a, b)


def divide_scalar(a: Tensor, scalar: Scalar) -> Tensor:
    """a / scalar."""
    return _Ops.divide_scalar(a, scalar)


def power(a: Tensor, b: Tensor) -> Tensor:
    """a ** b element-wise (broadcasting; a gradient for both operands)."""
    return _Ops.power(a, b)


def power_scalar(a: Tensor, scalar: Scalar) -> Tensor:
    """a ** scalar."""
    return _Ops.power_scalar(a, scalar)


def rpower_scalar(scalar: Scalar, a: Tensor) -> Tensor:
    """scalar ** a."""
    return _Ops.rpower_scalar(scalar, a)


def rdivide_scalar(scalar: Scalar, a: Tensor) -> Tensor:
    """scalar / a."""
    return _Ops.rdivide_scalar(scalar, a)


def negate(a: Tensor) -> Tensor:
    """-a."""
    return _Ops.negate(a)


def exp(a: Tensor) -> Tensor:
    """e ** a."""
    return _Ops.exp(a)


def log(a: Tensor) -> Tensor:
    """Natural logarithm (integer tensors are computed in floating point)."""
    return _Ops.log(a)


def sqrt(a: Tensor) -> Tensor:
    """Square root."""
    return _Ops.sqrt(a)


def abs(a: Tensor) -> Tensor:
    """|a|."""
    return _Ops.abs(a)


def relu(a: Tensor) -> Tensor:
    """max(a, 0)."""
    return _Ops.relu(a)


def leaky_relu(a: Tensor, negative_slope: float = 0.01) -> Tensor:
    """a where a > 0, else negative_slope * a."""
    return _Ops.leaky_relu(a, negative_slope)


def tanh(a: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return _Ops.tanh(a)


def sigmoid(a: Tensor) -> Tensor:
    """1 / (1 + exp(-a))."""
    return _Ops.sigmoid(a)


def gelu(a: Tensor) -> Tensor:
    """x * Phi(x), exact (with the error function)."""
    return _Ops.gelu(a)


def maximum(a: Tensor | Scalar, b: Tensor | Scalar) -> Tensor:
    """Element-wise maximum (broadcasting; ties share the gradient). One operand may be a number."""
    return _Ops.maximum(a, b)  # type: ignore[arg-type]


def minimum(a: Tensor | Scalar, b: Tensor | Scalar) -> Tensor:
    """Element-wise minimum (broadcasting; ties share the gradient). One operand may be a number."""
    return _Ops.minimum(a, b)  # type: ignore[arg-type]


def where(cond: Tensor, a: Tensor | Scalar, b: Tensor | Scalar) -> Tensor:
    """cond ? a : b element-wise (broadcasting all three; no gradient for cond). a or b may be a number."""
    return _Ops.where(cond, a, b)  # type: ignore[arg-type]


def astype(a: Tensor, dtype: str) -> Tensor:
    """a converted to ``dtype`` (the gradient is converted back)."""
    return _Ops.astype(a, dtype)


# ---- comparisons (no grad) ------------------------------------------------------------------------


def eq(a: Tensor | Scalar, b: Tensor | Scalar) -> Tensor:
    """a == b (bool; no grad)."""
    return _Ops.eq(a, b)  # type: ignore[arg-type]


def ne(a: Tensor | Scalar, b: Tensor | Scalar) -> Tensor:
    """a != b (bool; no grad)."""
    return _Ops.ne(a, b)  # type: ignore[arg-type]


def lt(a: Tensor | Scalar, b: Tensor | Scalar) -> Tensor:
    """a < b (bool; no grad)."""
    return _Ops.lt(a, b)  # type: ignore[arg-type]


def le(a: Tensor | Scalar, b: Tensor | Scalar) -> Tensor:
    """a <= b (bool; no grad)."""
    return _Ops.le(a, b)  # type: ignore[arg-type]


def gt(a: Tensor | Scalar, b: Tensor | Scalar) -> Tensor:
    """a > b (bool; no grad)."""
    return _Ops.gt(a, b)  # type: ignore[arg-type]


def ge(a: Tensor | Scalar, b: Tensor | Scalar) -> Tensor:
    """a >= b (bool; no grad)."""
    return _Ops.ge(a, b)  # type: ignore[arg-type]


# ---- shapes ---------------------------------------------------------------------------------------


def reshape(a: Tensor, shape: Sequence[int]) -> Tensor:
    """The same values in a new shape (one entry may be -1)."""
    return _Ops.reshape(a, shape)


def broadcast_to(a: Tensor, shape: Sequence[int]) -> Tensor:
    """a broadcast to ``shape`` (NumPy rules); the gradient is summed back to a's shape."""
    return _Ops.broadcast_to(a, shape)


def sum_to_shape(grad: Tensor, shape: Sequence[int]) -> Tensor:
    """grad summed over the axes that broadcasting added or stretched, so that it takes ``shape``."""
    return _Ops.sum_to_shape(grad, shape)


def transpose(a: Tensor, axes: Sequence[int] | None = None) -> Tensor:
    """Needle's transpose: swaps the last two axes, or the two axes given."""
    return _Ops.transpose(a, axes)


def permute(a: Tensor, axes: Sequence[int]) -> Tensor:
    """The axes reordered."""
    return _Ops.permute(a, axes)


def squeeze(a: Tensor, axes: Axes = None) -> Tensor:
    """The given size-1 axes removed (None: every size-1 axis)."""
    return _Ops.squeeze(a, axes)


def unsqueeze(a: Tensor, axis: int) -> Tensor:
    """A size-1 axis inserted at ``axis``."""
    return _Ops.unsqueeze(a, axis)


def flip(a: Tensor, axes: Axes = None) -> Tensor:
    """The order of elements reversed along ``axes`` (None: every axis)."""
    return _Ops.flip(a, axes)


def pad(a: Tensor, pad_width: Sequence[tuple[int, int]], value: float = 0.0) -> Tensor:
    """a padded by pad_width[d] = (before, after) cells of ``value`` on each axis d."""
    return _Ops.pad(a, pad_width, value)


def getitem(a: Tensor, key: IndexKey) -> Tensor:
    """a[key] with basic indexing (ints, slices with steps, None, ...); the gradient flows back."""
    return _Ops.getitem(a, key)


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


def summation(a: Tensor, axes: Axes = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axes`` (None: every axis)."""
    return _Ops.summation(a, axes, keepdims)


def mean(a: Tensor, axes: Axes = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axes`` (None: every axis)."""
    return _Ops.mean(a, axes, keepdims)


def max(a: Tensor, axes: Axes = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axes`` (None: every axis); ties share the gradient."""
    return _Ops.max(a, axes, keepdims)


def min(a: Tensor, axes: Axes = None, keepdims: bool = False) -> Tensor:
    """Minimum over ``axes`` (None: every axis); ties share the gradient."""
    return _Ops.min(a, axes, keepdims)


def logsumexp(a: Tensor, axes: Axes = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(a))) over ``axes``, computed stably (None: every axis)."""
    return _Ops.logsumexp(a, axes, keepdims)


def argmax(a: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index (int64) of the first maximum along ``axis`` (None: of the flattened tensor); no grad."""
    return _Ops.argmax(a, axis, keepdims)


# ---- linear algebra -------------------------------------------------------------------------------


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product (batched, broadcasting batch dimensions; 1-d operands as in NumPy)."""
    return _Ops.matmul(a, b)


# ---- indexing -------------------------------------------------------------------------------------


def gather(a: Tensor, axis: int, index: Tensor) -> Tensor:
    """Values of ``a`` at integer ``index`` along ``axis`` (torch.gather); the gradient flows to ``a``."""
    return _Ops.gather(a, axis, index)


def take_along_axis(a: Tensor, indices: Tensor, axis: int) -> Tensor:
    """NumPy's name and argument order for gather."""
    return _Ops.gather(a, axis, indices)


def embedding(indices: Tensor, weight: Tensor) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``indices``: indices.shape + (dim,)."""
    return _Ops.embedding(indices, weight)


def one_hot(indices: Tensor, num_classes: int, dtype: str = "float32") -> Tensor:
    """One-hot rows for integer ``indices``: indices.shape + (num_classes,); no grad."""
    return _Ops.one_hot(indices, num_classes, dtype)


# ---- neural-network functions ---------------------------------------------------------------------


def logsoftmax(a: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(a)) along ``axis`` (Needle: the last axis), computed stably."""
    return _Ops.logsoftmax(a, axis)


def log_softmax(a: Tensor, dim: int = -1) -> Tensor:
    """PyTorch's name for logsoftmax."""
    return _Ops.logsoftmax(a, dim)


def softmax(a: Tensor, axis: int = -1) -> Tensor:
    """Softmax along ``axis``, computed stably."""
    return _Ops.softmax(a, axis)


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean over the batch of -log softmax(logits)[label]: logits (N, C), integer labels (N,)."""
    return _Ops.cross_entropy(logits, labels)


def mse_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean of squared differences."""
    return _Ops.mse_loss(prediction, target)


def dropout(a: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zeroes each element with probability p (Needle's generator, see manual_seed) and scales the rest by
    1 / (1 - p); the identity when not training."""
    return _Ops.dropout(a, p, training)


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalization over the last axis, then * weight + bias (each optional, shape (dim,))."""
    return _Ops.layer_norm(x, weight, bias, eps)


def batch_norm(
    x: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalization over every axis but 1 of x (N, C, ...): batch statistics in training (the running ones,
    if given, are updated in place), the running statistics otherwise."""
    return _Ops.batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps)


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    """softmax(q k^T / sqrt(d) [+ causal mask]) v over the last two axes of q (..., L, d), k (..., S, d),
    v (..., S, dv)."""
    return _Ops.scaled_dot_product_attention(q, k, v, causal)


def conv(a: Tensor, b: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    """Needle's conv: a (N, H, W, C_in), b (K, K, C_in, C_out), zero padding on H and W, ``stride``."""
    return _Ops.conv(a, b, stride, padding)


def max_pool2d(a: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> Tensor:
    """Maximum over K x K windows of a (N, C, H, W) moved by ``stride`` (default K), padding with -inf (at
    most K // 2 cells per side); ties share the gradient."""
    return _Ops.max_pool2d(a, kernel_size, stride, padding)


def avg_pool2d(a: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> Tensor:
    """Mean over K x K windows of a (N, C, H, W) moved by ``stride`` (default K); zero padding counts in the
    mean (PyTorch's count_include_pad)."""
    return _Ops.avg_pool2d(a, kernel_size, stride, padding)


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
