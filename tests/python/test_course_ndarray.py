"""The course Needle's NDArray internals: ``_handle`` and the underscored metadata, ``make``, ``flat``,
``process_slice``, ``compact`` returning the array itself, Python subclasses, and the device functions on
handles (``device.ewise_add(a._handle, b._handle, out._handle)``), each against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from needle import backend_ndarray as nd


def test_handle_is_shared_by_views_and_kept_by_writes(device: nd.Device) -> None:
    a = nd.array(np.arange(24.0).reshape(2, 3, 4), device=device)
    ptr = a._handle.ptr()
    views = [a.permute((2, 0, 1)), a.reshape((6, 4)), a[1, :, 1:3], a[:1].broadcast_to((5, 3, 4))]
    assert all(view._handle.ptr() == ptr for view in views)
    a[0, 1, :] = 7.0
    a[1] = nd.array(np.ones((3, 4)), device=device)
    assert a._handle.ptr() == ptr
    assert a._handle.size == 24
    assert a.copy()._handle.ptr() != ptr


def test_underscored_metadata(device: nd.Device) -> None:
    a = nd.array(np.zeros((4, 5)), device=device)[1:3, ::2]
    assert (a._shape, a._strides, a._offset) == ((2, 3), (5, 2), 5)
    assert a._device == device


def test_make_views_a_handle_and_writes_through(device: nd.Device) -> None:
    base = nd.array(np.arange(12.0), device=device)
    view = nd.NDArray.make((2, 3), strides=(1, 2), device=device, handle=base._handle, offset=4)
    np.testing.assert_array_equal(view.numpy(), np.arange(12.0)[4:10].reshape(3, 2).T)
    view[0, 0] = -1.0
    assert base.numpy()[4] == -1.0
    fresh = nd.NDArray.make((3, 2), device=device)
    assert (fresh.shape, fresh.dtype, fresh.is_compact(), fresh.device) == ((3, 2), "float32", True, device)


def test_make_refuses_what_it_cannot_build(device: nd.Device) -> None:
    base = nd.array(np.arange(4.0), device=device)
    with pytest.raises(ValueError, match="strides and offset need a handle"):
        nd.NDArray.make((2,), strides=(2,), device=device)
    with pytest.raises(ValueError, match=r"^NDArray\.make: shape \(3,\) with strides \(2,\) .* outside the storage"):
        nd.NDArray.make((3,), strides=(2,), handle=base._handle)  # past the end of the storage
    other = nd.ref() if device != nd.ref() else nd.cpu()
    with pytest.raises(ValueError, match=r"NDArray\.make: the handle lives on"):
        nd.NDArray.make((2,), device=other, handle=base._handle)


def test_flat_is_a_writable_view(device: nd.Device) -> None:
    # The course's gradient checks perturb inputs in place this way.
    a = nd.array(np.arange(6.0).reshape(2, 3), device=device)
    a.flat[4] += 0.5
    a.flat[0] -= 2.0
    np.testing.assert_array_equal(a.numpy(), [[-2.0, 1.0, 2.0], [3.0, 4.5, 5.0]])
    assert a.flat.shape == (6,)
    with pytest.raises(ValueError, match=r"NDArray.flat: the array of shape \(3, 2\) .* not compact"):
        _ = a.permute((1, 0)).flat


@pytest.mark.parametrize(
    "sl", [slice(None), slice(1, None), slice(None, -1), slice(-3, 4), slice(0, 9, 2), slice(4, 1, -1)]
)
def test_process_slice_follows_python(sl: slice) -> None:
    a = nd.array(np.zeros((2, 5)))
    out = a.process_slice(sl, 1)
    assert (out.start, out.stop, out.step) == sl.indices(5)
    assert list(range(5))[out] == list(range(5))[sl]
    with pytest.raises(IndexError, match="axis 2 is out of range"):
        a.process_slice(sl, 2)


def test_compact_returns_the_array_itself_when_compact(device: nd.Device) -> None:
    a = nd.array(np.ones((3, 4)), device=device)
    assert a.compact() is a
    t = a.permute((1, 0))
    c = t.compact()
    assert c is not t
    assert c.is_compact()
    assert not c.shares_memory(a)


def test_python_subclasses_keep_their_methods() -> None:
    class Shaped(nd.NDArray):
        def __getitem__(self, key: object) -> object:
            return self.shape, key

    s = Shaped(np.ones((2, 3)))
    assert s[1:2] == ((2, 3), slice(1, 2))
    assert isinstance(s + 1, nd.NDArray)


def _array(values: np.ndarray, device: nd.Device) -> nd.NDArray:
    return nd.array(values.astype(np.float32), device=device)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("ewise_add", np.add),
        ("ewise_mul", np.multiply),
        ("ewise_div", np.divide),
        ("ewise_maximum", np.maximum),
        ("ewise_eq", np.equal),
        ("ewise_ge", np.greater_equal),
    ],
)
def test_device_ewise_functions(device: nd.Device, rng: np.random.Generator, name: str, reference: object) -> None:
    x, y = rng.standard_normal((2, 7)), rng.standard_normal((2, 7))
    y[:, 0] = x[:, 0]  # some equal pairs for eq/ge
    a, b, out = _array(x, device), _array(y, device), nd.NDArray.make((2, 7), device=device)
    getattr(device, name)(a._handle, b._handle, out._handle)
    np.testing.assert_allclose(out.numpy(), reference(x.astype(np.float32), y.astype(np.float32)), rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("scalar_add", np.add),
        ("scalar_mul", np.multiply),
        ("scalar_div", np.divide),
        ("scalar_power", np.power),
        ("scalar_maximum", np.maximum),
        ("scalar_eq", np.equal),
        ("scalar_ge", np.greater_equal),
    ],
)
def test_device_scalar_functions(device: nd.Device, rng: np.random.Generator, name: str, reference: object) -> None:
    x = np.abs(rng.standard_normal(9)) + 0.5
    x[3] = 2.0
    a, out = _array(x, device), nd.NDArray.make((9,), device=device)
    getattr(device, name)(a._handle, 2.0, out._handle)
    np.testing.assert_allclose(out.numpy(), reference(x.astype(np.float32), np.float32(2.0)), rtol=1e-6)


@pytest.mark.parametrize(("name", "reference"), [("ewise_log", np.log), ("ewise_exp", np.exp), ("ewise_tanh", np.tanh)])
def test_device_unary_functions(device: nd.Device, rng: np.random.Generator, name: str, reference: object) -> None:
    x = np.abs(rng.standard_normal(5)) + 0.1
    a, out = _array(x, device), nd.NDArray.make((5,), device=device)
    getattr(device, name)(a._handle, out._handle)
    np.testing.assert_allclose(out.numpy(), reference(x.astype(np.float32)), rtol=1e-6)


def test_device_matmul_and_reductions(device: nd.Device, rng: np.random.Generator) -> None:
    x, y = rng.standard_normal((3, 5)), rng.standard_normal((5, 4))
    out = nd.NDArray.make((3, 4), device=device)
    device.matmul(_array(x, device)._handle, _array(y, device)._handle, out._handle, 3, 5, 4)
    np.testing.assert_allclose(out.numpy(), x @ y, rtol=1e-5, atol=1e-5)
    rows = nd.NDArray.make((3,), device=device)
    device.reduce_sum(_array(x, device)._handle, rows._handle, 5)
    np.testing.assert_allclose(rows.numpy(), x.sum(axis=1), rtol=1e-5, atol=1e-6)
    device.reduce_max(_array(x, device)._handle, rows._handle, 5)
    np.testing.assert_allclose(rows.numpy(), x.max(axis=1).astype(np.float32))


@pytest.mark.parametrize(("m", "n", "p"), [(1, 1, 1), (2, 3, 1), (3, 2, 2)])
def test_device_matmul_tiled(device: nd.Device, rng: np.random.Generator, m: int, n: int, p: int) -> None:
    t = device.__tile_size__
    x, y = rng.standard_normal((m, n, t, t)), rng.standard_normal((n, p, t, t))
    out = nd.NDArray.make((m, p, t, t), device=device)
    device.matmul_tiled(_array(x, device)._handle, _array(y, device)._handle, out._handle, m * t, n * t, p * t)
    # Tile (i, j) of the product is the sum over k of tile (i, k) @ tile (k, j).
    expected = np.einsum("ikab,kjbc->ijac", x, y)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="not a multiple of the tile size"):
        device.matmul_tiled(out._handle, out._handle, out._handle, t + 1, t, t)


def test_device_strided_copies_and_fills(device: nd.Device) -> None:
    values = np.arange(24.0, dtype=np.float32)
    a = nd.array(values, device=device)
    out = nd.NDArray.make((3, 2), device=device)
    device.compact(a._handle, out._handle, (3, 2), (4, 1), 5)  # rows 5:7, 9:11, 13:15
    np.testing.assert_array_equal(out.numpy(), values.reshape(6, 4)[1:4, 1:3])
    target = nd.array(np.zeros(24), device=device)
    device.ewise_setitem(out._handle, target._handle, (3, 2), (1, 3), 2)
    expected = np.zeros(24, dtype=np.float32)
    np.lib.stride_tricks.as_strided(expected[2:], (3, 2), (4, 12))[...] = out.numpy()
    np.testing.assert_array_equal(target.numpy(), expected)
    device.scalar_setitem(4, 9.0, target._handle, (2, 2), (10, 1), 0)
    expected[[0, 1, 10, 11]] = 9.0
    np.testing.assert_array_equal(target.numpy(), expected)
    device.fill(target._handle, 1.5)
    assert set(target.numpy().tolist()) == {1.5}
    handle = device.Array(6)
    device.from_numpy(np.arange(6.0).reshape(2, 3), handle)
    np.testing.assert_array_equal(device.to_numpy(handle, (3, 2), (1, 3), 0), np.arange(6.0).reshape(2, 3).T)
    with pytest.raises(AttributeError, match="'Device' object has no attribute 'no_such_function'"):
        _ = device.no_such_function
