"""needle.init: NumPy-seeded numbers as in Needle, statistics, shapes, dtypes, devices; manual_seed."""

# The initializers draw from NumPy's global random state on purpose (as in Needle): so do the checks.
# ruff: noqa: NPY002

from __future__ import annotations

import math
import threading

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


# ---- the C++ initializers and their sample sources ---------------------------------------------------


def test_normal_initializers_reproduce_numpy_seeded_numbers(device: nd.Device) -> None:
    np.random.seed(8)
    t = init.kaiming_normal(20, 30, nonlinearity="tanh", device=device)
    np.random.seed(8)
    std = (5.0 / 3.0) / math.sqrt(20)
    np.testing.assert_array_equal(t.numpy(), np.random.randn(20, 30).astype("float32") * np.float32(std))
    np.random.seed(9)
    t = init.xavier_normal(6, 4, gain=0.5, dtype="float64", device=device)
    np.random.seed(9)
    np.testing.assert_array_equal(t.numpy(), np.random.randn(6, 4) * (0.5 * math.sqrt(2 / 10)))
    assert t.dtype == "float64"
    np.random.seed(10)
    t = init.kaiming_uniform(7, 3, nonlinearity="leaky_relu", dtype="float64")
    np.random.seed(10)
    bound = math.sqrt(2.0 / (1 + 0.01**2)) * math.sqrt(3 / 7)
    np.testing.assert_array_equal(t.numpy(), np.random.rand(7, 3) * (2 * bound) - bound)
    assert ndl._core.calculate_gain("tanh") == 5.0 / 3.0


class Refused(Exception):
    pass


class RefusingSource(init.SampleSource):
    """Raises for uniform samples, returns no array for normal ones."""

    def uniform(self, shape: tuple[int, ...], dtype: str, device: nd.Device) -> nd.NDArray:
        raise Refused(f"no samples of shape {shape}")

    def normal(self, shape: tuple[int, ...], dtype: str, device: nd.Device) -> nd.NDArray:
        return "not samples"  # type: ignore[return-value]


class ShortSource(init.SampleSource):
    def uniform(self, shape: tuple[int, ...], dtype: str, device: nd.Device) -> nd.NDArray:
        return nd.NDArray(np.zeros(3), device=device, dtype=dtype)

    normal = uniform


def test_a_python_source_that_raises_gives_the_python_exception() -> None:
    source = RefusingSource()
    with pytest.raises(Refused, match=r"no samples of shape \(2, 3\)"):
        ndl._core.init_uniform((2, 3), source=source)
    # Raised inside a C++ layer constructor: the same exception, and the layer is not built.
    with init.sample_source(source), pytest.raises(Refused):
        ndl._core.Linear(2, 3)
    with pytest.raises(TypeError, match="must return an NDArray"):
        ndl._core.init_normal((2,), source=source)
    with pytest.raises(ValueError, match=r"uniform samples of shape \(2, 2\).*got shape \(3,\)"):
        ndl._core.init_kaiming_uniform(2, 2, source=ShortSource())
    # The with block restored the default source.
    assert isinstance(ndl._core.initializer_source(), ndl._core.GeneratorSource)


def test_cpp_layers_draw_from_the_active_source() -> None:
    # Outside a sample_source block, C++ layers draw from Needle's generator (manual_seed) ...
    ndl.manual_seed(3)
    first = ndl._core.Linear(3, 2).weight.numpy()
    ndl.manual_seed(3)
    np.random.seed(0)
    np.testing.assert_array_equal(ndl._core.Linear(3, 2).weight.numpy(), first)
    # ... and inside one from the source: NUMPY_SOURCE gives needle.init's numbers, in Needle's order.
    np.random.seed(5)
    with init.sample_source(init.NUMPY_SOURCE):
        layer = ndl._core.Linear(3, 2)
    np.random.seed(5)
    np.testing.assert_array_equal(layer.weight.numpy(), init.kaiming_uniform(3, 2).numpy())
    assert layer.bias is not None
    np.testing.assert_array_equal(layer.bias.numpy(), init.kaiming_uniform(2, 1).numpy().reshape(1, 2))


def test_layers_built_on_other_threads_draw_from_numpy() -> None:
    results: list[np.ndarray] = []

    def build() -> None:
        np.random.seed(11)
        results.append(ndl.nn.Conv(2, 2, 3).weight.numpy())

    thread = threading.Thread(target=build)
    thread.start()
    thread.join()
    np.random.seed(11)
    np.testing.assert_array_equal(results[0], init.kaiming_uniform(18, 18, shape=(3, 3, 2, 2)).numpy())
