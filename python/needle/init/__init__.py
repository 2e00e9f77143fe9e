"""Initializers (``needle.init``), as in Needle.

As in Needle, the random ones draw from NumPy's global random state, so ``np.random.seed(s)`` reproduces
Needle's numbers; ``needle.manual_seed`` seeds that state too. The formulas (bounds, gains, scaling and
shifting) are the C++ initializers' (``include/needle/nn/init.h``): Python only supplies their base samples,
through ``NUMPY_SOURCE``. The built-in layers' constructors draw through the same source (``sample_source``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from needle import _core
from needle._core import Device, InitializerSourceScope, NDArray, SampleSource, Tensor, default_device
from needle.backend_ndarray._numpy_random import NumpySampleSource

DeviceLike = Device | str | None


def _device(device: DeviceLike) -> Device:
    if device is None:
        return default_device()
    if isinstance(device, str):
        return Device(device)
    return device


def _shape(shape: tuple[int | Sequence[int], ...]) -> tuple[int, ...]:
    """``f(2, 3)`` and ``f((2, 3))`` both mean the shape (2, 3)."""
    if len(shape) == 1 and not isinstance(shape[0], int):
        return tuple(int(d) for d in shape[0])
    return tuple(int(d) for d in shape)  # type: ignore[arg-type]


#: Base samples from NumPy's global random state: ``numpy.random.rand`` / ``numpy.random.randn`` of the
#: requested shape (C order), converted from float64 to the requested dtype.
NUMPY_SOURCE = NumpySampleSource()


def sample_source(source: SampleSource) -> InitializerSourceScope:
    """``with sample_source(s):`` makes ``s`` the source that C++ layer constructors (and C++ initializers
    given no source) draw base samples from on this thread; the built-in layers use ``NUMPY_SOURCE``."""
    return InitializerSourceScope(source)


def _tensor(array: NDArray, dtype: str, requires_grad: bool) -> Tensor:
    return Tensor.make_const(array.astype(dtype), requires_grad=requires_grad)


def rand(
    *shape: int | Sequence[int],
    low: float = 0.0,
    high: float = 1.0,
    device: DeviceLike = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """Uniform samples in [low, high) (``numpy.random.rand`` scaled)."""
    array = _core.init_uniform(_shape(shape), low, high, dtype, _device(device), NUMPY_SOURCE)
    return Tensor.make_const(array, requires_grad=requires_grad)


def randn(
    *shape: int | Sequence[int],
    mean: float = 0.0,
    std: float = 1.0,
    device: DeviceLike = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """Normal samples N(mean, std**2) (``numpy.random.randn`` scaled)."""
    array = _core.init_normal(_shape(shape), mean, std, dtype, _device(device), NUMPY_SOURCE)
    return Tensor.make_const(array, requires_grad=requires_grad)


def constant(
    *shape: int | Sequence[int],
    c: float = 1.0,
    device: DeviceLike = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """A tensor of ``shape`` filled with ``c``."""
    array = _device(device).full(list(_shape(shape)), c, dtype=dtype)
    return Tensor.make_const(array, requires_grad=requires_grad)


def ones(
    *shape: int | Sequence[int], device: DeviceLike = None, dtype: str = "float32", requires_grad: bool = False
) -> Tensor:
    """A tensor of ones."""
    return constant(*shape, c=1.0, device=device, dtype=dtype, requires_grad=requires_grad)


def zeros(
    *shape: int | Sequence[int], device: DeviceLike = None, dtype: str = "float32", requires_grad: bool = False
) -> Tensor:
    """A tensor of zeros."""
    return constant(*shape, c=0.0, device=device, dtype=dtype, requires_grad=requires_grad)


def randb(
    *shape: int | Sequence[int],
    p: float = 0.5,
    device: DeviceLike = None,
    dtype: str = "bool",
    requires_grad: bool = False,
) -> Tensor:
    """True (1) with probability p: ``numpy.random.rand(*shape) <= p``."""
    array = _device(device).rand(*_shape(shape)) <= p
    return _tensor(array, dtype, requires_grad)


def one_hot(
    n: int,
    i: int | Sequence[int] | NDArray | Tensor,
    device: DeviceLike = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """Rows of the n x n identity picked by the indices ``i``: shape i.shape + (n,)."""
    indices = i.cached_data if isinstance(i, Tensor) else i
    array = _device(device).one_hot(n, indices, dtype=dtype)
    return Tensor.make_const(array, requires_grad=requires_grad)


def _like(
    make: Callable[..., Tensor], array: Tensor, device: DeviceLike, dtype: str | None, requires_grad: bool
) -> Tensor:
    """``make(*array.shape, ...)`` with ``array``'s dtype and device unless given."""
    return make(
        *array.shape,
        device=array.device if device is None else device,
        dtype=array.dtype if dtype is None else dtype,
        requires_grad=requires_grad,
    )


def zeros_like(
    array: Tensor, *, device: DeviceLike = None, dtype: str | None = None, requires_grad: bool = False
) -> Tensor:
    """Zeros of ``array``'s shape (and dtype and device unless given)."""
    return _like(zeros, array, device, dtype, requires_grad)


def ones_like(
    array: Tensor, *, device: DeviceLike = None, dtype: str | None = None, requires_grad: bool = False
) -> Tensor:
    """Ones of ``array``'s shape (and dtype and device unless given)."""
    return _like(ones, array, device, dtype, requires_grad)


def xavier_uniform(
    fan_in: int,
    fan_out: int,
    gain: float = 1.0,
    *,
    device: DeviceLike = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """Uniform in [-a, a] with a = gain * sqrt(6 / (fan_in + fan_out)), shape (fan_in, fan_out)."""
    array = _core.init_xavier_uniform(fan_in, fan_out, gain, None, dtype, _device(device), NUMPY_SOURCE)
    return Tensor.make_const(array, requires_grad=requires_grad)


def xavier_normal(
    fan_in: int,
    fan_out: int,
    gain: float = 1.0,
    *,
    device: DeviceLike = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out)), shape (fan_in, fan_out)."""
    array = _core.init_xavier_normal(fan_in, fan_out, gain, None, dtype, _device(device), NUMPY_SOURCE)
    return Tensor.make_const(array, requires_grad=requires_grad)


def kaiming_uniform(
    fan_in: int,
    fan_out: int,
    shape: Sequence[int] | None = None,
    nonlinearity: str = "relu",
    *,
    device: DeviceLike = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """Uniform in [-b, b] with b = gain * sqrt(3 / fan_in) (gain sqrt(2) for relu); shape (fan_in, fan_out)
    unless ``shape`` is given (convolution kernels)."""
    dims = None if shape is None else tuple(shape)
    array = _core.init_kaiming_uniform(fan_in, fan_out, dims, nonlinearity, dtype, _device(device), NUMPY_SOURCE)
    return Tensor.make_const(array, requires_grad=requires_grad)


def kaiming_normal(
    fan_in: int,
    fan_out: int,
    shape: Sequence[int] | None = None,
    nonlinearity: str = "relu",
    *,
    device: DeviceLike = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """N(0, std**2) with std = gain / sqrt(fan_in) (gain sqrt(2) for relu); shape (fan_in, fan_out) unless
    ``shape`` is given."""
    dims = None if shape is None else tuple(shape)
    array = _core.init_kaiming_normal(fan_in, fan_out, dims, nonlinearity, dtype, _device(device), NUMPY_SOURCE)
    return Tensor.make_const(array, requires_grad=requires_grad)


__all__ = [
    "NUMPY_SOURCE",
    "NumpySampleSource",
    "SampleSource",
    "constant",
    "kaiming_normal",
    "kaiming_uniform",
    "one_hot",
    "ones",
    "ones_like",
    "rand",
    "randb",
    "randn",
    "sample_source",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
    "zeros_like",
]
