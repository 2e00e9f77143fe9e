"""``MultiheadAttention``, ``TransformerEncoderLayer`` and ``TransformerEncoder`` with PyTorch's
parameters (``in_proj_weight`` (3 E, E), ``in_proj_bias``, ``out_proj``), masks (boolean: True = may not
attend; float: added to the scores), ``key_padding_mask``, ``batch_first`` and ``norm_first``."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from needle.torch._functions import empty, tensor, zeros
from needle.torch._tensor import Tensor
from needle.torch.nn import functional as F
from needle.torch.nn import init
from needle.torch.nn.layers import Dropout, LayerNorm, Linear
from needle.torch.nn.module import Module, ModuleList, Parameter


def _as_additive(mask: Tensor, like: Tensor) -> Tensor:
    """A boolean mask (True = masked) as -inf/0 scores; a float mask as it is."""
    if mask.dtype.name == "bool":
        return zeros(mask.shape, dtype=like.dtype).masked_fill(mask, float("-inf"))
    return mask


class MultiheadAttention(Module):
    """Attention of ``num_heads`` heads over embeddings of size ``embed_dim`` (PyTorch's parameters)."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if add_bias_kv or add_zero_attn or (kdim not in (None, embed_dim)) or (vdim not in (None, embed_dim)):
            raise NotImplementedError(
                "MultiheadAttention(add_bias_kv, add_zero_attn, kdim, vdim) is not supported by needle.torch"
            )
        if embed_dim % num_heads:
            raise AssertionError("embed_dim must be divisible by num_heads")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        factory = {"device": device, "dtype": dtype}
        self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, **factory))
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, **factory)
        init.xavier_uniform_(self.in_proj_weight)
        for zero_bias in (self.in_proj_bias, self.out_proj.bias):
            if zero_bias is not None:
                init.constant_(zero_bias, 0.0)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        target, batch, embed = query.shape
        source = key.shape[0]
        if embed != self.embed_dim:
            raise AssertionError(f"was expecting embedding dimension of {self.embed_dim}, but got {embed}")
        e = self.embed_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        q = F.linear(query, w[:e], None if b is None else b[:e])
        k = F.linear(key, w[e : 2 * e], None if b is None else b[e : 2 * e])
        v = F.linear(value, w[2 * e :], None if b is None else b[2 * e :])

        def heads(x: Tensor, length: int) -> Tensor:  # (L, N, E) -> (N, heads, L, head_dim)
            return x.reshape(length, batch, self.num_heads, self.head_dim).permute(1, 2, 0, 3)

        q, k, v = heads(q, target), heads(k, source), heads(v, source)
        simple = attn_mask is None and key_padding_mask is None and not need_weights
        if simple and (self.dropout == 0.0 or not self.training):
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=False)
            weights = None
        else:
            scores = q.matmul(k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
            if attn_mask is not None:
                mask = _as_additive(attn_mask, scores)
                if mask.dim() == 3:  # (N * heads, L, S)
                    mask = mask.reshape(batch, self.num_heads, target, source)
                scores = scores + mask
            if key_padding_mask is not None:
                padding = _as_additive(key_padding_mask, scores).reshape(batch, 1, 1, source)
                scores = scores + padding
            weights = scores.softmax(-1)
            if self.dropout > 0.0 and self.training:
                weights = F.dropout(weights, self.dropout, True)
            attended = weights.matmul(v)
            if need_weights:
                weights = weights.mean(1) if average_attn_weights else weights
                if not batched:
                    weights = weights.squeeze(0)
            else:
                weights = None
        out = self.out_proj(attended.permute(2, 0, 1, 3).reshape(target, batch, e))
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with dropout, a residual and LayerNorm (after each
    block, or before with ``norm_first``)."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **factory
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise RuntimeError(f"activation should be relu/gelu, not {activation}")
            activation = _ACTIVATIONS[activation]
        self.activation = activation

    def _self_attention(self, x: Tensor, mask: Tensor | None, padding: Tensor | None) -> Tensor:
        out, _ = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=padding, need_weights=False)
        dropped: Tensor = self.dropout1(out)
        return dropped

    def _feed_forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))
        return out

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), src_mask, src_key_padding_mask)
            return x + self._feed_forward(self.norm2(x))
        x = self.norm1(x + self._self_attention(x, src_mask, src_key_padding_mask))
        out: Tensor = self.norm2(x + self._feed_forward(x))
        return out


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` (each with its own parameters), then ``norm`` if given."""

    def __init__(
        self,
        encoder_layer: TransformerEncoderLayer,
        num_layers: int,
        norm: Module | None = None,
        enable_nested_tensor: bool = True,
        mask_check: bool = True,
    ) -> None:
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self,
        src: Tensor,
        mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool | None = None,
    ) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask)
        return x if self.norm is None else self.norm(x)


class Transformer(Module):
    """Only ``Transformer.generate_square_subsequent_mask`` is offered (the encoder-decoder model is not)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("nn.Transformer (the encoder-decoder model) is not supported by needle.torch")

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None) -> Tensor:
        """The causal mask: -inf above the diagonal, 0 elsewhere."""
        mask = np.triu(np.full((sz, sz), -np.inf, dtype=np.float32), k=1)
        return tensor(mask, device=device) if dtype is None else tensor(mask, device=device, dtype=dtype)
