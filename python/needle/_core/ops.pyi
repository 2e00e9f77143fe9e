"""Needle's differentiable ops on Tensors (use them through needle.ops)."""

from collections.abc import Sequence
import types
from typing import overload

import needle._core


def add(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor:
    """a + b (broadcasting)."""

def add_scalar(a: needle._core.Tensor, scalar: bool | int | float) -> needle._core.Tensor:
    """a + scalar."""

def sub(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor:
    """a - b (broadcasting)."""

def multiply(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor:
    """a * b (broadcasting)."""

def mul_scalar(a: needle._core.Tensor, scalar: bool | int | float) -> needle._core.Tensor:
    """a * scalar."""

def divide(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor:
    """a / b (broadcasting)."""

def divide_scalar(a: needle._core.Tensor, scalar: bool | int | float) -> needle._core.Tensor:
    """a / scalar."""

def power(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor:
    """a ** b element-wise (broadcasting)."""

def power_scalar(a: needle._core.Tensor, scalar: bool | int | float) -> needle._core.Tensor:
    """a ** scalar."""

def rpower_scalar(scalar: bool | int | float, a: needle._core.Tensor) -> needle._core.Tensor:
    """scalar ** a."""

def rdivide_scalar(scalar: bool | int | float, a: needle._core.Tensor) -> needle._core.Tensor:
    """scalar / a."""

def leaky_relu(a: needle._core.Tensor, negative_slope: float = 0.01) -> needle._core.Tensor:
    """a where a > 0, else negative_slope * a."""

def astype(a: needle._core.Tensor, dtype: str) -> needle._core.Tensor:
    """a converted to `dtype` (the gradient is converted back)."""

def negate(a: needle._core.Tensor) -> needle._core.Tensor:
    """-a."""

def abs(a: needle._core.Tensor) -> needle._core.Tensor:
    """|a|."""

def exp(a: needle._core.Tensor) -> needle._core.Tensor:
    """e ** a."""

def log(a: needle._core.Tensor) -> needle._core.Tensor:
    """Natural logarithm."""

def sqrt(a: needle._core.Tensor) -> needle._core.Tensor:
    """Square root."""

def tanh(a: needle._core.Tensor) -> needle._core.Tensor:
    """Hyperbolic tangent."""

def sigmoid(a: needle._core.Tensor) -> needle._core.Tensor:
    """1 / (1 + exp(-a))."""

def relu(a: needle._core.Tensor) -> needle._core.Tensor:
    """max(a, 0) (NaN stays NaN)."""

def erf(a: needle._core.Tensor) -> needle._core.Tensor:
    """
    The error function, 2 / sqrt(pi) * integral of exp(-t ** 2) from 0 to a.
    """

def gelu(a: needle._core.Tensor) -> needle._core.Tensor:
    """a * Phi(a), Phi the standard normal CDF (exact GELU)."""

def gelu_grad(a: needle._core.Tensor) -> needle._core.Tensor:
    """
    The derivative of gelu: Phi(a) + a * phi(a), phi the standard normal density.
    """

def silu(a: needle._core.Tensor) -> needle._core.Tensor:
    """a * sigmoid(a) (SiLU, also called swish)."""

@overload
def maximum(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor: ...

@overload
def maximum(a: needle._core.Tensor, b: bool | int | float) -> needle._core.Tensor: ...

@overload
def maximum(a: bool | int | float, b: needle._core.Tensor) -> needle._core.Tensor:
    """Element-wise maximum (broadcasting; ties share the gradient)."""

@overload
def minimum(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor: ...

@overload
def minimum(a: needle._core.Tensor, b: bool | int | float) -> needle._core.Tensor: ...

@overload
def minimum(a: bool | int | float, b: needle._core.Tensor) -> needle._core.Tensor:
    """Element-wise minimum (broadcasting; ties share the gradient)."""

@overload
def eq(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor: ...

@overload
def eq(a: needle._core.Tensor, b: bool | int | float) -> needle._core.Tensor: ...

@overload
def eq(a: bool | int | float, b: needle._core.Tensor) -> needle._core.Tensor:
    """a == b (bool; no gradient)."""

@overload
def ne(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor: ...

@overload
def ne(a: needle._core.Tensor, b: bool | int | float) -> needle._core.Tensor: ...

@overload
def ne(a: bool | int | float, b: needle._core.Tensor) -> needle._core.Tensor:
    """a != b (bool; no gradient)."""

@overload
def lt(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor: ...

@overload
def lt(a: needle._core.Tensor, b: bool | int | float) -> needle._core.Tensor: ...

@overload
def lt(a: bool | int | float, b: needle._core.Tensor) -> needle._core.Tensor:
    """a < b (bool; no gradient)."""

@overload
def le(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor: ...

@overload
def le(a: needle._core.Tensor, b: bool | int | float) -> needle._core.Tensor: ...

@overload
def le(a: bool | int | float, b: needle._core.Tensor) -> needle._core.Tensor:
    """a <= b (bool; no gradient)."""

@overload
def gt(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor: ...

@overload
def gt(a: needle._core.Tensor, b: bool | int | float) -> needle._core.Tensor: ...

@overload
def gt(a: bool | int | float, b: needle._core.Tensor) -> needle._core.Tensor:
    """a > b (bool; no gradient)."""

@overload
def ge(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor: ...

@overload
def ge(a: needle._core.Tensor, b: bool | int | float) -> needle._core.Tensor: ...

@overload
def ge(a: bool | int | float, b: needle._core.Tensor) -> needle._core.Tensor:
    """a >= b (bool; no gradient)."""

@overload
def where(cond: needle._core.Tensor, a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor: ...

@overload
def where(cond: needle._core.Tensor, a: needle._core.Tensor, b: bool | int | float) -> needle._core.Tensor: ...

@overload
def where(cond: needle._core.Tensor, a: bool | int | float, b: needle._core.Tensor) -> needle._core.Tensor:
    """
    cond ? a : b element-wise (broadcasting all three; no gradient for cond).
    """

def reshape(a: needle._core.Tensor, shape: Sequence[int]) -> needle._core.Tensor:
    """The same values in a new shape (one entry may be -1)."""

def broadcast_to(a: needle._core.Tensor, shape: Sequence[int]) -> needle._core.Tensor:
    """a broadcast to `shape` (NumPy rules); the gradient is summed back."""

def sum_to_shape(grad: needle._core.Tensor, shape: Sequence[int]) -> needle._core.Tensor:
    """
    grad summed over the axes that broadcasting added or stretched, so that it takes `shape`.
    """

def transpose(a: needle._core.Tensor, axes: Sequence[int] | None = None) -> needle._core.Tensor:
    """Needle's transpose: swaps the last two axes, or the two axes given."""

def permute(a: needle._core.Tensor, axes: Sequence[int]) -> needle._core.Tensor:
    """The axes reordered."""

def squeeze(a: needle._core.Tensor, axes: int | Sequence[int] | None = None) -> needle._core.Tensor:
    """The given size-1 axes removed (None: every size-1 axis)."""

def unsqueeze(a: needle._core.Tensor, axis: int) -> needle._core.Tensor:
    """A size-1 axis inserted at `axis`."""

def matmul(a: needle._core.Tensor, b: needle._core.Tensor) -> needle._core.Tensor:
    """
    Matrix product (batched, broadcasting batch dimensions; 1-d operands as in NumPy).
    """

def linear(x: needle._core.Tensor, weight: needle._core.Tensor, bias: needle._core.Tensor | None = None) -> needle._core.Tensor:
    """
    x (..., in) @ weight (in, out) + bias (shape (out,) or (1, out); optional), as one node that keeps only x and weight for backward.
    """

def flip(a: needle._core.Tensor, axes: int | Sequence[int] | None = None) -> needle._core.Tensor:
    """The order of elements reversed along `axes` (None: every axis)."""

def pad(a: needle._core.Tensor, pad_width: Sequence[tuple[int, int]], value: float = 0.0) -> needle._core.Tensor:
    """
    a padded by pad_width[d] = (before, after) cells of `value` on each axis d.
    """

def getitem(a: needle._core.Tensor, key: int | slice | None | types.EllipsisType | tuple[int | slice | None | types.EllipsisType, ...]) -> needle._core.Tensor:
    """
    a[key] with basic indexing; the gradient flows back into the indexed elements.
    """

def concat(tensors: Sequence[needle._core.Tensor], axis: int = 0) -> needle._core.Tensor:
    """Joins a sequence of tensors along an existing `axis`."""

def stack(tensors: Sequence[needle._core.Tensor], axis: int = 0) -> needle._core.Tensor:
    """Joins a sequence of tensors of one shape along a new `axis`."""

def split(a: needle._core.Tensor, axis: int = 0) -> list[needle._core.Tensor]:
    """Needle's split: the slices along `axis`, with that axis removed."""

def dilate(a: needle._core.Tensor, axes: int | Sequence[int] | None, dilation: int) -> needle._core.Tensor:
    """
    `dilation` zeros inserted after each element along `axes` (an int, a sequence or None).
    """

def undilate(a: needle._core.Tensor, axes: int | Sequence[int] | None, dilation: int) -> needle._core.Tensor:
    """The inverse of dilate: every (dilation + 1)-th element along `axes`."""

def summation(a: needle._core.Tensor, axes: int | Sequence[int] | None = None, keepdims: bool = False) -> needle._core.Tensor:
    """Sum over `axes` (None: every axis; an empty tuple: none)."""

def mean(a: needle._core.Tensor, axes: int | Sequence[int] | None = None, keepdims: bool = False) -> needle._core.Tensor:
    """Mean over `axes` (None: every axis)."""

def max(a: needle._core.Tensor, axes: int | Sequence[int] | None = None, keepdims: bool = False) -> needle._core.Tensor:
    """Maximum over `axes` (None: every axis); ties share the gradient."""

def min(a: needle._core.Tensor, axes: int | Sequence[int] | None = None, keepdims: bool = False) -> needle._core.Tensor:
    """Minimum over `axes` (None: every axis); ties share the gradient."""

def logsumexp(a: needle._core.Tensor, axes: int | Sequence[int] | None = None, keepdims: bool = False) -> needle._core.Tensor:
    """log(sum(exp(a))) over `axes`, computed stably (None: every axis)."""

def argmax(a: needle._core.Tensor, axis: int | None = None, keepdims: bool = False) -> needle._core.Tensor:
    """
    Index (int64) of the first maximum along `axis` (None: of the flattened tensor); no gradient.
    """

def gather(a: needle._core.Tensor, axis: int, index: needle._core.Tensor) -> needle._core.Tensor:
    """
    Values of `a` at integer `index` along `axis` (torch.gather / numpy.take_along_axis).
    """

def embedding(indices: needle._core.Tensor, weight: needle._core.Tensor) -> needle._core.Tensor:
    """
    Rows of weight (num_embeddings, dim) picked by integer indices: indices.shape + (dim,).
    """

def one_hot(indices: needle._core.Tensor, num_classes: int, dtype: str = 'float32') -> needle._core.Tensor:
    """
    One-hot rows for integer indices: indices.shape + (num_classes,); no gradient.
    """

def logsoftmax(a: needle._core.Tensor, axis: int = -1) -> needle._core.Tensor:
    """log(softmax(a)) along `axis`."""

def softmax(a: needle._core.Tensor, axis: int = -1) -> needle._core.Tensor:
    """Softmax along `axis`."""

def cross_entropy(logits: needle._core.Tensor, labels: needle._core.Tensor) -> needle._core.Tensor:
    """
    Mean over the batch of -log softmax(logits)[label]: logits (N, C), integer labels (N,).
    """

def mse_loss(prediction: needle._core.Tensor, target: needle._core.Tensor) -> needle._core.Tensor:
    """Mean of squared differences."""

def dropout(a: needle._core.Tensor, p: float = 0.5, training: bool = True) -> needle._core.Tensor:
    """
    Zeroes each element with probability p (Needle's generator) and scales the rest by 1 / (1 - p); the identity when not training.
    """

def layer_norm(x: needle._core.Tensor, weight: needle._core.Tensor | None = None, bias: needle._core.Tensor | None = None, eps: float = 1e-05) -> needle._core.Tensor:
    """
    Normalization over the last axis, then * weight + bias (each optional, shape (dim,)).
    """

def rms_norm(x: needle._core.Tensor, weight: needle._core.Tensor | None = None, eps: float | None = None) -> needle._core.Tensor:
    """
    x / sqrt(mean(x ** 2) + eps) * weight over the last axis (weight optional, shape (dim,); eps defaults to the machine epsilon of x's dtype, as in PyTorch).
    """

def batch_norm(x: needle._core.Tensor, weight: needle._core.Tensor | None = None, bias: needle._core.Tensor | None = None, running_mean: needle._core.Tensor | None = None, running_var: needle._core.Tensor | None = None, training: bool = True, momentum: float = 0.1, eps: float = 1e-05) -> needle._core.Tensor:
    """
    Normalization over every axis but 1 of x (N, C, ...): batch statistics in training (updating the running ones in place), running statistics otherwise.
    """

def scaled_dot_product_attention(q: needle._core.Tensor, k: needle._core.Tensor, v: needle._core.Tensor, causal: bool = False) -> needle._core.Tensor:
    """softmax(q k^T / sqrt(d) [+ causal mask]) v over the last two axes."""

def lstm_sequence(xproj: needle._core.Tensor, w_hh: needle._core.Tensor, h0: needle._core.Tensor | None = None, c0: needle._core.Tensor | None = None) -> tuple[needle._core.Tensor, needle._core.Tensor]:
    """
    Every step of one LSTM layer: xproj (T, B, 4H) the input projection with the biases (gates i, f, g, o), w_hh (H, 4H), h0 and c0 (B, H) (None: zeros). Returns (h, c) of every step, each (T, B, H).
    """

def rnn_sequence(xproj: needle._core.Tensor, w_hh: needle._core.Tensor, h0: needle._core.Tensor | None = None, nonlinearity: str = 'tanh') -> needle._core.Tensor:
    """
    Every step of one Elman RNN layer, h_t = nonlinearity(xproj_t + h_{t-1} @ w_hh) ("tanh" or "relu"): xproj (T, B, H) with the biases, w_hh (H, H), h0 (B, H) (None: zeros). Returns every step's h, (T, B, H).
    """

def max_pool2d(a: needle._core.Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> needle._core.Tensor:
    """
    Maximum over K x K windows of a (N, C, H, W) moved by `stride` (default K), padding with -inf; ties share the gradient.
    """

def avg_pool2d(a: needle._core.Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> needle._core.Tensor:
    """
    Mean over K x K windows of a (N, C, H, W) moved by `stride` (default K); zero padding counts in the mean.
    """

def conv(a: needle._core.Tensor, b: needle._core.Tensor, stride: int = 1, padding: int = 0) -> needle._core.Tensor:
    """
    Needle's conv: a (N, H, W, C_in), b (K, K, C_in, C_out), zero padding on H and W.
    """
