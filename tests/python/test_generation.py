"""KV-cached generation through the Python API: cached logits equal the plain forward's, generate() with
and without the cache gives the same tokens from any prompt container, a cache is reusable, errors."""

from __future__ import annotations

import numpy as np
import pytest

import needle as ndl
from needle import nn


def make_model(device: str = "cpu") -> nn.Transformer:
    ndl.manual_seed(0)
    model = nn.Transformer(13, 16, 2, 4, 32, max_seq_len=24, device=device)
    model.eval()
    return model


@pytest.mark.parametrize("device", ["cpu", "ref"])
def test_cached_forward_matches_the_full_forward(device: str) -> None:
    model = make_model(device)
    ids = np.random.default_rng(1).integers(0, 13, size=(2, 9))
    full = model(ndl.Tensor(ids, dtype="int64", device=ndl.Device(device))).numpy()
    cache = nn.KVCache(model, batch_size=2, capacity=12)
    assert (cache.length, cache.capacity, cache.batch_size, cache.num_layers) == (0, 12, 2, 2)
    pieces = []
    for start, stop in [(0, 4), (4, 5), (5, 7), (7, 8), (8, 9)]:
        chunk = ndl.Tensor(ids[:, start:stop], dtype="int64", device=ndl.Device(device))
        pieces.append(model(chunk, cache=cache).numpy())
        assert cache.length == stop
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=2e-5, atol=2e-5)
    assert cache.keys(0).shape == (2, 4, 12, 4)
    cache.reset()
    assert cache.length == 0


def test_generate_accepts_lists_arrays_and_tensors_and_the_cache_changes_nothing() -> None:
    model = make_model()
    prompt = [[1, 2, 3], [4, 5, 6]]
    greedy = model.generate(prompt, 7, temperature=0).numpy()
    assert greedy.shape == (2, 10)
    assert greedy.dtype == np.int64
    np.testing.assert_array_equal(greedy[:, :3], prompt)
    np.testing.assert_array_equal(model.generate(np.array(prompt), 7, temperature=0, use_cache=False).numpy(), greedy)
    tensor_prompt = ndl.Tensor(np.array(prompt), dtype="int64")
    np.testing.assert_array_equal(model.generate(tensor_prompt, 7, temperature=0).numpy(), greedy)
    sampled = model.generate(prompt, 7, temperature=1.2, top_k=5, top_p=0.9, seed=3).numpy()
    cache = nn.KVCache(model, 2)
    np.testing.assert_array_equal(
        model.generate(prompt, 7, temperature=1.2, top_k=5, top_p=0.9, seed=3, cache=cache).numpy(), sampled
    )
    assert cache.length == 9
    assert ((sampled >= 0) & (sampled < 13)).all()


def test_generation_errors_are_value_and_type_errors() -> None:
    model = make_model()
    with pytest.raises(ValueError, match="exceeds max_seq_len 24"):
        model.generate([[1, 2]], 30)
    with pytest.raises(ValueError, match="top_p must lie in"):
        model.generate([[1, 2]], 3, top_p=1.5)
    with pytest.raises(TypeError, match="prompt ids must be integers"):
        model.generate(ndl.Tensor(np.ones((1, 2), dtype=np.float32)), 3)
    cache = nn.KVCache(model, 1, capacity=3)
    model(ndl.Tensor([[1, 2, 3]], dtype="int64"), cache=cache)
    with pytest.raises(ValueError, match="exceed the cache's capacity 3"):
        model(ndl.Tensor([[1]], dtype="int64"), cache=cache)
    with pytest.raises(ValueError, match="capacity must lie in"):
        nn.KVCache(model, 1, capacity=25)
    bidirectional = nn.Transformer(5, 8, 1, 2, 8, max_seq_len=4, causal=False)
    with pytest.raises(ValueError, match="not causal"):
        nn.KVCache(bidirectional, 1)
