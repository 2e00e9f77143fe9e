"""matmul, flip, pad, stack, concat, split, gather, scatter_add against NumPy."""

import numpy as np
import pytest
from ndarray_helpers import ALL_DTYPES, NUMERIC_DTYPES, check, make_input, promote, random_array

from needle import backend_ndarray as nd

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((1, 1), (1, 1)),
    ((7,), (7,)),
    ((5,), (5, 3)),
    ((2, 6), (6,)),
    ((2, 3, 4), (4, 5)),
    ((2, 1, 3, 5, 4), (4, 6)),
    ((4, 3, 7), (7,)),
    ((2, 0, 4), (4, 3)),
    ((3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((0, 3), (3, 4)),
    ((3, 0), (0, 2)),
    ((17, 33), (33, 9)),
    ((65, 70), (70, 31)),
]


@pytest.mark.parametrize(("shape_a", "shape_b"), MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_matmul(
    device: nd.Device, rng: np.random.Generator, dtype: str, shape_a: tuple[int, ...], shape_b: tuple[int, ...]
) -> None:
    x = random_array(shape_a, dtype, rng)
    y = random_array(shape_b, dtype, rng)
    a, b = nd.NDArray(x, device=device), nd.NDArray(y, device=device)
    expected = np.matmul(x.astype("float64"), y.astype("float64"))
    if dtype in ("int8", "uint8"):
        # Their products overflow: integer arithmetic wraps around (modulo 256), as in NumPy and PyTorch.
        expected = np.matmul(x.astype("int64"), y.astype("int64")).astype(dtype).astype("float64")
    result = a @ b
    assert result.dtype == dtype
    assert result.shape == expected.shape
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-10}
    np.testing.assert_allclose(result.numpy(), expected, **tol)
    np.testing.assert_allclose(nd.matmul(a, b).numpy(), expected, **tol)


@pytest.mark.parametrize("layout", ["permuted", "strided", "broadcast"])
def test_matmul_non_contiguous(device: nd.Device, rng: np.random.Generator, layout: str) -> None:
    x, a = make_input(layout, (2, 5, 6), "float32", rng, device)
    y, b = make_input("permuted", (6, 3), "float32", rng, device)
    np.testing.assert_allclose((a @ b).numpy(), x @ y, rtol=1e-5, atol=1e-5)
    t = a.permute((0, 2, 1))  # transposed operand
    np.testing.assert_allclose((t @ a).numpy(), np.swapaxes(x, 1, 2) @ x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", ["contiguous", "sliced_rows", "size_1_axis", "permuted_batch", "broadcast_batch"])
def test_matmul_of_a_batch_with_one_matrix(device: nd.Device, rng: np.random.Generator, layout: str) -> None:
    # x (..., m, k) @ W (k, n): rows evenly spaced in memory are multiplied as one matrix, others per matrix.
    base = rng.standard_normal((3, 5, 9)).astype("float32")
    w = rng.standard_normal((6, 4)).astype("float32")
    a = nd.NDArray(base, device=device)
    views = {
        "contiguous": (base[:, :, :6], a[:, :, :6]),  # rows 9 apart, k = 6
        "sliced_rows": (base[:, ::2, 2:8], a[:, ::2, 2:8]),
        "size_1_axis": (base[1:2, :, :6], a[1:2, :, :6]),
        "permuted_batch": (base[:, :, :6].transpose(1, 0, 2), a[:, :, :6].permute((1, 0, 2))),
        "broadcast_batch": (
            np.broadcast_to(base[:1, :, :6], (4, 5, 6)),
            a[:1, :, :6].broadcast_to((4, 5, 6)),
        ),
    }
    x, view = views[layout]
    b = nd.NDArray(w, device=device)
    np.testing.assert_allclose((view @ b).numpy(), x @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose((view @ b[:, 1]).numpy(), x @ w[:, 1], rtol=1e-5, atol=1e-5)


def test_matmul_promotes(device: nd.Device) -> None:
    a = nd.NDArray(np.ones((2, 3), np.int32), device=device)
    b = nd.NDArray(np.ones((3, 2), np.float64), device=device)
    check(a @ b, np.full((2, 2), 3.0), "float64")


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("axes", [(0,), (1,), (0, 2), (0, 1, 2), (-1,), None], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "permuted", "strided"])
def test_flip(
    device: nd.Device, rng: np.random.Generator, dtype: str, axes: tuple[int, ...] | None, layout: str
) -> None:
    x, a = make_input(layout, (3, 4, 5), dtype, rng, device)
    f = a.flip(axes)
    check(f, np.flip(x, axes), dtype)
    assert f.is_compact()
    check(nd.flip(a, axes), np.flip(x, axes), dtype)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("pad_width", [((0, 0), (0, 0)), ((1, 2), (0, 3)), ((0, 1), (2, 0)), ((3, 3), (1, 1))], ids=str)
def test_pad(device: nd.Device, rng: np.random.Generator, dtype: str, pad_width: tuple[tuple[int, int], ...]) -> None:
    x, a = make_input("permuted", (3, 4), dtype, rng, device)
    check(a.pad(pad_width), np.pad(x, pad_width), dtype)
    check(nd.pad(a, pad_width, value=1), np.pad(x, pad_width, constant_values=1), dtype)
    y = random_array((2, 3, 4, 2), dtype, rng)
    nhwc = ((0, 0), (1, 1), (1, 1), (0, 0))
    check(nd.NDArray(y, device=device).pad(nhwc), np.pad(y, nhwc), dtype)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(device: nd.Device, rng: np.random.Generator, dtype: str, axis: int) -> None:
    xs = [random_array((3, 4), dtype, rng) for _ in range(3)]
    arrays = [nd.NDArray(x, device=device) for x in xs]
    arrays[1] = arrays[1].permute((1, 0)).compact().permute((1, 0))
    check(nd.stack(arrays, axis=axis), np.stack(xs, axis=axis), dtype)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(device: nd.Device, rng: np.random.Generator, axis: int) -> None:
    shapes = [(2, 3), (2, 3), (2, 3)]
    if axis == 0:
        shapes = [(1, 3), (4, 3), (0, 3)]
    elif axis in (1, -1):
        shapes = [(2, 1), (2, 5), (2, 2)]
    dtypes = ["int32", "float32", "int64"]
    xs = [random_array(s, d, rng) for s, d in zip(shapes, dtypes, strict=True)]
    result = nd.concat([nd.NDArray(x, device=device) for x in xs], axis=axis)
    check(result, np.concatenate([x.astype("float32") for x in xs], axis=axis), "float32")


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_split_needle(device: nd.Device, rng: np.random.Generator, axis: int) -> None:
    x = random_array((2, 3, 4), "float64", rng)
    a = nd.NDArray(x, device=device)
    parts = nd.split(a, axis)
    assert len(parts) == x.shape[axis]
    for i, p in enumerate(parts):
        check(p, np.take(x, i, axis=axis))
        assert p.shares_memory(a)


def test_split_sizes(device: nd.Device, rng: np.random.Generator) -> None:
    x = random_array((4, 7), "int32", rng)
    a = nd.NDArray(x, device=device)
    parts = nd.split(a, [2, 0, 5], axis=1)
    expected = np.split(x, [2, 2], axis=1)
    assert [p.shape for p in parts] == [e.shape for e in expected]
    for p, e in zip(parts, expected, strict=True):
        check(p, e)
    with pytest.raises(ValueError, match=r"split.*7"):
        nd.split(a, [2, 2], axis=1)


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather(device: nd.Device, rng: np.random.Generator, dtype: str, axis: int) -> None:
    x = random_array((4, 5), dtype, rng)
    index_shape = (3, 5) if axis == 0 else (4, 2)
    n = x.shape[axis]
    index = rng.integers(-n, n, size=index_shape)
    result = nd.gather(nd.NDArray(x, device=device), axis, nd.NDArray(index, device=device))
    check(result, np.take_along_axis(x, index % n, axis=axis), dtype)


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
@pytest.mark.parametrize("axis", [0, 1])
def test_scatter_add(device: nd.Device, rng: np.random.Generator, dtype: str, axis: int) -> None:
    base = random_array((4, 5), dtype, rng)
    src_shape = (6, 5) if axis == 0 else (4, 3)
    src = random_array(src_shape, dtype, rng)
    index = rng.integers(0, base.shape[axis], size=src_shape)
    expected = base.copy()
    for pos in np.ndindex(*src_shape):
        target = list(pos)
        target[axis] = index[pos]
        expected[tuple(target)] += src[pos]
    a = nd.NDArray(base, device=device)
    result = nd.scatter_add(a, axis, nd.NDArray(index, device=device), nd.NDArray(src, device=device))
    check(result, expected, dtype)
    check(a, base, dtype)  # the input is not modified


def test_where_promotes(device: nd.Device) -> None:
    c = nd.NDArray([True, False], device=device)
    a = nd.NDArray(np.array([1, 2], np.int32), device=device)
    b = nd.NDArray(np.array([0.5, 0.25], np.float32), device=device)
    check(nd.where(c, a, b), np.array([1.0, 0.25]), promote("int32", "float32"))
