"""PyTorch-style functional forms over ``needle.ops`` (``needle.nn.functional``, usually imported as ``F``).

Every function calls one op of Needle's C++ core; only argument conventions differ from ``needle.ops``.
"""

from __future__ import annotations

from collections.abc import Sequence

from needle import ops
from needle._core import Tensor


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return ops.relu(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    return ops.leaky_relu(x, negative_slope)


def gelu(x: Tensor) -> Tensor:
    """Exact GELU, x * Phi(x)."""
    return ops.gelu(x)


def tanh(x: Tensor) -> Tensor:
    """tanh(x)."""
    return ops.tanh(x)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x))."""
    return ops.sigmoid(x)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Softmax along ``dim``."""
    return ops.softmax(x, dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """log(softmax(x)) along ``dim``, computed stably."""
    return ops.logsoftmax(x, dim)


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross entropy of logits (N, C) and integer class indices (N,)."""
    return ops.cross_entropy(logits, target)


def mse_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean of squared differences."""
    return ops.mse_loss(prediction, target)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zeroes each element with probability p and scales the rest by 1 / (1 - p) when training."""
    return ops.dropout(x, p, training)


def layer_norm(
    x: Tensor,
    normalized_shape: Sequence[int] | int | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalization over the last axis, then * weight + bias. ``normalized_shape`` (PyTorch's argument)
    must name only the last axis when given."""
    if normalized_shape is not None:
        dims = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if dims != (x.shape[-1],):
            raise ValueError(f"layer_norm: normalizes over the last axis only; got normalized_shape {dims}")
    return ops.layer_norm(x, weight, bias, eps)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """PyTorch's linear: x @ weight.T + bias with weight (out_features, in_features). (Needle's Linear
    layer stores its weight as (in_features, out_features) instead.)"""
    y = ops.matmul(x, ops.transpose(weight))
    return y if bias is None else y + bias


def embedding(indices: Tensor, weight: Tensor) -> Tensor:
    """Rows of ``weight`` picked by integer ``indices``."""
    return ops.embedding(indices, weight)


def one_hot(indices: Tensor, num_classes: int) -> Tensor:
    """One-hot rows (float32) for integer ``indices``."""
    return ops.one_hot(indices, num_classes)


def max_pool2d(x: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> Tensor:
    """Maximum over windows of x (N, C, H, W)."""
    return ops.max_pool2d(x, kernel_size, stride, padding)


def avg_pool2d(x: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> Tensor:
    """Mean over windows of x (N, C, H, W)."""
    return ops.avg_pool2d(x, kernel_size, stride, padding)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1, padding: int = 0) -> Tensor:
    """PyTorch's conv2d: x (N, C_in, H, W), weight (C_out, C_in, K, K) -> (N, C_out, H', W')."""
    y = ops.conv(ops.permute(x, (0, 2, 3, 1)), ops.permute(weight, (2, 3, 1, 0)), stride, padding)
    if bias is not None:
        y = y + ops.reshape(bias, (1, 1, 1, bias.shape[0]))
    return ops.permute(y, (0, 3, 1, 2))


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool = False) -> Tensor:
    """softmax(q k^T / sqrt(d) [+ causal mask]) v."""
    return ops.scaled_dot_product_attention(q, k, v, is_causal)


__all__ = [
    "avg_pool2d",
    "conv2d",
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "one_hot",
    "relu",
    "scaled_dot_product_attention",
    "sigmoid",
    "softmax",
    "tanh",
]
