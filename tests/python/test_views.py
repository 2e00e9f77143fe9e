"""Views (no copies) against NumPy: reshape, permute, broadcast_to, getitem, setitem, as_strided, compact."""

import numpy as np
import pytest
from ndarray_helpers import ALL_DTYPES, LAYOUTS, check, make_input, random_array

from needle import backend_ndarray as nd


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_reshape_view_shares_memory(device: nd.Device, rng: np.random.Generator, dtype: str) -> None:
    x = random_array((2, 3, 4), dtype, rng)
    a = nd.NDArray(x, device=device)
    for shape in [(6, 4), (24,), (4, -1), (2, 3, 2, 2), (1, 24, 1), (-1,)]:
        b = a.reshape(shape)
        check(b, x.reshape(shape), dtype)
        assert b.shares_memory(a)
    b = a.reshape((4, 6))
    b[0, 0] = 1
    assert a.numpy()[0, 0, 0] == 1


def test_reshape_of_non_contiguous_copies(device: nd.Device, rng: np.random.Generator) -> None:
    x = random_array((3, 4), "float32", rng)
    t = nd.NDArray(x, device=device).permute((1, 0))
    r = t.reshape((12,))
    check(r, x.T.reshape(12))
    assert r.is_compact()
    assert not r.shares_memory(t)
    check(nd.reshape(t, (2, 6)), x.T.reshape(2, 6))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_permute(device: nd.Device, rng: np.random.Generator, layout: str) -> None:
    x, a = make_input(layout, (2, 3, 5), "float64", rng, device)
    for axes in [(0, 1, 2), (2, 0, 1), (1, 2, 0), (-1, 0, 1)]:
        p = a.permute(axes)
        check(p, np.transpose(x, axes))
        assert p.shares_memory(a)
    check(nd.permute(a, (2, 1, 0)), x.transpose(2, 1, 0))
    check(a.swapaxes(0, 2), x.swapaxes(0, 2))
    check(nd.swapaxes(a, -1, -2), x.swapaxes(-1, -2))


def test_permute_strides(device: nd.Device) -> None:
    a = nd.NDArray(np.zeros((2, 3, 4), np.float32), device=device)
    p = a.permute((2, 0, 1))
    assert p.strides == (1, 12, 4)
    assert not p.is_compact()
    c = p.compact()
    assert c.is_compact()
    assert c.strides == (6, 3, 1)
    assert a.compact().shares_memory(a)


@pytest.mark.parametrize(
    ("shape", "target"),
    [((3, 1), (3, 4)), ((4,), (2, 3, 4)), ((), (2, 2)), ((1, 1), (0, 5)), ((2, 1, 3), (2, 4, 3))],
    ids=str,
)
def test_broadcast_to(
    device: nd.Device, rng: np.random.Generator, shape: tuple[int, ...], target: tuple[int, ...]
) -> None:
    x = random_array(shape, "int32", rng)
    a = nd.NDArray(x, device=device)
    b = a.broadcast_to(target)
    check(b, np.broadcast_to(x, target), "int32")
    assert b.shares_memory(a)
    check(nd.broadcast_to(a, target), np.broadcast_to(x, target), "int32")
    assert 0 in b.strides or b.size == 0 or b.shape == a.shape


KEYS = [
    0,
    -1,
    2,
    slice(None),
    slice(1, None),
    slice(None, None, 2),
    slice(None, None, -1),
    slice(-2, None),
    slice(4, 1, -2),
    slice(100, None),
    slice(-100, 2),
    (1, 2),
    (-1, -2, -3),
    (slice(None), 1),
    (..., 0),
    (0, ...),
    (None, 1),
    (slice(None), None, slice(None, None, -2)),
    (..., None),
    (1, slice(2, None, 3), ...),
    (slice(None, None, -1), slice(None, None, -1), slice(None, None, -1)),
    (),
    (None,),
    (0, 0, 0),
]


@pytest.mark.parametrize("key", KEYS, ids=repr)
@pytest.mark.parametrize("layout", ["contiguous", "permuted", "strided"])
def test_getitem(device: nd.Device, rng: np.random.Generator, key: object, layout: str) -> None:
    x, a = make_input(layout, (3, 4, 5), "float32", rng, device)
    b = a[key]  # type: ignore[index]
    check(b, x[key])  # type: ignore[index]
    assert b.shares_memory(a)


def test_getitem_numpy_integers(device: nd.Device) -> None:
    a = nd.NDArray(np.arange(10), device=device)
    check(a[np.int64(3)], np.array(3))
    check(a[np.int32(1) : np.int64(8) : np.int16(3)], np.arange(10)[1:8:3])


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ((slice(None), 1), 7.0),
        ((0,), np.arange(5.0)),
        ((slice(1, None), slice(None, None, 2)), np.ones((2, 1))),
        ((..., 2), [[1.0], [2.0], [3.0]]),
        ((1, 3), np.float64(2.5)),
        ((slice(None, None, -1),), 0.5),
        ((None, 0, 0), -1.0),
    ],
    ids=repr,
)
@pytest.mark.parametrize("layout", ["contiguous", "permuted"])
def test_setitem(
    device: nd.Device, rng: np.random.Generator, key: tuple[object, ...], value: object, layout: str
) -> None:
    x, a = make_input(layout, (3, 4, 5), "float32", rng, device)
    x = x.copy()
    x[key] = value
    a[key] = value  # type: ignore[index]
    check(a, x)


def test_setitem_from_ndarray_converts_and_broadcasts(device: nd.Device) -> None:
    a = nd.NDArray(np.zeros((3, 4), np.int32), device=device)
    a[1:, :] = nd.NDArray([1.9, 2.0, -3.5, 4.0], device=device)
    expected = np.zeros((3, 4), np.int32)
    expected[1:, :] = np.array([1.9, 2.0, -3.5, 4.0]).astype(np.int32)
    check(a, expected)
    view = a[::2]
    view[...] = 9
    expected[::2] = 9
    check(a, expected)


def test_setitem_through_views_writes_storage(device: nd.Device) -> None:
    a = nd.NDArray(np.zeros((4, 6), np.float32), device=device)
    t = a.permute((1, 0))[::2, 1:3]
    t[:] = 1.0
    expected = np.zeros((4, 6), np.float32)
    expected.T[::2, 1:3] = 1.0
    check(a, expected)


def test_as_strided(device: nd.Device) -> None:
    x = np.arange(12, dtype=np.float32)
    a = nd.NDArray(x, device=device)
    s = a.as_strided((3, 3), (3, 1))
    check(s, np.lib.stride_tricks.as_strided(x, (3, 3), (12, 4)))
    assert s.shares_memory(a)
    w = a.as_strided((5, 3), (2, 1))  # overlapping windows
    check(w, np.lib.stride_tricks.as_strided(x, (5, 3), (8, 4)))
    z = a.as_strided((4, 2), (0, 1), offset=3)
    check(z, np.broadcast_to(x[3:5], (4, 2)))
    assert z.offset == 3
    assert not w.is_compact()
    check(w.compact(), np.lib.stride_tricks.as_strided(x, (5, 3), (8, 4)).copy())


def test_squeeze_unsqueeze(device: nd.Device) -> None:
    x = np.arange(6.0).reshape(1, 2, 1, 3)
    a = nd.NDArray(x, device=device)
    check(a.squeeze(), x.squeeze(), "float64")
    check(a.squeeze(2), x.squeeze(2), "float64")
    check(a.unsqueeze(-1), x[..., None], "float64")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_is_compact_and_compact(device: nd.Device, rng: np.random.Generator, layout: str) -> None:
    x, a = make_input(layout, (3, 4), "int64", rng, device)
    assert a.is_compact() == (layout == "contiguous")
    c = a.compact()
    assert c.is_compact()
    check(c, x)
    assert c.shares_memory(a) == (layout == "contiguous")
    assert nd.NDArray(np.zeros((1, 5)), device=device).permute((1, 0)).is_compact()
