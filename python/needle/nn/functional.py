"""PyTorch-style functional forms over ``needle.ops`` (``needle.nn.functional``, usually imported as ``F``).

Most names are aliases of ``needle.ops`` (the same C++ functions); the functions defined here adapt PyTorch's
argument conventions (``dim=``, ``is_causal=``, PyTorch's weight layouts for ``linear`` and ``conv2d``).
"""

from __future__ import annotations

from collections.abc import Sequence

from needle import ops
from needle._core import Tensor

relu = ops.relu


leaky_relu = ops.leaky_relu


gelu = ops.gelu


tanh = ops.tanh


sigmoid = ops.sigmoid
silu = ops.silu


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Softmax along ``dim``."""
    return ops.softmax(x, dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """log(softmax(x)) along ``dim``, computed stably."""
    return ops.logsoftmax(x, dim)


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross entropy of logits (N, C) and integer class indices (N,)."""
    return ops.cross_entropy(logits, target)


mse_loss = ops.mse_loss


dropout = ops.dropout


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


embedding = ops.embedding


one_hot = ops.one_hot


max_pool2d = ops.max_pool2d


avg_pool2d = ops.avg_pool2d


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
    "silu",
    "softmax",
    "tanh",
]
