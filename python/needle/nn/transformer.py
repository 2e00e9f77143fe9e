"""Attention and transformers of ``needle.nn`` over (batch, seq, dim)."""

from __future__ import annotations

from typing import Any

import numpy as np

from needle import _core
from needle._core import NDArray, Tensor
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
    max_seq_len = CppAttribute[int]("Longest sequence (the positional embedding's rows).")

    def forward(self, tokens: Tensor, cache: KVCache | None = None) -> Tensor:
        """Logits (batch, seq, vocab_size) of token ids (batch, seq). With a ``KVCache``, the tokens continue
        the cache's sequences: only their logits are computed, attending to the cached keys and values, and
        the cache grows by seq positions (inference only: no graph is recorded)."""
        self._sync_mode()
        return self._cpp(tokens, None if cache is None else cache._cpp)

    def generate(
        self,
        prompt_ids: Any,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        use_cache: bool = True,
        cache: KVCache | None = None,
    ) -> Tensor:
        """The prompt ids (batch, T) (a Tensor, NDArray, NumPy array or nested lists of ints) followed by
        ``max_new_tokens`` sampled ids, as an int64 Tensor (batch, T + max_new_tokens).

        ``temperature=0`` picks the most likely token (greedy); otherwise tokens are sampled from
        softmax(logits / temperature) cut to the ``top_k`` most likely (0: all) and then to the smallest set
        whose probability reaches ``top_p``, from a generator seeded with ``seed``. The prompt runs in one pass
        and each new token in one step against a key/value cache (``cache``, reused, or one made for the call);
        ``use_cache=False`` reruns the whole sequence for every token instead (same tokens, slower). Runs in
        evaluation mode; the module's mode is left as it was."""
        if isinstance(prompt_ids, Tensor):
            ids = prompt_ids.cached_data
        elif isinstance(prompt_ids, NDArray):
            ids = prompt_ids
        else:
            ids = _core.array(np.asarray(prompt_ids, dtype=np.int64))
        out = self._cpp.generate(
            ids, max_new_tokens, temperature, top_k, top_p, seed, use_cache, None if cache is None else cache._cpp
        )
        return Tensor(out)


class KVCache:
    """The keys and values a ``Transformer`` computed for the tokens seen so far, per layer an array
    (batch_size, num_heads, capacity, head_dim) allocated once on the model's device, so that generating a
    token costs one position's work instead of the whole sequence's. ``model(tokens, cache=cache)`` appends;
    ``reset()`` empties it for reuse. ``capacity`` defaults to the model's ``max_seq_len``."""

    def __init__(self, model: Transformer, batch_size: int, capacity: int | None = None) -> None:
        self._cpp = _core.KVCache(model._cpp, batch_size, 0 if capacity is None else capacity)

    @property
    def batch_size(self) -> int:
        """Sequences held."""
        return self._cpp.batch_size

    @property
    def capacity(self) -> int:
        """Positions each sequence can hold."""
        return self._cpp.capacity

    @property
    def length(self) -> int:
        """Positions filled so far."""
        return self._cpp.length

    @property
    def num_layers(self) -> int:
        """Attention layers cached."""
        return self._cpp.num_layers

    def keys(self, layer: int) -> NDArray:
        """Layer ``layer``'s keys (batch_size, num_heads, capacity, head_dim); positions >= length are unused."""
        return self._cpp.keys(layer)

    def values(self, layer: int) -> NDArray:
        """Layer ``layer``'s values, laid out as ``keys``."""
        return self._cpp.values(layer)

    def reset(self) -> None:
        """Empties the cache (length 0), keeping its memory."""
        self._cpp.reset()
