"""``torch.nn.functional``: PyTorch's layouts and formulas over Needle's ops.

Convolutions take NCHW inputs and OIHW weights (Needle's conv is NHWC with HWIO weights: the layouts are
permuted around it); the losses follow PyTorch's ``reduction``, ``weight``, ``ignore_index`` and
``label_smoothing`` rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from needle.torch._ops import ops as _ops
from needle.torch._tensor import Tensor, Unsupported, core_of, wrap

_Pair = int | tuple[int, int] | Sequence[int]


def _pair(value: _Pair, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    pair = tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


# ---- linear layers and convolutions ---------------------------------------------------------------------
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias, weight (out_features, in_features)."""
    x, w = input._t, weight._t
    if x.shape[-1] != w.shape[-1]:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({math.prod(input.shape[:-1])}x{input.shape[-1]} and "
            f"{weight.shape[1]}x{weight.shape[0]})"
        )
    return wrap(_ops.linear(x, _ops.transpose(w), None if bias is None else bias._t))


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: _Pair = 1,
    padding: _Pair | str = 0,
    dilation: _Pair = 1,
    groups: int = 1,
) -> Tensor:
    """2-d convolution (cross-correlation) of ``input`` (N, C_in, H, W) with ``weight``
    (C_out, C_in / groups, kH, kW): PyTorch's ``conv2d``."""
    if input.ndim != 4 or weight.ndim != 4:
        raise RuntimeError(
            f"conv2d: expected a 4-d input (N, C, H, W) and a 4-d weight, got input of shape {list(input.shape)} "
            f"and weight of shape {list(weight.shape)}"
        )
    c_out, c_in_group, kh, kw = weight.shape
    if input.shape[1] != c_in_group * groups or c_out % groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {list(weight.shape)}, expected input{list(input.shape)} to have "
            f"{c_in_group * groups} channels, but got {input.shape[1]} channels instead"
        )
    sh, sw = _pair(stride, "stride")
    if sh != sw:
        raise NotImplementedError(f"conv2d with unequal strides {(sh, sw)} is not supported by needle.torch")
    dh, dw = _pair(dilation, "dilation")
    w = _ops.permute(weight._t, [2, 3, 1, 0])  # (kH, kW, C_in/groups, C_out)
    if (dh, dw) != (1, 1):
        # A dilated kernel is the kernel with (dilation - 1) zeros between its taps.
        w = _dilate_kernel(w, dh, dw)
        kh, kw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if isinstance(padding, str):
        if padding == "valid":
            ph = pw = (0, 0)
        elif padding == "same":
            if sh != 1:
                raise ValueError("padding='same' is not supported for strided convolutions")
            ph, pw = ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)
        else:
            raise ValueError(f"Invalid padding string '{padding}', should be one of ('valid', 'same')")
    else:
        p0, p1 = _pair(padding, "padding")
        ph, pw = (p0, p0), (p1, p1)
    # Needle's conv has one square kernel size: a kH x kW kernel gets zero taps up to k = max(kH, kW) and the
    # input as many extra zero rows/columns at the end, which leaves every output position unchanged.
    k = max(kh, kw)
    if kh != kw:
        w = _ops.pad(w, [(0, k - kh), (0, k - kw), (0, 0), (0, 0)])
        ph, pw = (ph[0], ph[1] + k - kh), (pw[0], pw[1] + k - kw)
    x = _ops.permute(input._t, [0, 2, 3, 1])  # NHWC
    symmetric = ph[0] == ph[1] == pw[0] == pw[1]
    if not symmetric:
        x = _ops.pad(x, [(0, 0), ph, pw, (0, 0)])
    pad = ph[0] if symmetric else 0
    if groups == 1:
        out = _ops.conv(x, w, sh, pad)
    else:
        c_in_g, c_out_g = c_in_group, c_out // groups
        parts = [
            _ops.conv(
                _ops.getitem(x, (Ellipsis, slice(g * c_in_g, (g + 1) * c_in_g))),
                _ops.getitem(w, (Ellipsis, slice(g * c_out_g, (g + 1) * c_out_g))),
                sh,
                pad,
            )
            for g in range(groups)
        ]
        out = _ops.concat(parts, 3)
    if bias is not None:
        out = _ops.add(out, bias._t)
    return wrap(_ops.permute(out, [0, 3, 1, 2]))


def _dilate_kernel(w: Any, dh: int, dw: int) -> Any:
    """A (kH, kW, ...) kernel with dh - 1 zero rows and dw - 1 zero columns between its taps."""
    kh, kw = w.shape[0], w.shape[1]
    if dh > 1:
        w = _ops.getitem(_ops.dilate(w, [0], dh - 1), (slice(0, (kh - 1) * dh + 1),))
    if dw > 1:
        w = _ops.getitem(_ops.dilate(w, [1], dw - 1), (slice(None), slice(0, (kw - 1) * dw + 1)))
    return w


# ---- pooling ----------------------------------------------------------------------------------------------
def _pool_args(kernel_size: _Pair, stride: _Pair | None, padding: _Pair, name: str) -> tuple[int, int, int]:
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride if stride is not None and stride != [] else (kh, kw), "stride")
    ph, pw = _pair(padding, "padding")
    if kh != kw or sh != sw or ph != pw:
        raise NotImplementedError(
            f"{name} with a non-square kernel, stride or padding is not supported by needle.torch"
        )
    if 2 * ph > kh:
        raise RuntimeError(
            f"{name}: pad should be at most half of effective kernel size, but got pad={ph}, kernel_size={kh}"
        )
    return kh, sh, ph


def max_pool2d(
    input: Tensor,
    kernel_size: _Pair,
    stride: _Pair | None = None,
    padding: _Pair = 0,
    dilation: _Pair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor:
    """Maximum over kernel windows of (N, C, H, W)."""
    if _pair(dilation, "dilation") != (1, 1) or ceil_mode or return_indices:
        raise NotImplementedError(
            "max_pool2d with dilation, ceil_mode or return_indices is not supported by needle.torch"
        )
    k, s, p = _pool_args(kernel_size, stride, padding, "max_pool2d")
    return wrap(_ops.max_pool2d(input._t, k, s, p))


def avg_pool2d(
    input: Tensor,
    kernel_size: _Pair,
    stride: _Pair | None = None,
    padding: _Pair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean over kernel windows of (N, C, H, W) (padding counts in the mean, PyTorch's default)."""
    if ceil_mode or not count_include_pad or divisor_override is not None:
        raise NotImplementedError(
            "avg_pool2d with ceil_mode, count_include_pad=False or divisor_override is not supported by needle.torch"
        )
    k, s, p = _pool_args(kernel_size, stride, padding, "avg_pool2d")
    return wrap(_ops.avg_pool2d(input._t, k, s, p))


def adaptive_avg_pool2d(input: Tensor, output_size: _Pair) -> Tensor:
    """Mean over the windows that split (H, W) into ``output_size`` (when it divides them)."""
    oh, ow = _pair(output_size, "output_size")
    h, w = input.shape[-2], input.shape[-1]
    if (oh, ow) == (1, 1):
        return wrap(_ops.mean(input._t, [input.ndim - 2, input.ndim - 1], True))
    if h % oh or w % ow or h // oh != w // ow:
        raise NotImplementedError(
            f"adaptive_avg_pool2d from {(h, w)} to {(oh, ow)}: only equal windows are supported by needle.torch"
        )
    return wrap(_ops.avg_pool2d(input._t, h // oh, h // oh, 0))


# ---- activations ------------------------------------------------------------------------------------------
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(input, 0)."""
    return input.relu_() if inplace else wrap(_ops.relu(input._t))


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """input where positive, negative_slope * input elsewhere."""
    result = _ops.leaky_relu(input._t, negative_slope)
    return input._assign(result, "leaky_relu_") if inplace else wrap(result)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) (``approximate='tanh'``: PyTorch's tanh formula)."""
    if approximate == "none":
        return wrap(_ops.gelu(input._t))
    if approximate == "tanh":
        x = input
        inner = (x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)
        return x * 0.5 * (inner.tanh() + 1.0)
    raise RuntimeError(f"approximate argument must be either none or tanh, got {approximate!r}")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x)."""
    return wrap(_ops.silu(input._t))


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-x))."""
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return input.tanh()


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, linear above ``threshold``."""
    scaled = input * beta
    smooth = (scaled.clamp(max=threshold).exp() + 1.0).log() / beta
    return wrap(_ops.where(_ops.gt(scaled._t, threshold), input._t, smooth._t))


def softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``."""
    x = input if dtype is None else input.to(dtype)
    return x.softmax(-1 if dim is None else dim)


def log_softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    """log(softmax(x)) along ``dim``."""
    x = input if dtype is None else input.to(dtype)
    return x.log_softmax(-1 if dim is None else dim)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zeroes elements with probability ``p`` and scales the rest by 1 / (1 - p) (Needle's generator)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return wrap(_ops.dropout(input._t, p, training))


# ---- normalization ------------------------------------------------------------------------------------------
def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalization over every dimension but 1 (batch statistics when training, updating the running ones
    in place with the unbiased variance; running statistics otherwise)."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2-d input (N, C, ...), got shape {list(input.shape)}")
    return wrap(
        _ops.batch_norm(
            input._t,
            None if weight is None else weight._t,
            None if bias is None else bias._t,
            None if running_mean is None else running_mean._t,
            None if running_var is None else running_var._t,
            training,
            momentum,
            eps,
        )
    )


def layer_norm(
    input: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalization over the last ``len(normalized_shape)`` dimensions, then * weight + bias."""
    shape = tuple(normalized_shape)
    if tuple(input.shape[-len(shape) :]) != shape:
        raise RuntimeError(
            f"Given normalized_shape={list(shape)}, expected input with shape [*, {', '.join(map(str, shape))}], "
            f"but got input of size{list(input.shape)}"
        )
    if len(shape) == 1:
        return wrap(
            _ops.layer_norm(input._t, None if weight is None else weight._t, None if bias is None else bias._t, eps)
        )
    flat = input.flatten(input.ndim - len(shape))
    out = wrap(_ops.layer_norm(flat._t, None, None, eps)).view(input.shape)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` picked by integer ``input``; the ``padding_idx`` row gets no gradient."""
    table = weight._t
    if padding_idx is not None:
        rows = weight.shape[0]
        index = padding_idx % rows
        is_padding = _ops.eq(core_of(_arange_column(rows), table), index)
        table = _ops.where(is_padding, table.detach(), table)
    return wrap(_ops.embedding(input._t, table))


def _arange_column(n: int) -> Any:
    return np.arange(n, dtype=np.int64).reshape(n, 1)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot rows: ``tensor.shape + (num_classes,)``."""
    if num_classes < 0:
        num_classes = int(tensor.max().item()) + 1
    return wrap(_ops.one_hot(tensor._t, num_classes, "int64"))


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """Constant padding; ``pad`` lists (before, after) pairs from the last dimension backwards."""
    if mode != "constant":
        raise NotImplementedError(f"F.pad(mode='{mode}') is not supported by needle.torch")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise RuntimeError(f"Padding length must be divisible by 2 and at most twice the dimensions, got {len(pad)}")
    widths = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        widths[input.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return wrap(_ops.pad(input._t, widths, 0.0 if value is None else value))


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """input / max(||input||_p along dim, eps)."""
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """softmax(q k^T * scale + mask) v over the last two dimensions (causal: each query sees earlier keys)."""
    if attn_mask is None and dropout_p == 0.0 and scale is None:
        return wrap(_ops.scaled_dot_product_attention(query._t, key._t, value._t, is_causal))
    factor = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = query.matmul(key.transpose(-2, -1)) * factor
    if is_causal:
        q, k = query.shape[-2], key.shape[-2]
        allowed = _mask(np.tril(np.ones((q, k), bool)))
        scores = scores.masked_fill(allowed.logical_not(), float("-inf"))
    if attn_mask is not None:
        scores = (
            scores.masked_fill(attn_mask.logical_not(), float("-inf"))
            if attn_mask.dtype.name == "bool"
            else scores + attn_mask
        )
    weights = scores.softmax(-1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p)
    return weights.matmul(value)


def _mask(values: Any) -> Tensor:
    from needle.torch._functions import tensor

    return tensor(values)


# ---- losses ---------------------------------------------------------------------------------------------------
def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _classes_last(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """(N, C, d1, ...) logits and (N, d1, ...) targets as (M, C) and (M,), with the per-element shape."""
    if input.ndim == 1:
        return input.unsqueeze(0), target.reshape(1), ()
    if input.ndim == 2:
        return input, target, (input.shape[0],)
    moved = input.permute(0, *range(2, input.ndim), 1)
    return moved.reshape(-1, input.shape[1]), target.reshape(-1), tuple(target.shape)


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """-input[n, target[n]] (weighted; ``ignore_index`` targets count for nothing); the mean divides by the
    total weight of the counted targets."""
    logp, labels, shape = _classes_last(input, target)
    if labels.dtype.is_floating_point:
        raise RuntimeError(f"expected scalar type Long but found {labels.dtype.name.capitalize()}")
    classes = logp.shape[1]
    kept = labels.ne(ignore_index)
    safe = wrap(_ops.where(kept._t, labels._t, 0))
    bad = (safe.lt(0) | safe.ge(classes)).any().item()
    if bad:
        raise IndexError(f"Target {_first_bad(safe, classes)} is out of bounds.")
    picked = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    w = kept.to(logp.dtype) if weight is None else weight[safe] * kept.to(logp.dtype)
    loss = picked * w
    if reduction == "mean":
        return loss.sum() / w.sum()
    return _reduce(loss.reshape(*shape) if shape else loss.reshape(()), reduction)


def _first_bad(labels: Tensor, classes: int) -> int:
    values = labels._t.numpy().reshape(-1)
    return int(values[(values < 0) | (values >= classes)][0])


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy of logits ``input`` (N, C, ...) against class indices or class probabilities ``target``,
    with PyTorch's ``weight``, ``ignore_index``, ``reduction`` and ``label_smoothing``."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    class_dim = 0 if input.ndim == 1 else 1
    classes = input.shape[class_dim]
    if target.dtype.is_floating_point:  # class probabilities
        if target.shape != input.shape:
            raise RuntimeError(
                f"expected target of shape {list(input.shape)} for probabilities, got {list(target.shape)}"
            )
        logp = input.log_softmax(class_dim)
        probs = target * (1 - label_smoothing) + label_smoothing / classes if label_smoothing else target
        weighted = logp if weight is None else logp * weight.reshape(-1, *([1] * (input.ndim - 2)))
        loss = -(weighted * probs).sum(class_dim)
        if reduction == "mean":
            return loss.sum() / (input.numel() // classes)
        return _reduce(loss, reduction)
    if input.ndim == 2 and weight is None and label_smoothing == 0.0 and reduction == "mean" and ignore_index < 0:
        # The common case in one fused op. It refuses labels outside [0, C): an ignored (negative) label
        # sends the batch down the general path below, which knows ignore_index and names a bad label.
        try:
            return wrap(_ops.cross_entropy(input._t, target._t))
        except IndexError:
            pass
    logp = input.log_softmax(class_dim)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if label_smoothing == 0.0:
        return nll
    flat, labels, shape = _classes_last(logp, target)
    kept = labels.ne(ignore_index).to(flat.dtype)
    smooth = -(flat if weight is None else flat * weight).sum(1) * kept
    if reduction == "mean":
        if weight is None:
            smooth_total = smooth.sum() / kept.sum()
        else:
            safe = wrap(_ops.where(labels.ne(ignore_index)._t, labels._t, 0))
            smooth_total = smooth.sum() / (weight[safe] * kept).sum()
    elif reduction == "sum":
        smooth_total = smooth.sum()
    else:
        smooth_total = smooth.reshape(*shape) if shape else smooth.reshape(())
    return nll * (1 - label_smoothing) + smooth_total * (label_smoothing / classes)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """(input - target) ** 2, reduced."""
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """|input - target|, reduced."""
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d ** 2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (d = input - target)."""
    d = (input - target).abs()
    quadratic = d * d * (0.5 / beta) if beta > 0 else d
    return _reduce(wrap(_ops.where(_ops.lt(d._t, beta), quadratic._t, (d - 0.5 * beta)._t)), reduction)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """-(pos_weight y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))), computed stably."""
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    softplus_neg = (-input.abs()).exp().log1p() + (-input).clamp(min=0)  # log(1 + exp(-x)), stably
    if pos_weight is None:
        loss = (1 - target) * input + softplus_neg
    else:
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """-(y log p + (1 - y) log(1 - p)), each log clamped at -100 as in PyTorch."""
    log_p = input.log().clamp(min=-100)
    log_q = (1 - input).log().clamp(min=-100)
    loss = -(target * log_p + (1 - target) * log_q)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def __getattr__(name: str) -> NoReturn:
    if name.startswith("__"):
        raise AttributeError(name)
    raise Unsupported(f"torch.nn.functional.{name} is not supported by needle.torch")
