"""Needle's seeded generator: the same numbers on ref and cpu, sensible statistics."""

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_numbers_on_every_device(dtype: str) -> None:
    draws = {}
    for device in (ndl.ref(), ndl.cpu()):
        ndl.manual_seed(42)
        u = nd.rand(3, 17, dtype=dtype, device=device)
        n = nd.randn((5, 4), dtype=dtype, device=device)
        b = nd.randb(33, p=0.3, device=device)
        draws[device.name] = (u.numpy(), n.numpy(), b.numpy())
        assert (u.dtype, n.dtype, b.dtype) == (dtype, dtype, "bool")
    for ref_values, cpu_values in zip(draws["ref"], draws["cpu"], strict=True):
        np.testing.assert_array_equal(ref_values, cpu_values)


def test_reseeding_repeats_and_stream_advances(device: nd.Device) -> None:
    nd.manual_seed(7)
    first = nd.randn(10, device=device).numpy()
    second = nd.randn(10, device=device).numpy()
    nd.manual_seed(7)
    np.testing.assert_array_equal(nd.randn(10, device=device).numpy(), first)
    assert not np.array_equal(first, second)


def test_statistics(device: nd.Device) -> None:
    nd.manual_seed(0)
    u = nd.rand(100_000, low=-2.0, high=3.0, device=device).numpy()
    assert u.min() >= -2.0
    assert u.max() < 3.0
    assert abs(u.mean() - 0.5) < 0.03
    assert abs(u.std() - 5 / np.sqrt(12)) < 0.03
    n = nd.randn(100_000, mean=1.0, std=2.0, dtype="float64", device=device).numpy()
    assert abs(n.mean() - 1.0) < 0.03
    assert abs(n.std() - 2.0) < 0.03
    b = nd.randb(100_000, p=0.25, dtype="float32", device=device).numpy()
    assert set(np.unique(b)) <= {0.0, 1.0}
    assert abs(b.mean() - 0.25) < 0.01


def test_shapes(device: nd.Device) -> None:
    assert nd.rand(device=device).shape == ()
    assert nd.rand(2, 0, device=device).shape == (2, 0)
    assert nd.randn([3, 2], device=device).shape == (3, 2)
