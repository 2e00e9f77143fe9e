"""needle.init: NumPy-seeded numbers as in Needle, statistics, shapes, dtypes, devices; manual_seed."""

# The initializers draw from NumPy's global random state on purpose (as in Needle): so do the checks.
# ruff: noqa: NPY002

from __future__ import annotations

import math

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import init


def test_rand_reproduces_numpy_seeded_numbers(device: nd.Device) -> None:
    np.random.seed(1)
    t = init.rand(3, 4, low=-2.0, high=3.0, device=device)
    np.random.seed(1)
    expected = np.random.rand(3, 4).astype("float32") * np.float32(5.0) + np.float32(-2.0)
    assert t.shape == (3, 4)
    assert t.dtype == "float32"
    assert t.device == device
    assert not t.requires_grad
    np.testing.assert_array_equal(t.numpy(), expected)


def test_randn_reproduces_numpy_seeded_numbers(device: nd.Device) -> None:
    np.random.seed(2)
    t = init.randn(2, 5, mean=1.0, std=2.0, device=device, requires_grad=True)
    np.random.seed(2)
    expected = np.random.randn(2, 5).astype("float32") * np.float32(2.0) + np.float32(1.0)
    np.testing.assert_array_equal(t.numpy(), expected)
    assert t.requires_grad
    assert t.is_leaf


def test_float64_draws_keep_full_precision() -> None:
    np.random.seed(3)
    t = init.randn(4, dtype="float64")
    np.random.seed(3)
    assert t.dtype == "float64"
    np.testing.assert_array_equal(t.numpy(), np.random.randn(4))


def test_randb(device: nd.Device) -> None:
    np.random.seed(4)
    t = init.randb(50, 40, p=0.3, device=device)
    np.random.seed(4)
    expected = np.random.rand(50, 40).astype("float32") <= np.float32(0.3)
    assert t.dtype == "bool"
    np.testing.assert_array_equal(t.numpy(), expected)
    assert 0.25 < t.numpy().mean() < 0.35
    assert init.randb(3, p=1.0, dtype="float32").dtype == "float32"


def test_constant_ones_zeros(device: nd.Device) -> None:
    t = init.constant(2, 3, c=7.5, device=device, dtype="float64")
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), 7.5))
    assert t.dtype == "float64"
    np.testing.assert_array_equal(init.ones(2, device=device).numpy(), [1, 1])
    np.testing.assert_array_equal(init.zeros((2, 2), device=device).numpy(), np.zeros((2, 2)))
    assert init.ones(3, dtype="int32").dtype == "int32"
    assert init.zeros(1, requires_grad=True).requires_grad
    np.testing.assert_array_equal(ndl.ones(2, 2).numpy(), np.ones((2, 2)))
    np.testing.assert_array_equal(ndl.zeros(3).numpy(), np.zeros(3))


def test_like_functions(device: nd.Device) -> None:
    base = ndl.Tensor(np.ones((2, 3)), device=device)
    z = init.zeros_like(base)
    assert z.shape == (2, 3)
    assert z.dtype == "float64"
    assert z.device == device
    assert not z.requires_grad
    o = ndl.ones_like(base, requires_grad=True)
    np.testing.assert_array_equal(o.numpy(), np.ones((2, 3)))
    assert o.requires_grad
    assert ndl.zeros_like(base, dtype="float32").dtype == "float32"


def test_one_hot(device: nd.Device) -> None:
    t = init.one_hot(4, [1, 3, 0], device=device)
    np.testing.assert_array_equal(t.numpy(), np.eye(4)[[1, 3, 0]])
    assert t.dtype == "float32"
    labels = ndl.Tensor(np.array([2, 2]), device=device)
    np.testing.assert_array_equal(init.one_hot(3, labels, device=device).numpy(), np.eye(3)[[2, 2]])


def test_xavier(device: nd.Device) -> None:
    np.random.seed(5)
    t = init.xavier_uniform(300, 200, gain=2.0, device=device)
    a = 2.0 * math.sqrt(6 / 500)
    np.random.seed(5)
    expected = np.random.rand(300, 200).astype("float32") * np.float32(2 * a) + np.float32(-a)
    np.testing.assert_array_equal(t.numpy(), expected)
    assert t.numpy().min() >= -a
    assert t.numpy().max() <= a
    n = init.xavier_normal(300, 200, gain=0.5).numpy()
    assert n.shape == (300, 200)
    assert abs(n.std() - 0.5 * math.sqrt(2 / 500)) < 0.002


def test_kaiming(device: nd.Device) -> None:
    np.random.seed(6)
    t = init.kaiming_uniform(100, 50, device=device)
    bound = math.sqrt(2) * math.sqrt(3 / 100)
    np.random.seed(6)
    expected = np.random.rand(100, 50).astype("float32") * np.float32(2 * bound) + np.float32(-bound)
    np.testing.assert_array_equal(t.numpy(), expected)
    k = init.kaiming_uniform(27, 8, shape=(3, 3, 3, 8)).numpy()
    assert k.shape == (3, 3, 3, 8)
    assert np.abs(k).max() <= math.sqrt(2) * math.sqrt(3 / 27)
    n = init.kaiming_normal(400, 300).numpy()
    assert n.shape == (400, 300)
    assert abs(n.std() - math.sqrt(2) / math.sqrt(400)) < 0.002
    assert abs(n.mean()) < 0.002
    with pytest.raises(ValueError, match="nonlinearity"):
        init.kaiming_uniform(3, 4, nonlinearity="swish")


def test_rand_statistics() -> None:
    np.random.seed(7)
    u = init.rand(100000, low=2.0, high=4.0).numpy()
    assert u.min() >= 2.0
    assert u.max() < 4.0
    assert abs(u.mean() - 3.0) < 0.01
    n = init.randn(100000, mean=-1.0, std=3.0).numpy()
    assert abs(n.mean() + 1.0) < 0.05
    assert abs(n.std() - 3.0) < 0.05


def test_manual_seed_seeds_needle_and_numpy() -> None:
    ndl.manual_seed(42)
    first = init.rand(5).numpy()
    mask = ndl.ops.dropout(ndl.Tensor(np.ones(50)), 0.5).numpy()
    ndl.manual_seed(42)
    np.testing.assert_array_equal(init.rand(5).numpy(), first)
    np.testing.assert_array_equal(ndl.ops.dropout(ndl.Tensor(np.ones(50)), 0.5).numpy(), mask)


def test_num_threads_is_recorded() -> None:
    previous = ndl.get_num_threads()
    ndl.set_num_threads(3)
    assert ndl.get_num_threads() == 3
    ndl.set_num_threads(previous)
    with pytest.raises(ValueError, match="positive"):
        ndl.set_num_threads(0)
