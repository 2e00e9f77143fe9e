"""Reductions against NumPy: sum, max, min, mean over every subset of axes, keepdims, argmax/argmin."""

import warnings
from itertools import chain, combinations

import numpy as np
import pytest
from ndarray_helpers import ALL_DTYPES, LAYOUTS, NUMERIC_DTYPES, check, make_input

import needle as ndl
from needle import backend_ndarray as nd

SHAPES = [(), (7,), (3, 5), (2, 3, 4), (2, 1, 3, 2), (3, 0, 2)]


def axis_choices(ndim: int) -> list[int | tuple[int, ...] | None]:
    subsets = chain.from_iterable(combinations(range(ndim), k) for k in range(ndim + 1))
    choices: list[int | tuple[int, ...] | None] = [None, *subsets]
    if ndim:
        choices += [-1, 0]
    return choices


def sum_dtype(dtype: str) -> str:
    # PyTorch's rule: integer sums are int64.
    return "int64" if dtype in ("bool", "uint8", "int8", "int32", "int64") else dtype


def tolerant(dtype: str) -> dict[str, float]:
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-12}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_sum_and_mean(
    device: nd.Device, rng: np.random.Generator, dtype: str, shape: tuple[int, ...], layout: str
) -> None:
    x, a = make_input(layout, shape, dtype, rng, device)
    for axis in axis_choices(len(shape)):
        for keepdims in (False, True):
            s = a.sum(axis=axis, keepdims=keepdims)
            out = sum_dtype(dtype)
            expected = np.sum(x.astype(out), axis=axis, keepdims=keepdims)
            assert s.dtype == out, (axis, keepdims)
            assert s.shape == expected.shape, (axis, keepdims)
            np.testing.assert_allclose(s.numpy(), expected, **tolerant(out))
            if dtype == "bool":
                continue
            m = nd.mean(a, axis=axis, keepdims=keepdims)
            mean_out = dtype if dtype.startswith("float") else "float32"
            with warnings.catch_warnings():  # the mean of an empty slice is NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = np.mean(x.astype("float64"), axis=axis, keepdims=keepdims)
            assert m.dtype == mean_out, (axis, keepdims)
            assert m.shape == expected.shape, (axis, keepdims)
            np.testing.assert_allclose(m.numpy(), expected, **tolerant(mean_out))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [s for s in SHAPES if 0 not in s], ids=str)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_max_min(device: nd.Device, rng: np.random.Generator, dtype: str, shape: tuple[int, ...], layout: str) -> None:
    x, a = make_input(layout, shape, dtype, rng, device)
    for axis in axis_choices(len(shape)):
        for keepdims in (False, True):
            check(a.max(axis=axis, keepdims=keepdims), np.max(x, axis=axis, keepdims=keepdims), dtype)
            check(nd.min(a, axis=axis, keepdims=keepdims), np.min(x, axis=axis, keepdims=keepdims), dtype)


def test_max_of_empty_raises(device: nd.Device) -> None:
    a = nd.NDArray(np.zeros((3, 0)), device=device)
    with pytest.raises(ValueError, match=r"max.*\(3, 0\)|max.*empty"):
        a.max()
    check(a.max(axis=0), np.zeros((0,)), "float64")


def test_summation_alias(device: nd.Device) -> None:
    x = np.arange(12.0).reshape(3, 4)
    check(nd.summation(nd.NDArray(x, device=device), axis=(0, 1)), np.array(66.0), "float64")
    check(nd.sum(nd.NDArray(x, device=device), 1, True), x.sum(1, keepdims=True), "float64")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (1, 1)], ids=str)
@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_argmax_argmin(
    device: nd.Device, rng: np.random.Generator, dtype: str, shape: tuple[int, ...], layout: str
) -> None:
    x, a = make_input(layout, shape, dtype, rng, device)
    if dtype.startswith("int"):  # ties: the first index wins
        x, a = x % 3, nd.NDArray(x % 3, device=device)
    check(a.argmax(), np.argmax(x), "int64")
    check(nd.argmin(a), np.argmin(x), "int64")
    check(a.argmax(keepdims=True), np.argmax(x, keepdims=True), "int64")
    for axis in range(-len(shape), len(shape)):
        for keepdims in (False, True):
            check(nd.argmax(a, axis=axis, keepdims=keepdims), np.argmax(x, axis=axis, keepdims=keepdims), "int64")
            check(a.argmin(axis=axis, keepdims=keepdims), np.argmin(x, axis=axis, keepdims=keepdims), "int64")


def test_argmax_nan_counts_as_largest(device: nd.Device) -> None:
    x = np.array([1.0, np.nan, 3.0, np.nan], np.float32)
    check(nd.argmax(nd.NDArray(x, device=device)), np.argmax(x), "int64")
    check(nd.argmin(nd.NDArray(x, device=device)), np.argmin(x), "int64")


@pytest.mark.parametrize("axes", [(0,), (0, 1)])
def test_logsumexp_gradient_where_float32_rounds_the_result(device: nd.Device, axes: tuple[int, ...]) -> None:
    # float32 stores logsumexp([1e9, 1e9]) = 1e9 + log 2 as 1e9; the gradient (the softmax) must still be 0.5.
    values = np.array([[1e10, 1e9, 1e8, -10], [1e-10, 1e9, 1e8, -10]])
    x = ndl.Tensor(values, device=device, dtype="float32", requires_grad=True)
    ndl.ops.logsumexp(x, axes=axes).sum().backward()
    shifted = np.exp(values - values.max(axis=axes, keepdims=True))
    np.testing.assert_allclose(x.grad.numpy(), shifted / shifted.sum(axis=axes, keepdims=True), rtol=1e-6)
