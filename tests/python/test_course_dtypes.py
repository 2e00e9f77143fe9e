"""The dtype of input given without one: float32 for every floating input by default (the course Needle's
NDArray backend), NumPy's dtypes with NEEDLE_BACKEND=np (its NumPy backend); integers and bools keep their
kind either way. Also: a one-element NumPy array as the scalar of a scalar op."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import nn


@pytest.mark.usefixtures("course_dtypes")
@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (np.ones((2, 3)), "float32"),
        (np.float64(1.5), "float32"),
        ([1.5, 2.0], "float32"),
        (2.5, "float32"),
        (np.ones(3, np.float32), "float32"),
        (np.arange(3), "int64"),
        (np.arange(3, dtype=np.int32), "int32"),
        ([1, 2], "int64"),
        (np.array([True, False]), "bool"),
    ],
    ids=repr,
)
def test_default_policy(device: nd.Device, value: object, dtype: str) -> None:
    assert ndl.Tensor(value, device=device).dtype == dtype
    assert nd.array(value, device=device).dtype == dtype
    assert nd.NDArray(value, device=device).dtype == dtype
    np.testing.assert_allclose(nd.array(value, device=device).numpy(), np.asarray(value).astype(dtype))
    # An explicit dtype always wins.
    assert ndl.Tensor(value, device=device, dtype="float64").dtype == "float64"


@pytest.mark.usefixtures("course_dtypes")
def test_float64_numpy_input_meets_float32_layers(device: nd.Device) -> None:
    # Course code feeds NumPy's float64 arrays to float32 layers: they arrive as float32.
    conv = nn.Conv(3, 4, 3, device=device)
    x = ndl.Tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 5)), device=device)
    y = conv(x)
    assert (y.dtype, y.shape) == ("float32", (2, 4, 5, 5))
    lstm = nn.LSTM(3, 2, device=device)
    out, _ = lstm(ndl.Tensor(np.ones((4, 2, 3)), device=device))
    assert out.dtype == "float32"
    # A float32 tensor combined with a float64 NumPy array stays float32.
    assert (ndl.Tensor(np.ones(3), device=device) + np.ones(3)).dtype == "float32"


def _policy_in_a_fresh_process(backend: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NEEDLE_BACKEND"}
    if backend is not None:
        env["NEEDLE_BACKEND"] = backend
    code = "import needle as ndl, numpy as np; print(ndl.backend_selection.BACKEND, ndl.Tensor(np.ones(2)).dtype)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(("backend", "printed"), [(None, "nd float32"), ("nd", "nd float32"), ("np", "np float64")])
def test_needle_backend_chooses_the_policy(backend: str | None, printed: str) -> None:
    result = _policy_in_a_fresh_process(backend)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == printed


def test_an_unknown_needle_backend_is_refused() -> None:
    result = _policy_in_a_fresh_process("torch")
    assert result.returncode != 0
    assert "ValueError: NEEDLE_BACKEND must be 'nd' or 'np', got 'torch'" in result.stderr


def test_policy_names_are_checked() -> None:
    with pytest.raises(ValueError, match='expected "float32" or "numpy", got "float16"'):
        ndl._core.set_float_input_policy("float16")


def test_one_element_numpy_array_as_a_scalar(device: nd.Device) -> None:
    x = ndl.Tensor(np.arange(6.0).reshape(2, 3), device=device)
    scalar = np.array([4.0])
    np.testing.assert_allclose(ndl.ops.divide_scalar(x, scalar).numpy(), np.arange(6.0).reshape(2, 3) / 4.0)
    np.testing.assert_allclose(ndl.ops.add_scalar(x, np.array([[1.0]])).numpy(), np.arange(6.0).reshape(2, 3) + 1)
    with pytest.raises(TypeError):
        ndl.ops.divide_scalar(x, np.array([1.0, 2.0]))
    # Operators keep NumPy's broadcasting for arrays: a 0-d array plus a (1,) array is (1,).
    a = nd.array(np.float64(2.0), device=device)
    assert (a + np.array([5.0])).shape == (1,)


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda d: nn.Conv(3, 4, 3, device=d), (2, 3, 5, 5)),
        (lambda d: nn.LSTM(3, 2, num_layers=2, device=d), (4, 2, 3)),
        (lambda d: nn.RNN(3, 2, device=d), (4, 2, 3)),
        (lambda d: nn.LSTMCell(3, 2, device=d), (2, 3)),
    ],
)
def test_float64_input_to_float32_layers_promotes(device: nd.Device, make: object, shape: tuple[int, ...]) -> None:
    # One policy for mixing float32 and float64, in every op: the wider wins (as in elementwise ops), and each
    # gradient comes back in its own tensor's dtype.
    layer = make(device)  # type: ignore[operator]
    x = ndl.Tensor(np.random.default_rng(1).standard_normal(shape), device=device, dtype="float64")
    out = layer(x)
    first = out[0] if isinstance(out, tuple) else out
    assert first.dtype == "float64"
    first.sum().backward()
    assert x.grad.dtype == "float64"
    assert all(p.grad.dtype == "float32" for p in layer.parameters() if p.grad is not None)
    # The same numbers as the float32 input computed in float32, up to float32's rounding.
    out32 = layer(ndl.Tensor(x.numpy().astype(np.float32), device=device))
    first32 = out32[0] if isinstance(out32, tuple) else out32
    np.testing.assert_allclose(first.numpy(), first32.numpy(), rtol=1e-4, atol=1e-5)
