"""Attention and transformers of ``needle.nn`` over (batch, seq, dim)."""

from __future__ import annotations

from needle import _core
from needle._core import Tensor
from needle.nn._layer import CppAttribute, Layer, placement
from needle.nn.module import DeviceLike


class MultiHeadAttention(Layer):
    """Multi-head attention over (batch, seq, embed_dim) with q/k/v/out projections (no bias by default, as
    Needle's AttentionLayer), optional causal mask and dropout on the attention probabilities."""

    _cpp: _core.MultiHeadAttention

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        causal: bool = False,
        dropout: float = 0.0,
        bias: bool = False,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(
            _core.MultiHeadAttention, embed_dim, num_heads, causal, dropout, bias, *placement(device, dtype)
        )

    embed_dim = CppAttribute[int]("Features of each position.")
    num_heads = CppAttribute[int]("Number of heads (embed_dim / num_heads features each).")
    causal = CppAttribute[bool]("Whether position i attends only to positions <= i.")

    def forward(self, q: Tensor, k: Tensor | None = None, v: Tensor | None = None) -> Tensor:
        """q (batch, L, embed_dim), k and v (batch, S, embed_dim); k defaults to q and v to k."""
        self._sync_mode()
        return self._cpp(q, k, v)


class TransformerLayer(Layer):
    """Pre-LayerNorm block: x + attn(ln1(x)), then x + mlp(ln2(x)) (Linear -> GELU -> Dropout -> Linear)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        hidden_size: int,
        dropout: float = 0.0,
        causal: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(
            _core.TransformerLayer, dim, num_heads, hidden_size, dropout, causal, *placement(device, dtype)
        )


class Transformer(Layer):
    """Decoder-only transformer language model: token ids (batch, seq) -> logits (batch, seq, vocab_size)."""

    _cpp: _core.Transformer

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        num_layers: int,
        num_heads: int,
        hidden_size: int,
        max_seq_len: int = 2048,
        dropout: float = 0.0,
        causal: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(
            _core.Transformer,
            vocab_size,
            dim,
            num_layers,
            num_heads,
            hidden_size,
            max_seq_len,
            dropout,
            causal,
            *placement(device, dtype),
        )

    vocab_size = CppAttribute[int]("Number of token ids (and of logits per position).")
