"""Helpers of the NDArray tests: devices, dtypes, random inputs in several memory layouts, comparisons."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from needle import backend_ndarray as nd

# Device names (not Device objects: module-level extension objects can outlive the extension at exit).
DEVICES = ["ref", "cpu"]
ALL_DTYPES = ["float32", "float64", "int32", "int64", "int8", "uint8", "bool"]
NUMERIC_DTYPES = ["float32", "float64", "int32", "int64", "int8", "uint8"]
FLOAT_DTYPES = ["float32", "float64"]
# Odd sizes, size-0 and size-1 dimensions, 0-d.
SHAPES = [(), (1,), (7,), (0,), (3, 5), (1, 4), (4, 0, 3), (2, 3, 5), (2, 1, 3, 4)]
LAYOUTS = ["contiguous", "permuted", "strided", "broadcast"]


def tolerances(dtype: str) -> dict[str, float]:
    if dtype == "float32":
        return {"rtol": 2e-5, "atol": 1e-6}
    if dtype == "float64":
        return {"rtol": 1e-12, "atol": 1e-12}
    return {"rtol": 0, "atol": 0}


def random_array(shape: Sequence[int], dtype: str, rng: np.random.Generator, kind: str = "any") -> np.ndarray:
    """Random values of ``dtype``: normal floats, small ints, coin-flip bools. kind="positive" keeps them > 0."""
    shape = tuple(shape)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith(("int", "uint")):
        low = 1 if kind == "positive" else (0 if dtype == "uint8" else -9)
        return rng.integers(low, 10, size=shape).astype(dtype)
    values = rng.standard_normal(shape)
    if kind == "positive":
        values = np.abs(values) + 0.1
    return values.astype(dtype)


def make_input(
    layout: str,
    shape: Sequence[int],
    dtype: str,
    rng: np.random.Generator,
    device: nd.Device,
    kind: str = "any",
) -> tuple[np.ndarray, nd.NDArray]:
    """The same random values as a NumPy array and as an NDArray in the requested memory layout."""
    shape = tuple(shape)
    if layout == "contiguous" or len(shape) == 0:
        x = random_array(shape, dtype, rng, kind)
        return x, nd.NDArray(x, device=device)
    if layout == "permuted":
        x = random_array(shape, dtype, rng, kind)
        reverse = tuple(reversed(range(len(shape))))
        base = np.ascontiguousarray(np.transpose(x, reverse))
        return x, nd.NDArray(base, device=device).permute(reverse)
    if layout == "strided":
        big_shape = tuple(2 * d for d in shape)
        big = random_array(big_shape, dtype, rng, kind)
        key = tuple([slice(None, None, -2)] + [slice(None, None, 2)] * (len(shape) - 1))
        return big[key], nd.NDArray(big, device=device)[key]
    if layout == "broadcast":
        small_shape = tuple(1 if i % 2 == 0 else d for i, d in enumerate(shape))
        small = random_array(small_shape, dtype, rng, kind)
        return np.broadcast_to(small, shape), nd.NDArray(small, device=device).broadcast_to(shape)
    raise AssertionError(layout)


def check(actual: nd.NDArray, expected: np.ndarray | float | bool, dtype: str | None = None) -> None:
    """actual matches expected in shape, dtype (expected's, or ``dtype``) and values."""
    expected = np.asarray(expected)
    dtype = dtype or str(expected.dtype)
    assert isinstance(actual, nd.NDArray)
    assert actual.dtype == dtype, f"dtype {actual.dtype} != {dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    values = actual.numpy()
    assert values.dtype == np.dtype(dtype)
    np.testing.assert_allclose(values, expected.astype(dtype), **tolerances(dtype))


def promote(a: str, b: str) -> str:
    """PyTorch's promotion of two array dtypes: bool < integers < floating; within a category the wider wins
    (uint8 with int8: int32, Needle having no int16)."""
    order = ["bool", "uint8", "int8", "int32", "int64", "float32", "float64"]
    category = {"bool": 0, "uint8": 1, "int8": 1, "int32": 1, "int64": 1, "float32": 2, "float64": 2}
    if {a, b} == {"uint8", "int8"}:
        return "int32"
    if category[a] != category[b]:
        return a if category[a] > category[b] else b
    return a if order.index(a) >= order.index(b) else b


def promote_scalar(array_dtype: str, scalar: bool | int | float) -> str:
    """PyTorch's weak scalars: the scalar only lifts the category (int32 + 2 -> int32, int32 + 2.5 -> float32)."""
    if isinstance(scalar, bool):
        return array_dtype
    if isinstance(scalar, int):
        return "int64" if array_dtype == "bool" else array_dtype
    return array_dtype if array_dtype.startswith("float") else "float32"


def float_result(dtype: str) -> str:
    return dtype if dtype.startswith("float") else "float32"
