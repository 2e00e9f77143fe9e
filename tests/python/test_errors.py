"""Bad input raises the right Python exception with a message naming the op and the shapes."""

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd


def arr(shape: tuple[int, ...], device: nd.Device, dtype: str = "float32") -> nd.NDArray:
    return nd.NDArray(np.zeros(shape, dtype=dtype), device=device)


def test_broadcast_mismatch(device: nd.Device) -> None:
    with pytest.raises(ValueError, match=r"add.*\(2, 3\).*\(4,\)"):
        arr((2, 3), device) + arr((4,), device)
    with pytest.raises(ValueError, match=r"maximum.*\(3,\).*\(2,\)"):
        nd.maximum(arr((3,), device), arr((2,), device))
    with pytest.raises(ValueError, match=r"broadcast_to.*\(2, 3\).*\(4, 3\)|broadcast.*\(2, 3\)"):
        arr((2, 3), device).broadcast_to((4, 3))
    with pytest.raises(ValueError, match=r"where.*\(2,\).*\(3,\)|where"):
        nd.where(arr((2,), device, "bool"), arr((3,), device), arr((2,), device))


def test_a_wrong_shape_is_a_value_error_and_a_runtime_error(device: nd.Device) -> None:
    # needle.ArgumentError: Needle's documented ValueError, and the RuntimeError PyTorch code catches.
    with pytest.raises(ndl.ArgumentError, match=r"add.*\(2, 3\).*\(4,\)") as raised:
        arr((2, 3), device) + arr((4,), device)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, RuntimeError)
    with pytest.raises(ndl.ArgumentError, match=r"matmul"):
        ndl.ops.matmul(ndl.Tensor(np.zeros((2, 3))), ndl.Tensor(np.zeros((4, 5))))
    # Other kinds keep their own class.
    with pytest.raises(TypeError) as wrong_dtype:
        nd.matmul(arr((2, 2), device, "bool"), arr((2, 2), device, "bool"))
    assert not isinstance(wrong_dtype.value, ndl.ArgumentError)


def test_matmul_mismatch(device: nd.Device) -> None:
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        arr((2, 3), device) @ arr((4, 5), device)
    with pytest.raises(ValueError, match=r"matmul.*\(2, 2, 3\).*\(3, 3, 4\)"):
        nd.matmul(arr((2, 2, 3), device), arr((3, 3, 4), device))
    with pytest.raises(ValueError, match=r"matmul"):
        nd.matmul(arr((), device), arr((3,), device))
    with pytest.raises(TypeError, match=r"matmul.*bool"):
        nd.matmul(arr((2, 2), device, "bool"), arr((2, 2), device, "bool"))


def test_reshape_to_a_different_size(device: nd.Device) -> None:
    with pytest.raises(ValueError, match=r"reshape.*\(2, 3\).*\(4, 2\)"):
        arr((2, 3), device).reshape((4, 2))
    with pytest.raises(ValueError, match=r"reshape.*\(-1, -1\)"):
        arr((2, 3), device).reshape((-1, -1))
    with pytest.raises(ValueError, match=r"reshape.*\(2, 3\).*\(4, -1\)"):
        nd.reshape(arr((2, 3), device), (4, -1))


def test_axis_out_of_range(device: nd.Device) -> None:
    with pytest.raises(IndexError, match=r"sum.*axis 2.*\(2, 3\)|sum.*2"):
        arr((2, 3), device).sum(axis=2)
    with pytest.raises(IndexError, match=r"max.*-3"):
        arr((2, 3), device).max(axis=(0, -3))
    with pytest.raises(IndexError, match=r"argmax.*5"):
        nd.argmax(arr((2, 3), device), axis=5)
    with pytest.raises(IndexError, match=r"permute|axis"):
        arr((2, 3), device).permute((0, 2))
    with pytest.raises(ValueError, match=r"permute"):
        arr((2, 3), device).permute((0, 0))
    with pytest.raises(ValueError, match=r"sum.*repeat|sum.*0"):
        arr((2, 3), device).sum(axis=(0, 0))
    with pytest.raises(IndexError, match=r"flip.*3"):
        nd.flip(arr((2, 3), device), (3,))
    with pytest.raises(IndexError, match=r"stack.*3"):
        nd.stack([arr((2,), device)], axis=3)


def test_index_out_of_bounds(device: nd.Device) -> None:
    a = arr((2, 3), device)
    with pytest.raises(IndexError, match=r"index 2.*axis 0.*size 2"):
        a[2]
    with pytest.raises(IndexError, match=r"-4.*axis 1.*size 3"):
        a[0, -4]
    with pytest.raises(IndexError, match=r"too many indices|\(2, 3\)"):
        a[0, 0, 0]
    with pytest.raises(IndexError, match=r"ellipsis|\.\.\."):
        a[..., 0, ...]
    with pytest.raises(IndexError, match=r"index 5.*size 2"):
        a[5] = 1.0
    with pytest.raises(ValueError, match=r"step"):
        a[::0]
    with pytest.raises(IndexError, match=r"valid indices.*float"):
        a[1.5]  # type: ignore[index]
    with pytest.raises(IndexError, match=r"valid indices.*list"):
        a[[0, 1]]  # type: ignore[index]
    with pytest.raises(IndexError, match=r"valid indices.*bool"):
        a[True]  # type: ignore[index]
    with pytest.raises(TypeError, match=r"slice indices"):
        a["a":]  # type: ignore[misc]


def test_setitem_shape_mismatch(device: nd.Device) -> None:
    a = arr((2, 3), device)
    with pytest.raises(ValueError, match=r"\(4,\).*\(2, 3\)|\(2, 3\).*\(4,\)"):
        a[:] = np.ones(4)


def test_as_strided_outside_storage(device: nd.Device) -> None:
    with pytest.raises(ValueError, match=r"as_strided"):
        arr((6,), device).as_strided((3, 3), (3, 1))


def test_unsupported_dtypes(device: nd.Device) -> None:
    with pytest.raises(TypeError, match=r"complex"):
        nd.NDArray(np.ones(3, np.complex128), device=device)
    with pytest.raises(TypeError, match=r"int16|dtype"):
        arr((2,), device).astype("int16")
    with pytest.raises(TypeError, match=r"exp|log|dtype"):
        nd.full((2,), 1, dtype="complex64", device=device)


def test_mixing_devices() -> None:
    a = arr((3,), ndl.cpu())
    b = arr((3,), ndl.ref())
    with pytest.raises(RuntimeError, match=r"add.*cpu.*ref|add.*ref.*cpu"):
        a + b
    with pytest.raises(RuntimeError, match=r"matmul.*(cpu|ref)"):
        nd.matmul(a.reshape((1, 3)), b.reshape((3, 1)))
    with pytest.raises(RuntimeError, match=r"stack|concat|device"):
        nd.stack([a, b])


def test_wrong_argument_types(device: nd.Device) -> None:
    a = arr((2, 3), device)
    with pytest.raises(TypeError):
        a + "x"  # type: ignore[operator]
    with pytest.raises(TypeError):
        a.reshape("23")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        a @ 2  # type: ignore[operator]


def test_negative_shape(device: nd.Device) -> None:
    with pytest.raises(ValueError, match=r"empty.*-1|\(2, -1\)"):
        nd.empty((2, -1), device=device)
