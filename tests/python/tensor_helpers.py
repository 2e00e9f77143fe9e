"""Helpers of the Tensor and autograd tests: tensors in several memory layouts, forward checks against
NumPy, and gradient checks against central finite differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from ndarray_helpers import make_input, tolerances

import needle as ndl
from needle import backend_ndarray as nd


def as_tensor(x: np.ndarray, device: nd.Device, layout: str = "contiguous", requires_grad: bool = False) -> ndl.Tensor:
    """A leaf tensor with the values of ``x`` whose NDArray has the requested memory layout (a view for
    "permuted" and "strided", so ops see non-contiguous inputs)."""
    x = np.asarray(x)
    if layout == "contiguous" or x.ndim == 0:
        return ndl.Tensor(x, device=device, requires_grad=requires_grad)
    if layout == "permuted":
        reverse = tuple(reversed(range(x.ndim)))
        view = nd.NDArray(np.ascontiguousarray(np.transpose(x, reverse)), device=device).permute(reverse)
    elif layout == "strided":
        big = np.zeros(tuple(2 * d for d in x.shape), dtype=x.dtype)
        key = tuple(slice(None, None, 2) for _ in x.shape)
        big[key] = x
        view = nd.NDArray(big, device=device)[key]
    else:
        raise AssertionError(layout)
    return ndl.Tensor.make_const(view, requires_grad=requires_grad)


def random_tensor(
    shape: Sequence[int],
    rng: np.random.Generator,
    device: nd.Device,
    dtype: str = "float32",
    layout: str = "contiguous",
    kind: str = "any",
) -> tuple[np.ndarray, ndl.Tensor]:
    """Random values as a NumPy array and as a tensor (no grad) in the requested layout."""
    if layout == "broadcast":
        x, array = make_input(layout, shape, dtype, rng, device, kind)
        return np.array(x), ndl.Tensor.make_const(array)
    x, _ = make_input("contiguous", shape, dtype, rng, device, kind)
    return x, as_tensor(x, device, layout)


def check(actual: ndl.Tensor, expected: np.ndarray | float, dtype: str | None = None, **tol: float) -> None:
    """actual is a Tensor matching expected in shape, dtype (expected's, or ``dtype``) and values."""
    expected = np.asarray(expected)
    dtype = dtype or str(expected.dtype)
    assert isinstance(actual, ndl.Tensor)
    assert actual.dtype == dtype, f"dtype {actual.dtype} != {dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual.numpy(), expected.astype(dtype), **(tol or tolerances(dtype)))


def numerical_gradient(
    f: Callable[..., ndl.Tensor], arrays: list[np.ndarray], weights: np.ndarray, device: nd.Device, eps: float
) -> list[np.ndarray]:
    """d sum(f(*arrays) * weights) / d arrays[i], by central differences (float64)."""

    def value(inputs: list[np.ndarray]) -> float:
        with ndl.no_grad():
            out = f(*[ndl.Tensor(a, device=device) for a in inputs])
        return float(np.sum(out.numpy() * weights))

    grads = []
    for i, a in enumerate(arrays):
        grad = np.zeros_like(a)
        for index in np.ndindex(a.shape):
            plus = [b.copy() for b in arrays]
            minus = [b.copy() for b in arrays]
            plus[i][index] += eps
            minus[i][index] -= eps
            grad[index] = (value(plus) - value(minus)) / (2 * eps)
        grads.append(grad)
    return grads


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def gradient_check(
    f: Callable[..., ndl.Tensor],
    *arrays: np.ndarray,
    device: nd.Device,
    rng: np.random.Generator | None = None,
    eps: float = 1e-6,
    tol: float = 1e-6,
    layout: str = "contiguous",
) -> list[np.ndarray]:
    """The gradient of every input of ``f`` (Tensors in, a Tensor out) by backward() matches central finite
    differences in float64 (relative error < tol). The output is weighted by random values so that the
    backward pass sees a non-trivial out_grad. Returns the analytic gradients."""
    rng = rng or np.random.default_rng(0)
    inputs = [np.asarray(a, dtype=np.float64) for a in arrays]
    tensors = [as_tensor(a, device, layout, requires_grad=True) for a in inputs]
    out = f(*tensors)
    assert out.dtype == "float64", out.dtype
    weights = rng.standard_normal(out.shape)
    out.backward(ndl.Tensor(weights, device=device, requires_grad=False))
    numeric = numerical_gradient(f, inputs, weights, device, eps)
    analytic = []
    for i, (t, expected) in enumerate(zip(tensors, numeric, strict=True)):
        assert t.grad is not None, f"input {i} received no gradient"
        assert t.grad.shape == t.shape
        assert t.grad.dtype == "float64"
        assert t.grad.device == device
        got = t.grad.numpy()
        error = relative_error(got, expected)
        assert error < tol, f"input {i}: relative error {error:.3g}\nanalytic\n{got}\nnumeric\n{expected}"
        analytic.append(got)
    return analytic
