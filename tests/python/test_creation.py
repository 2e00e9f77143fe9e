"""Creating arrays, dtype inference, NumPy interop (zero-copy), conversions, devices."""

import numpy as np
import pytest
from ndarray_helpers import ALL_DTYPES, SHAPES, check, random_array

import needle as ndl
from needle import backend_ndarray as nd


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_from_numpy_keeps_dtype(
    device: nd.Device, rng: np.random.Generator, dtype: str, shape: tuple[int, ...]
) -> None:
    x = random_array(shape, dtype, rng)
    a = nd.NDArray(x, device=device)
    assert a.device == device
    assert a.is_compact()
    assert a.strides == tuple(s // x.itemsize for s in x.strides) or a.size <= 1
    check(a, x, dtype)
    check(nd.array(x, device=device), x, dtype)


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        ([1.5, 2.0], "float32"),
        ([1, 2], "int64"),
        ([True, False], "bool"),
        (3.0, "float32"),
        (7, "int64"),
        (False, "bool"),
        ([[1, 2.5], [3, 4]], "float32"),
        ([], "float32"),
        (np.float64(2.0), "float32"),
        (np.int32(3), "int32"),
        (np.arange(3, dtype=np.uint8), "uint8"),
        (np.arange(3, dtype=np.int8), "int8"),
        (np.ones(2, np.int16), "int32"),
        (np.ones(2, np.float16), "float32"),
        (np.ones(2, np.uint32), "int64"),
    ],
    ids=repr,
)
@pytest.mark.usefixtures("course_dtypes")
def test_dtype_inference(device: nd.Device, value: object, dtype: str) -> None:
    a = nd.NDArray(value, device=device)
    assert a.dtype == dtype
    np.testing.assert_array_equal(a.numpy(), np.asarray(value).astype(dtype))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_explicit_dtype(device: nd.Device, dtype: str) -> None:
    a = nd.NDArray([[0.0, 1.5], [-2.5, 3.0]], device=device, dtype=dtype)
    check(a, np.array([[0.0, 1.5], [-2.5, 3.0]]).astype(dtype), dtype)
    assert nd.array([1, 2], dtype=np.float64, device=device).dtype == "float64"
    assert nd.array([1, 2], dtype=np.dtype("int32"), device=device).dtype == "int32"


def test_from_ndarray_copies(device: nd.Device) -> None:
    a = nd.NDArray([1.0, 2.0], device=device)
    b = nd.NDArray(a)
    b[0] = 5.0
    assert a.numpy()[0] == 1.0
    assert not b.shares_memory(a)
    c = nd.NDArray(a, device=ndl.ref(), dtype="float64")
    assert c.device == ndl.ref()
    assert c.dtype == "float64"


@pytest.mark.parametrize("value", [np.zeros(2, np.complex64), ["a", "b"], [object()], np.array(["x"])], ids=repr)
def test_unsupported_inputs(device: nd.Device, value: object) -> None:
    with pytest.raises(TypeError, match=r"unsupported dtype"):
        nd.NDArray(value, device=device)


def test_unknown_dtype_name(device: nd.Device) -> None:
    with pytest.raises(TypeError, match=r"uint16|dtype"):
        nd.NDArray([1], device=device, dtype="uint16")
    with pytest.raises(TypeError, match=r"dtype"):
        nd.empty((2,), dtype="float128", device=device)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_creation_functions(device: nd.Device, dtype: str) -> None:
    e = nd.empty((2, 3), dtype=dtype, device=device)
    assert (e.shape, e.dtype, e.device) == ((2, 3), dtype, device)
    check(nd.full((2, 3), 1, dtype=dtype, device=device), np.ones((2, 3), dtype), dtype)
    check(nd.zeros((4,), dtype=dtype, device=device), np.zeros(4, dtype), dtype)
    check(nd.ones((), dtype=dtype, device=device), np.ones((), dtype), dtype)
    check(device.full((3,), 2, dtype=dtype), np.full(3, 2, dtype), dtype)
    assert device.empty((0, 2), dtype=dtype).shape == (0, 2)
    check(nd.arange(5, device=device), np.arange(5), "int64")
    assert nd.full((2,), 1.5).device == ndl.default_device() == ndl.cpu()


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_numpy_is_zero_copy(device: nd.Device, rng: np.random.Generator, dtype: str) -> None:
    x = random_array((4, 6), dtype, rng)
    a = nd.NDArray(x, device=device)
    view = a.numpy()
    assert np.shares_memory(view, a.numpy())
    assert np.shares_memory(np.asarray(a), view)
    # Writing through the NumPy view changes the NDArray, and the other way round.
    view[1, 2] = x[0, 0] if dtype != "bool" else not x[1, 2]
    assert a[1, 2].item() == view[1, 2]
    a[0, 0] = 1
    assert view[0, 0] == 1
    # Non-contiguous views keep their strides (in bytes for NumPy).
    t = a.permute((1, 0))[::2]
    tv = t.numpy()
    assert np.shares_memory(tv, view)
    assert tv.strides == tuple(s * x.itemsize for s in t.strides)
    np.testing.assert_array_equal(tv, view.T[::2])
    flipped = a[::-1, ::-3].numpy()
    np.testing.assert_array_equal(flipped, view[::-1, ::-3])
    # The NumPy array keeps the storage alive.
    del a, t
    np.testing.assert_array_equal(view, view.copy())


@pytest.mark.parametrize(
    ("value", "dtype"),
    [([1.5, 2.0], "float64"), (3.0, "float64"), (np.float64(2.0), "float64"), (np.ones(2, np.float32), "float32")],
    ids=repr,
)
def test_numpy_policy_keeps_numpy_float_dtypes(device: nd.Device, value: object, dtype: str) -> None:
    # The tests' default (NEEDLE_BACKEND=np): floating input is stored as NumPy stores it.
    assert nd.NDArray(value, device=device).dtype == dtype


@pytest.mark.usefixtures("course_dtypes")
def test_array_protocol(device: nd.Device) -> None:
    a = nd.NDArray([[1.0, 2.0], [3.0, 4.0]], device=device)
    assert np.asarray(a).dtype == np.float32
    assert np.asarray(a, dtype=np.float64).dtype == np.float64
    copied = np.array(a, copy=True)
    copied[0, 0] = 10
    assert a.numpy()[0, 0] == 1.0
    np.testing.assert_allclose(a, [[1, 2], [3, 4]])
    np.testing.assert_allclose(np.exp(a), np.exp([[1, 2], [3, 4]]), rtol=1e-6)


def test_scalar_conversions(device: nd.Device) -> None:
    assert nd.NDArray(2.5, device=device).item() == 2.5
    assert isinstance(nd.NDArray(3, device=device).item(), int)
    assert nd.NDArray([True], device=device).item() is True
    assert float(nd.NDArray([[1.5]], device=device)) == 1.5
    assert int(nd.NDArray(7, device=device)) == 7
    assert bool(nd.NDArray([0.0], device=device)) is False
    with pytest.raises(ValueError, match=r"truth value.*\(2,\)"):
        bool(nd.NDArray([1, 2], device=device))
    with pytest.raises(TypeError, match=r"size-1.*\(2,\)"):
        float(nd.NDArray([1, 2], device=device))
    with pytest.raises(ValueError, match=r"item"):
        nd.NDArray([1, 2], device=device).item()


def test_len_iter_repr(device: nd.Device) -> None:
    a = nd.NDArray(np.arange(6).reshape(2, 3), device=device)
    assert len(a) == 2
    rows = list(a)
    assert len(rows) == 2
    np.testing.assert_array_equal(rows[1].numpy(), [3, 4, 5])
    with pytest.raises(TypeError, match=r"0-d"):
        len(nd.NDArray(1.0, device=device))
    text = repr(a)
    assert "[3, 4, 5]" in text
    assert "shape=(2, 3)" in text
    assert "dtype=int64" in text
    assert f"device={device!r}" in text
    assert str(a) == text


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("target", ALL_DTYPES)
def test_astype(device: nd.Device, rng: np.random.Generator, dtype: str, target: str) -> None:
    x = random_array((3, 4), dtype, rng)
    a = nd.NDArray(x, device=device)
    check(a.astype(target), x.astype(target), target)
    check(a.permute((1, 0)).astype(target), x.T.astype(target), target)
    if target == dtype:
        assert a.astype(target).shares_memory(a)


def test_to_device(rng: np.random.Generator) -> None:
    x = random_array((3, 5), "float32", rng)
    a = nd.NDArray(x, device=ndl.ref())
    b = a.to(ndl.cpu())
    assert b.device == ndl.cpu()
    check(b, x)
    assert a.to(ndl.ref()).shares_memory(a)
    check(a.permute((1, 0)).to(ndl.cpu()), x.T)
    assert a.to("cpu").device == ndl.cpu()  # type: ignore[arg-type]


def test_fill(device: nd.Device) -> None:
    a = nd.NDArray(np.zeros((2, 3), np.int32), device=device)
    a.fill(4)
    check(a, np.full((2, 3), 4, np.int32))
    a[:, 1].fill(-1)
    check(a, np.array([[4, -1, 4], [4, -1, 4]], np.int32))


def test_devices() -> None:
    assert repr(ndl.cpu()) == "cpu()"
    assert repr(ndl.ref()) == "ref()"
    assert ndl.cpu_numpy() == ndl.ref()
    assert ndl.cpu() != ndl.ref()
    assert ndl.cpu().name == "cpu"
    assert ndl.cpu().enabled()
    assert ndl.ref().enabled()
    assert ndl.cpu().is_host
    assert ndl.default_device() == ndl.cpu()
    assert ndl.all_devices()[0] == ndl.cpu()
    assert ndl.BackendDevice is nd.Device
    assert nd.Device("ref") == ndl.ref()
    assert len({ndl.cpu(), ndl.cpu(), ndl.ref()}) == 2
    assert ndl.cpu() != "something else"
    with pytest.raises(ValueError, match=r"tpu"):
        nd.Device("tpu")


def test_cuda_when_disabled() -> None:
    if ndl.cuda().enabled():
        pytest.skip("CUDA is enabled")
    with pytest.raises(RuntimeError, match=r"cuda"):
        nd.NDArray([1.0], device=ndl.cuda())


def test_device_helpers_use_numpy_random_state(device: nd.Device) -> None:
    np.random.seed(3)  # noqa: NPY002 (device.rand uses NumPy's global state)
    a = device.rand(2, 3)
    b = device.randn(4, dtype="float64")
    np.random.seed(3)  # noqa: NPY002 (device.rand uses NumPy's global state)
    check(a, np.random.rand(2, 3).astype("float32"))  # noqa: NPY002 (device.rand uses NumPy's global state)
    check(b, np.random.randn(4))  # noqa: NPY002 (device.rand uses NumPy's global state)
    assert a.device == device
    check(device.one_hot(4, 2), np.eye(4, dtype="float32")[2])
    idx = np.array([[0, 3], [1, 1]])
    check(device.one_hot(4, idx, dtype="int32"), np.eye(4, dtype="int32")[idx])
    check(device.one_hot(3, nd.NDArray([2, 0], device=device)), np.eye(3, dtype="float32")[[2, 0]])
    with pytest.raises(IndexError, match=r"one_hot.*5"):
        device.one_hot(3, [5])
