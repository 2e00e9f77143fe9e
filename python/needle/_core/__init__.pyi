"""
Needle's compiled core: NDArray, devices, the array functions, Tensor, autograd, the ops, nn, optim, data and checkpoints.
"""

from collections.abc import Iterator, Mapping, Sequence
import types
from typing import Any, ClassVar, Final, overload

import numpy.typing

from needle._core import ops as ops


class ArgumentError(ValueError, RuntimeError):
    """
    An op's argument has a wrong shape or value: a ValueError, and also a RuntimeError, the class PyTorch raises for the same mistake.
    """

class Device:
    """
    Where an array lives and which backend runs its kernels: cpu(), ref() or cuda(). Needle calls this class BackendDevice.
    """

    def __init__(self, name: str) -> None:
        """The device named "cpu", "ref", "cuda" or "cuda:N"."""

    @property
    def name(self) -> str:
        """"cpu", "ref", "cuda" ("cuda:N" for other CUDA devices)."""

    @property
    def index(self) -> int:
        """Device index (CUDA devices)."""

    @property
    def is_host(self) -> bool:
        """True when NumPy can view this device's memory without a copy."""

    def enabled(self) -> bool:
        """True when this device's backend is compiled in and usable."""

    def __repr__(self) -> str: ...

    def __str__(self) -> str: ...

    def __eq__(self, other: object, /) -> bool: ...

    def __ne__(self, other: object, /) -> bool: ...

    def __hash__(self) -> int: ...

    def empty(self, shape: Sequence[int], dtype: str = 'float32') -> NDArray:
        """An uninitialized array on this device."""

    def full(self, shape: Sequence[int], fill_value: bool | int | float, dtype: str = 'float32') -> NDArray:
        """An array of `shape` filled with `fill_value`."""

    def one_hot(self, n: int, i: int | Sequence[int] | NDArray | numpy.typing.ArrayLike, dtype: str = 'float32') -> NDArray:
        """Rows of the n x n identity for the indices `i` (shape i.shape + (n,))."""

    def rand(self, *shape: int, dtype: str = 'float32') -> NDArray:
        """
        Uniform [0, 1) samples drawn from NumPy's global random state (numpy.random.rand).
        """

    def randn(self, *shape: int, dtype: str = 'float32') -> NDArray:
        """
        Standard normal samples drawn from NumPy's global random state (numpy.random.randn).
        """

    __tile_size__: Final[int] = ...
    """The tile size `matmul_tiled` expects (course name)."""

    def Array(self, size: int, dtype: str = 'float32') -> StorageHandle:
        """A new storage of `size` elements (course name)."""

    def __getattr__(self, name: str) -> object:
        """
        The course backend's functions on handles (`fill`, `compact`, `ewise_add`, `matmul`, ...; see needle.backend_ndarray.handles), called as methods of the device.
        """

def cpu() -> Device:
    """The fast CPU backend (the default device)."""

def ref() -> Device:
    """The readable reference backend (Needle's cpu_numpy role)."""

def cuda(index: int = 0) -> Device:
    """The CUDA backend; check enabled() before use."""

def default_device() -> Device:
    """The device new arrays go to when none is given (cpu)."""

class NDArray:
    """
    A strided view of device memory (shape, strides in elements, offset, dtype, device). No autograd.
    """

    def __init__(self, other: NDArray | numpy.typing.ArrayLike, device: Device | str | None = None, dtype: str | None = None) -> None:
        """
        An array from an NDArray (copied), a NumPy array, a nested list or a scalar. Without `dtype`, integers and bools keep their kind; floating values become float32 (see set_float_input_policy).
        """

    @property
    def shape(self) -> tuple[int, ...]:
        """The dimensions (a tuple)."""

    @property
    def strides(self) -> tuple[int, ...]:
        """The strides, in elements (a tuple)."""

    @property
    def offset(self) -> int:
        """Offset of element 0 in the storage, in elements."""

    @property
    def size(self) -> int:
        """Number of elements."""

    @property
    def ndim(self) -> int:
        """Number of dimensions."""

    @property
    def itemsize(self) -> int:
        """Bytes per element."""

    @property
    def device(self) -> Device:
        """The device holding the storage."""

    @property
    def dtype(self) -> str:
        """
        The element type: "float32", "float64", "int64", "int32", "int8", "uint8" or "bool".
        """

    def shares_memory(self, other: NDArray) -> bool:
        """True when both arrays view the same storage."""

    def compact(self) -> NDArray:
        """This array itself when already contiguous, else a contiguous copy."""

    def is_compact(self) -> bool:
        """True when the elements are stored densely in row-major order."""

    def copy(self) -> NDArray:
        """A fresh contiguous copy."""

    def as_strided(self, shape: Sequence[int], strides: Sequence[int], offset: int | None = None) -> NDArray:
        """
        A view with any shape and strides (in elements) over the same storage; offset defaults to this array's.
        """

    def reshape(self, new_shape: Sequence[int]) -> NDArray:
        """
        A view with a new shape (one entry may be -1) when the strides allow it, else a compact copy.
        """

    def permute(self, new_axes: Sequence[int]) -> NDArray:
        """A view with the axes reordered."""

    def swapaxes(self, axis1: int, axis2: int) -> NDArray:
        """A view with two axes swapped."""

    def broadcast_to(self, new_shape: Sequence[int]) -> NDArray:
        """A view broadcast to `new_shape` (NumPy rules, zero strides)."""

    def unsqueeze(self, axis: int) -> NDArray:
        """A view with a size-1 axis inserted at `axis`."""

    def squeeze(self, axis: int | Sequence[int] | None = None) -> NDArray:
        """A view without the given size-1 axes (every size-1 axis by default)."""

    def __getitem__(self, key: int | slice | None | types.EllipsisType | tuple[int | slice | None | types.EllipsisType, ...]) -> NDArray:
        """NumPy basic indexing (ints, slices with steps, None, ...): a view."""

    @overload
    def __setitem__(self, key: int | slice | None | types.EllipsisType | tuple[int | slice | None | types.EllipsisType, ...], value: NDArray) -> None: ...

    @overload
    def __setitem__(self, key: int | slice | None | types.EllipsisType | tuple[int | slice | None | types.EllipsisType, ...], value: bool | int | float) -> None: ...

    @overload
    def __setitem__(self, key: int | slice | None | types.EllipsisType | tuple[int | slice | None | types.EllipsisType, ...], value: numpy.typing.ArrayLike) -> None:
        """
        Writes `value` (broadcast and converted to this dtype) into the indexed view.
        """

    @staticmethod
    def make(shape: Sequence[int], strides: Sequence[int] | None = None, device: Device | None = None, handle: StorageHandle | None = None, offset: int = 0) -> NDArray:
        """
        A view of `handle` with any shape, strides and offset (in elements), or a new compact float32 array of `shape` when `handle` is None.
        """

    @property
    def flat(self) -> NDArray:
        """
        A writable 1-D view of a compact array (`a.flat[j] += eps` changes `a`).
        """

    def process_slice(self, sl: slice, dim: int) -> slice:
        """
        `sl` with its start, stop and step made integers for axis `dim` (Python's slice rules).
        """

    def __array__(self, dtype: object = None, copy: bool | None = None) -> numpy.typing.NDArray[Any]: ...

    def to(self, device: Device) -> NDArray:
        """This array on `device` (itself when already there)."""

    def astype(self, dtype: str) -> NDArray:
        """This array converted to `dtype` (itself when it already has it)."""

    def fill(self, value: bool | int | float) -> None:
        """Sets every element to `value` (in place)."""

    def item(self) -> bool | int | float:
        """The single element of a size-1 array."""

    def __float__(self) -> float: ...

    def __int__(self) -> int: ...

    def __bool__(self) -> bool: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[NDArray]: ...

    def __repr__(self) -> str: ...

    def __str__(self) -> str: ...

    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> NDArray:
        """Sum over `axis` (None: every axis)."""

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> NDArray:
        """Maximum over `axis` (None: every axis)."""

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> NDArray:
        """Minimum over `axis` (None: every axis)."""

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> NDArray:
        """Mean over `axis` (None: every axis)."""

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> NDArray:
        """Index of the first maximum (int64)."""

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> NDArray:
        """Index of the first minimum (int64)."""

    def flip(self, axes: int | Sequence[int] | None = None) -> NDArray:
        """A compact copy with `axes` reversed (None: every axis)."""

    def pad(self, axes: Sequence[tuple[int, int]], value: bool | int | float = 0.0) -> NDArray:
        """A copy padded by (before, after) cells per axis."""

    @overload
    def maximum(self, other: NDArray) -> NDArray: ...

    @overload
    def maximum(self, other: bool | int | float) -> NDArray:
        """Element-wise maximum with an array or a scalar."""

    @overload
    def minimum(self, other: NDArray) -> NDArray: ...

    @overload
    def minimum(self, other: bool | int | float) -> NDArray:
        """Element-wise minimum with an array or a scalar."""

    def exp(self) -> NDArray: ...

    def log(self) -> NDArray: ...

    def tanh(self) -> NDArray: ...

    def sqrt(self) -> NDArray: ...

    def sigmoid(self) -> NDArray: ...

    def relu(self) -> NDArray: ...

    @overload
    def __add__(self, arg: NDArray, /) -> NDArray: ...

    @overload
    def __add__(self, arg: bool | int | float, /) -> NDArray: ...

    @overload
    def __add__(self, other: numpy.typing.NDArray[Any], /) -> NDArray: ...

    @overload
    def __radd__(self, arg: bool | int | float, /) -> NDArray: ...

    @overload
    def __radd__(self, other: numpy.typing.NDArray[Any], /) -> NDArray: ...

    @overload
    def __sub__(self, arg: NDArray, /) -> NDArray: ...

    @overload
    def __sub__(self, arg: bool | int | float, /) -> NDArray: ...

    @overload
    def __sub__(self, other: numpy.typing.NDArray[Any], /) -> NDArray: ...

    @overload
    def __rsub__(self, arg: bool | int | float, /) -> NDArray: ...

    @overload
    def __rsub__(self, other: numpy.typing.NDArray[Any], /) -> NDArray: ...

    @overload
    def __mul__(self, arg: NDArray, /) -> NDArray: ...

    @overload
    def __mul__(self, arg: bool | int | float, /) -> NDArray: ...

    @overload
    def __mul__(self, other: numpy.typing.NDArray[Any], /) -> NDArray: ...

    @overload
    def __rmul__(self, arg: bool | int | float, /) -> NDArray: ...

    @overload
    def __rmul__(self, other: numpy.typing.NDArray[Any], /) -> NDArray: ...

    @overload
    def __truediv__(self, arg: NDArray, /) -> NDArray: ...

    @overload
    def __truediv__(self, arg: bool | int | float, /) -> NDArray: ...

    @overload
    def __truediv__(self, other: numpy.typing.NDArray[Any], /) -> NDArray: ...

    @overload
    def __rtruediv__(self, arg: bool | int | float, /) -> NDArray: ...

    @overload
    def __rtruediv__(self, other: numpy.typing.NDArray[Any], /) -> NDArray: ...

    @overload
    def __pow__(self, arg: NDArray, /) -> NDArray: ...

    @overload
    def __pow__(self, arg: bool | int | float, /) -> NDArray: ...

    @overload
    def __pow__(self, other: numpy.typing.NDArray[Any], /) -> NDArray: ...

    @overload
    def __rpow__(self, arg: bool | int | float, /) -> NDArray: ...

    @overload
    def __rpow__(self, other: numpy.typing.NDArray[Any], /) -> NDArray: ...

    def __eq__(self, other: object, /) -> NDArray:  # type: ignore[override]
        """a == other, element-wise (bool)."""

    def __ne__(self, other: object, /) -> NDArray:  # type: ignore[override]
        """a != other, element-wise (bool)."""

    def __lt__(self, other: NDArray | bool | int | float, /) -> NDArray:
        """Element-wise comparison (bool)."""

    def __le__(self, other: NDArray | bool | int | float, /) -> NDArray:
        """Element-wise comparison (bool)."""

    def __gt__(self, other: NDArray | bool | int | float, /) -> NDArray:
        """Element-wise comparison (bool)."""

    def __ge__(self, other: NDArray | bool | int | float, /) -> NDArray:
        """Element-wise comparison (bool)."""

    def __matmul__(self, arg: NDArray, /) -> NDArray: ...

    def __neg__(self) -> NDArray: ...

    def __abs__(self) -> NDArray: ...

    def numpy(self) -> numpy.typing.NDArray[Any]:
        """
        A NumPy array sharing this array's memory (host devices; other devices copy to the host).
        """

    __hash__: ClassVar[None]  # type: ignore[assignment]

    __array_priority__: int = 1000

class StorageHandle:
    """
    A storage seen as a flat array: the course Needle's `NDArray._handle` (its backend's `Array`). Views of one storage share one handle.
    """

    @property
    def size(self) -> int:
        """Number of elements of the storage."""

    @property
    def dtype(self) -> str:
        """The element type the storage is seen with."""

    @property
    def device(self) -> Device:
        """The device holding the storage."""

    def ptr(self) -> int:
        """
        The storage's first byte's address, as an integer (a device address off the host).
        """

    @property
    def array(self) -> NDArray:
        """The whole storage as a compact 1-D NDArray."""

    def __repr__(self) -> str: ...

def set_float_input_policy(policy: str) -> None:
    """
    How arrays and tensors store floating-point input given without a dtype: "float32" (the default, the course Needle's NDArray backend) or "numpy" (NumPy's dtypes: float64 stays float64; the course's NumPy backend, NEEDLE_BACKEND=np).
    """

def float_input_policy() -> str:
    """The current set_float_input_policy."""

def negate(a: NDArray) -> NDArray:
    """-a."""

def abs(a: NDArray) -> NDArray:
    """|a|."""

def exp(a: NDArray) -> NDArray:
    """e ** a."""

def log(a: NDArray) -> NDArray:
    """Natural logarithm."""

def sqrt(a: NDArray) -> NDArray:
    """Square root."""

def tanh(a: NDArray) -> NDArray:
    """Hyperbolic tangent."""

def sigmoid(a: NDArray) -> NDArray:
    """1 / (1 + exp(-a))."""

def relu(a: NDArray) -> NDArray:
    """max(a, 0) (NaN stays NaN)."""

def erf(a: NDArray) -> NDArray:
    """
    The error function, 2 / sqrt(pi) * integral of exp(-t ** 2) from 0 to a.
    """

def gelu(a: NDArray) -> NDArray:
    """a * Phi(a), Phi the standard normal CDF (exact GELU)."""

def gelu_grad(a: NDArray) -> NDArray:
    """
    The derivative of gelu: Phi(a) + a * phi(a), phi the standard normal density.
    """

def silu(a: NDArray) -> NDArray:
    """a * sigmoid(a) (SiLU, also called swish)."""

def neg(a: NDArray) -> NDArray:
    """-a (Needle's backend_ndarray name for negate)."""

@overload
def add(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def add(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def add(a: bool | int | float, b: NDArray) -> NDArray:
    """a + b (broadcasting)"""

@overload
def sub(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def sub(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def sub(a: bool | int | float, b: NDArray) -> NDArray:
    """a - b (broadcasting)"""

@overload
def mul(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def mul(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def mul(a: bool | int | float, b: NDArray) -> NDArray:
    """a * b (broadcasting)"""

@overload
def div(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def div(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def div(a: bool | int | float, b: NDArray) -> NDArray:
    """a / b, true division (broadcasting)"""

@overload
def power(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def power(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def power(a: bool | int | float, b: NDArray) -> NDArray:
    """a ** b (broadcasting)"""

@overload
def maximum(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def maximum(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def maximum(a: bool | int | float, b: NDArray) -> NDArray:
    """Element-wise maximum (broadcasting)"""

@overload
def minimum(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def minimum(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def minimum(a: bool | int | float, b: NDArray) -> NDArray:
    """Element-wise minimum (broadcasting)"""

@overload
def eq(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def eq(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def eq(a: bool | int | float, b: NDArray) -> NDArray:
    """a == b (bool)"""

@overload
def ne(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def ne(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def ne(a: bool | int | float, b: NDArray) -> NDArray:
    """a != b (bool)"""

@overload
def lt(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def lt(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def lt(a: bool | int | float, b: NDArray) -> NDArray:
    """a < b (bool)"""

@overload
def le(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def le(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def le(a: bool | int | float, b: NDArray) -> NDArray:
    """a <= b (bool)"""

@overload
def gt(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def gt(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def gt(a: bool | int | float, b: NDArray) -> NDArray:
    """a > b (bool)"""

@overload
def ge(a: NDArray, b: NDArray) -> NDArray: ...

@overload
def ge(a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def ge(a: bool | int | float, b: NDArray) -> NDArray:
    """a >= b (bool)"""

@overload
def where(cond: NDArray, a: NDArray, b: NDArray) -> NDArray: ...

@overload
def where(cond: NDArray, a: NDArray, b: bool | int | float) -> NDArray: ...

@overload
def where(cond: NDArray, a: bool | int | float, b: NDArray) -> NDArray: ...

@overload
def where(cond: NDArray, a: bool | int | float, b: bool | int | float) -> NDArray:
    """cond ? a : b element-wise (broadcasting all three)."""

def sum(a: NDArray, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> NDArray:
    """Sum over `axis` (None: every axis); bool and int32 sum to int64."""

def summation(a: NDArray, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> NDArray:
    """Needle's name for sum."""

def max(a: NDArray, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> NDArray:
    """Maximum over `axis` (None: every axis)."""

def min(a: NDArray, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> NDArray:
    """Minimum over `axis` (None: every axis)."""

def mean(a: NDArray, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> NDArray:
    """Mean over `axis` (None: every axis); integers give float32."""

def argmax(a: NDArray, axis: int | None = None, keepdims: bool = False) -> NDArray:
    """
    Index (int64) of the first maximum along `axis` (None: of the flattened array).
    """

def argmin(a: NDArray, axis: int | None = None, keepdims: bool = False) -> NDArray:
    """
    Index (int64) of the first minimum along `axis` (None: of the flattened array).
    """

def matmul(a: NDArray, b: NDArray) -> NDArray:
    """
    NumPy matmul: batched, broadcasting batch dimensions; 1-d operands are treated as vectors.
    """

def broadcast_to(array: NDArray, new_shape: Sequence[int]) -> NDArray:
    """A broadcast view."""

def reshape(array: NDArray, new_shape: Sequence[int]) -> NDArray:
    """A view with a new shape when possible, else a compact copy."""

def permute(a: NDArray, axes: Sequence[int]) -> NDArray:
    """A view with the axes reordered."""

def swapaxes(a: NDArray, axis1: int, axis2: int) -> NDArray:
    """A view with two axes swapped."""

def flip(a: NDArray, axes: int | Sequence[int] | None = None) -> NDArray:
    """A compact copy with `axes` reversed (None: every axis)."""

def pad(a: NDArray, axes: Sequence[tuple[int, int]], value: bool | int | float = 0.0) -> NDArray:
    """A copy padded by axes[d] = (before, after) cells on every axis d."""

def stack(arrays: Sequence[NDArray], axis: int = 0) -> NDArray:
    """Joins arrays of equal shape along a new axis."""

def concat(arrays: Sequence[NDArray], axis: int = 0) -> NDArray:
    """Joins arrays along an existing axis."""

@overload
def split(a: NDArray, axis: int = 0) -> list[NDArray]: ...

@overload
def split(a: NDArray, sizes: Sequence[int], axis: int = 0) -> list[NDArray]:
    """
    Needle's split(a, axis): the shape[axis] views with that axis removed; split(a, sizes, axis): views of the given sizes along axis.
    """

def gather(a: NDArray, axis: int, index: NDArray) -> NDArray:
    """torch.gather / numpy.take_along_axis along `axis`."""

def scatter_add(a: NDArray, axis: int, index: NDArray, src: NDArray) -> NDArray:
    """
    A copy of `a` with `src` accumulated at `index` along `axis` (torch.scatter_add).
    """

def array(a: NDArray | numpy.typing.ArrayLike, dtype: str | None = None, device: Device | str | None = None) -> NDArray:
    """NDArray(a, device=device, dtype=dtype)."""

def empty(shape: Sequence[int], dtype: str = 'float32', device: Device | None = None) -> NDArray:
    """An uninitialized array."""

def full(shape: Sequence[int], fill_value: bool | int | float, dtype: str = 'float32', device: Device | None = None) -> NDArray:
    """An array filled with `fill_value`."""

def zeros(shape: Sequence[int], dtype: str = 'float32', device: Device | None = None) -> NDArray:
    """An array of zeros."""

def ones(shape: Sequence[int], dtype: str = 'float32', device: Device | None = None) -> NDArray:
    """An array of ones."""

def arange(n: int, dtype: str = 'int64', device: Device | None = None) -> NDArray:
    """0, 1, ..., n - 1."""

def quantize_rows(x: NDArray) -> tuple[NDArray, NDArray]:
    """
    (values, scale): x (float32 or float64, at least 1-d) quantized to int8 per row of its last axis, scale = max|x| / 127 (float32, x's shape less the last axis), values = round-half-even(x / scale).
    """

def adam_update(param: NDArray, grad: NDArray, exp_avg: NDArray, exp_avg_sq: NDArray, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, correction1: float, correction2: float, decoupled: bool) -> None:
    """
    One Adam (AdamW when `decoupled`) step in place, in one pass: m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2, p -= lr (m / correction1) / (sqrt(v / correction2) + eps). param, exp_avg and exp_avg_sq (one floating dtype, dense in one shared memory order: contiguous, or one permutation of it) are overwritten; ValueError, touching nothing, when their layouts do not allow it.
    """

def sgd_update(param: NDArray, grad: NDArray, momentum_buffer: NDArray | None, lr: float, momentum: float, weight_decay: float, first: bool) -> None:
    """
    One SGD step in place, in one pass: g += weight_decay p; u = momentum u + (1 - momentum) g (u = (1 - momentum) g when `first`); p -= lr u (p -= lr g without a buffer). param and momentum_buffer (dense in one shared memory order: contiguous, or one permutation of it) are overwritten; ValueError, touching nothing, when their layouts do not allow it.
    """

def int8_matmul(a: NDArray, w: NDArray) -> NDArray:
    """
    The exact int32 product a @ w.T of int8 a (M, K) and w (N, K), as (M, N).
    """

def quantized_matmul(a: NDArray, a_scale: NDArray, w: NDArray, w_scale: NDArray, bias: NDArray | None = None) -> NDArray:
    """
    float32 (M, N) = int8_matmul(a, w) * a_scale[:, None] * w_scale[None, :] + bias, fused: a (M, K) and w (N, K) int8, a_scale (M), w_scale (N) and bias (N) float32.
    """

def manual_seed(seed: int) -> None:
    """
    Seeds Needle's default generator (used by rand, randn and randb; not by NumPy's global state).
    """

def rand(*shape: int, low: float = 0.0, high: float = 1.0, dtype: str = 'float32', device: Device | str | None = None) -> NDArray:
    """Uniform samples in [low, high) from Needle's generator."""

def randn(*shape: int, mean: float = 0.0, std: float = 1.0, dtype: str = 'float32', device: Device | str | None = None) -> NDArray:
    """Normal samples N(mean, std**2) from Needle's generator."""

def randb(*shape: int, p: float = 0.5, dtype: str = 'bool', device: Device | str | None = None) -> NDArray:
    """
    1 with probability p, else 0 (bool by default), from Needle's generator.
    """

class SampleSource:
    """
    Where the initializers (and the built-in layers' constructors) get base samples. Subclass it and implement uniform and normal to draw from elsewhere; errors they raise reach the caller.
    """

    def __init__(self) -> None: ...

    def uniform(self, shape: tuple[int, ...], dtype: str, device: Device) -> NDArray:
        """
        Uniform samples in [0, 1) of `shape`, as `dtype` (float32 or float64) on `device`.
        """

    def normal(self, shape: tuple[int, ...], dtype: str, device: Device) -> NDArray:
        """Standard normal samples of `shape`, as `dtype` on `device`."""

class GeneratorSource(SampleSource):
    """
    The default source: rand/randn over Needle's default generator (manual_seed).
    """

    def __init__(self) -> None: ...

def initializer_source() -> SampleSource:
    """
    The source initializers and layer constructors use on this thread when given none.
    """

def set_initializer_source(source: SampleSource | None) -> None:
    """
    Sets the process-wide initializer source (None: the default GeneratorSource).
    """

class InitializerSourceScope:
    """Makes a source this thread's initializer source inside a with block."""

    def __init__(self, source: SampleSource) -> None: ...

    def __enter__(self) -> InitializerSourceScope: ...

    def __exit__(self, *args: object) -> None: ...

def init_uniform(shape: Sequence[int], low: float = 0.0, high: float = 1.0, dtype: str = 'float32', device: Device | None = None, source: SampleSource | None = None) -> NDArray:
    """
    Uniform in [low, high): base samples u * (high - low) + low (source None: the initializer source).
    """

def init_normal(shape: Sequence[int], mean: float = 0.0, std: float = 1.0, dtype: str = 'float32', device: Device | None = None, source: SampleSource | None = None) -> NDArray:
    """Normal N(mean, std**2): base samples z * std + mean."""

def calculate_gain(nonlinearity: str) -> float:
    """
    The gain of a nonlinearity (relu sqrt(2), tanh 5/3, linear and sigmoid 1, leaky_relu); ValueError otherwise.
    """

def init_xavier_uniform(fan_in: int, fan_out: int, gain: float = 1.0, shape: Sequence[int] | None = None, dtype: str = 'float32', device: Device | None = None, source: SampleSource | None = None) -> NDArray:
    """
    Uniform in +-gain * sqrt(6 / (fan_in + fan_out)), shape (fan_in, fan_out) unless given.
    """

def init_xavier_normal(fan_in: int, fan_out: int, gain: float = 1.0, shape: Sequence[int] | None = None, dtype: str = 'float32', device: Device | None = None, source: SampleSource | None = None) -> NDArray:
    """Normal with std gain * sqrt(2 / (fan_in + fan_out))."""

def init_kaiming_uniform(fan_in: int, fan_out: int, shape: Sequence[int] | None = None, nonlinearity: str = 'relu', dtype: str = 'float32', device: Device | None = None, source: SampleSource | None = None) -> NDArray:
    """
    Uniform in +-gain * sqrt(3 / fan_in), shape (fan_in, fan_out) unless given.
    """

def init_kaiming_normal(fan_in: int, fan_out: int, shape: Sequence[int] | None = None, nonlinearity: str = 'relu', dtype: str = 'float32', device: Device | None = None, source: SampleSource | None = None) -> NDArray:
    """
    Normal with std gain / sqrt(fan_in), shape (fan_in, fan_out) unless given.
    """

class Tensor:
    """
    An NDArray value with autograd: the op that produced it, its inputs and its gradient. Values are computed eagerly; the graph is recorded when grad mode is on and an input requires grad.
    """

    def __init__(self, array: Tensor | NDArray | numpy.typing.ArrayLike, *, device: Device | str | None = None, dtype: str | None = None, requires_grad: bool = True) -> None:
        """
        A leaf tensor from a Tensor (its values shared unless device/dtype ask for a conversion), an NDArray (copied), a NumPy array (its dtype kept), a nested list or a scalar (float -> float32, int -> int64). requires_grad defaults to True as in Needle (honoured for floating dtypes only).
        """

    @property
    def shape(self) -> tuple[int, ...]:
        """The dimensions (a tuple)."""

    @property
    def dtype(self) -> str:
        """
        The element type: "float32", "float64", "int64", "int32", "int8", "uint8" or "bool".
        """

    @property
    def device(self) -> Device:
        """The device holding the values."""

    @property
    def ndim(self) -> int:
        """Number of dimensions."""

    @property
    def size(self) -> int:
        """Number of elements."""

    def numel(self) -> int:
        """Number of elements (PyTorch's name)."""

    @property
    def data(self) -> Tensor:
        """
        A detached tensor sharing this tensor's values; assigning a Tensor, NDArray or array of the same dtype and device replaces the values (outside the graph).
        """

    @data.setter
    def data(self, value: Tensor | NDArray | numpy.typing.ArrayLike, /) -> None: ...

    @property
    def grad(self) -> Tensor | None:
        """
        The accumulated gradient (None until a backward pass reaches this tensor).
        """

    @grad.setter
    def grad(self, arg: Tensor | None, /) -> None: ...

    @property
    def requires_grad(self) -> bool:
        """Whether gradients are computed for this tensor (floating dtypes only)."""

    @requires_grad.setter
    def requires_grad(self, arg: bool, /) -> None: ...

    @property
    def is_leaf(self) -> bool:
        """
        True when no recorded op produced this tensor (created by the user, detached, or outside grad mode).
        """

    @property
    def op(self, /) -> Op | None:
        """The op that produced this tensor (None for leaves)."""

    @property
    def inputs(self) -> list[Tensor]:
        """The op's input tensors (empty for leaves)."""

    @property
    def cached_data(self) -> NDArray:
        """The NDArray holding the values (Needle's name)."""

    @cached_data.setter
    def cached_data(self, arg: NDArray, /) -> None: ...

    def realize_cached_data(self) -> NDArray:
        """The NDArray holding the values (values are computed eagerly)."""

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's values, outside the graph."""

    def backward(self, out_grad: Tensor | NDArray | numpy.typing.ArrayLike | None = None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """
        Reverse mode from this tensor: accumulates d(self)/d(leaf) . out_grad into the .grad of every tensor that requires grad. Without out_grad, a tensor of ones (also for non-scalar outputs, as in Needle). The graph is released afterwards unless retain_graph; create_graph records the backward pass itself.
        """

    @staticmethod
    def make_from_op(op: Op, inputs: Sequence[Tensor]) -> Tensor:
        """
        The output of `op` on `inputs`, recorded in the graph when grad mode is on and an input requires grad.
        """

    @staticmethod
    def make_const(data: Tensor | NDArray | numpy.typing.ArrayLike, requires_grad: bool = False) -> Tensor:
        """
        A leaf holding `data` (a Tensor's or an NDArray's values are shared, not copied).
        """

    def __array__(self, dtype: object = None, copy: bool | None = None) -> numpy.typing.NDArray[Any]: ...

    def item(self) -> bool | int | float:
        """The single element as a Python number."""

    def to(self, device: Device) -> Tensor:
        """
        This tensor on `device`: itself when already there; a leaf becomes a new leaf there (the values copied); a computed tensor is moved differentiably (its gradient flows back).
        """

    def astype(self, dtype: str) -> Tensor:
        """
        This tensor converted to `dtype` (differentiable between floating dtypes).
        """

    def __float__(self) -> float: ...

    def __int__(self) -> int: ...

    def __bool__(self) -> bool: ...

    def __len__(self) -> int: ...

    def __hash__(self) -> int: ...

    def __repr__(self) -> str: ...

    def __str__(self) -> str: ...

    def __setitem__(self, key: int | slice | None | types.EllipsisType | tuple[int | slice | None | types.EllipsisType, ...], value: Tensor | NDArray | bool | int | float | numpy.typing.ArrayLike) -> None:
        """
        Writes `value` (broadcast, converted to this dtype) into the indexed elements, in place. Refused for tensors that require grad (except leaves under no_grad).
        """

    def __getitem__(self, key: int | slice | None | types.EllipsisType | tuple[int | slice | None | types.EllipsisType, ...]) -> Tensor:
        """
        Basic indexing (ints, slices with steps, None, ...); the gradient flows back into the indexed elements.
        """

    def __iter__(self) -> Iterator[Tensor]:
        """The slices along the first axis."""

    @overload
    def __add__(self, arg: Tensor, /) -> Tensor: ...

    @overload
    def __add__(self, arg: bool | int | float, /) -> Tensor: ...

    @overload
    def __add__(self, other: NDArray | numpy.typing.NDArray[Any], /) -> Tensor: ...

    @overload
    def __radd__(self, arg: bool | int | float, /) -> Tensor: ...

    @overload
    def __radd__(self, other: NDArray | numpy.typing.NDArray[Any], /) -> Tensor: ...

    @overload
    def __sub__(self, arg: Tensor, /) -> Tensor: ...

    @overload
    def __sub__(self, arg: bool | int | float, /) -> Tensor: ...

    @overload
    def __sub__(self, other: NDArray | numpy.typing.NDArray[Any], /) -> Tensor: ...

    @overload
    def __rsub__(self, arg: bool | int | float, /) -> Tensor: ...

    @overload
    def __rsub__(self, other: NDArray | numpy.typing.NDArray[Any], /) -> Tensor: ...

    @overload
    def __mul__(self, arg: Tensor, /) -> Tensor: ...

    @overload
    def __mul__(self, arg: bool | int | float, /) -> Tensor: ...

    @overload
    def __mul__(self, other: NDArray | numpy.typing.NDArray[Any], /) -> Tensor: ...

    @overload
    def __rmul__(self, arg: bool | int | float, /) -> Tensor: ...

    @overload
    def __rmul__(self, other: NDArray | numpy.typing.NDArray[Any], /) -> Tensor: ...

    @overload
    def __truediv__(self, arg: Tensor, /) -> Tensor: ...

    @overload
    def __truediv__(self, arg: bool | int | float, /) -> Tensor: ...

    @overload
    def __truediv__(self, other: NDArray | numpy.typing.NDArray[Any], /) -> Tensor: ...

    @overload
    def __rtruediv__(self, arg: bool | int | float, /) -> Tensor: ...

    @overload
    def __rtruediv__(self, other: NDArray | numpy.typing.NDArray[Any], /) -> Tensor: ...

    @overload
    def __pow__(self, arg: Tensor, /) -> Tensor: ...

    @overload
    def __pow__(self, arg: bool | int | float, /) -> Tensor: ...

    @overload
    def __pow__(self, other: NDArray | numpy.typing.NDArray[Any], /) -> Tensor: ...

    @overload
    def __rpow__(self, arg: bool | int | float, /) -> Tensor: ...

    @overload
    def __rpow__(self, other: NDArray | numpy.typing.NDArray[Any], /) -> Tensor: ...

    @overload
    def __matmul__(self, arg: Tensor, /) -> Tensor: ...

    @overload
    def __matmul__(self, other: NDArray | numpy.typing.NDArray[Any], /) -> Tensor: ...

    def __rmatmul__(self, other: NDArray | numpy.typing.NDArray[Any], /) -> Tensor: ...

    def __eq__(self, other: object, /) -> Tensor:  # type: ignore[override]
        """a == other, element-wise (bool; no grad)."""

    def __ne__(self, other: object, /) -> Tensor:  # type: ignore[override]
        """a != other, element-wise (bool; no grad)."""

    def __lt__(self, other: Tensor | NDArray | bool | int | float, /) -> Tensor:
        """Element-wise comparison (bool; no grad)."""

    def __le__(self, other: Tensor | NDArray | bool | int | float, /) -> Tensor:
        """Element-wise comparison (bool; no grad)."""

    def __gt__(self, other: Tensor | NDArray | bool | int | float, /) -> Tensor:
        """Element-wise comparison (bool; no grad)."""

    def __ge__(self, other: Tensor | NDArray | bool | int | float, /) -> Tensor:
        """Element-wise comparison (bool; no grad)."""

    def __neg__(self) -> Tensor: ...

    def __abs__(self) -> Tensor: ...

    def sum(self, axes: int | Sequence[int] | None = None, keepdims: bool = False, *, dim: int | Sequence[int] | None = None, keepdim: bool | None = None) -> Tensor:
        """
        Sum over `axes` (None: every axis); PyTorch's dim=/keepdim= are accepted.
        """

    def mean(self, axes: int | Sequence[int] | None = None, keepdims: bool = False, *, dim: int | Sequence[int] | None = None, keepdim: bool | None = None) -> Tensor:
        """Mean over `axes` (None: every axis)."""

    def max(self, axes: int | Sequence[int] | None = None, keepdims: bool = False, *, dim: int | Sequence[int] | None = None, keepdim: bool | None = None) -> Tensor:
        """Maximum over `axes` (None: every axis; the values only, as in Needle)."""

    def min(self, axes: int | Sequence[int] | None = None, keepdims: bool = False, *, dim: int | Sequence[int] | None = None, keepdim: bool | None = None) -> Tensor:
        """Minimum over `axes` (None: every axis)."""

    def logsumexp(self, axes: int | Sequence[int] | None = None, keepdims: bool = False, *, dim: int | Sequence[int] | None = None, keepdim: bool | None = None) -> Tensor:
        """log(sum(exp(a))) over `axes`, computed stably (None: every axis)."""

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """
        Index (int64) of the first maximum along `dim` (None: of the flattened tensor); no gradient.
        """

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """
        A tensor with the same values in a new shape (one entry may be -1): reshape((2, 3)) or reshape(2, 3).
        """

    def view(self, *shape: int | Sequence[int]) -> Tensor:
        """PyTorch's name for reshape."""

    def transpose(self, *dims: int | Sequence[int] | None, axes: Sequence[int] | None = None) -> Tensor:
        """
        Needle's transpose: swaps the last two axes, or the two given ones (transpose((0, 2)), transpose(0, 2) or transpose(axes=(0, 2))).
        """

    def permute(self, *axes: int | Sequence[int]) -> Tensor:
        """The axes reordered: permute((2, 0, 1)) or permute(2, 0, 1)."""

    @property
    def T(self) -> Tensor:
        """The axes reversed."""

    def broadcast_to(self, *shape: int | Sequence[int]) -> Tensor:
        """Broadcast to `shape` (NumPy rules)."""

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Axes start_dim..end_dim merged into one."""

    def unsqueeze(self, dim: int) -> Tensor:
        """A size-1 axis inserted at `dim`."""

    def squeeze(self, dim: int | Sequence[int] | None = None) -> Tensor:
        """The given size-1 axes removed (every size-1 axis by default)."""

    def exp(self) -> Tensor: ...

    def log(self) -> Tensor: ...

    def sqrt(self) -> Tensor: ...

    def abs(self) -> Tensor: ...

    def relu(self) -> Tensor: ...

    def tanh(self) -> Tensor: ...

    def sigmoid(self) -> Tensor: ...

    def matmul(self, other: Tensor) -> Tensor:
        """Matrix product (batched, broadcasting batch dimensions)."""

    def softmax(self, dim: int = -1) -> Tensor:
        """Softmax along `dim`."""

    def log_softmax(self, dim: int = -1) -> Tensor:
        """Log-softmax along `dim`."""

    def numpy(self) -> numpy.typing.NDArray[Any]:
        """
        The values as a NumPy array sharing this tensor's memory (host devices; other devices copy).
        """

    __array_priority__: int = 1001

class Op:
    """
    A differentiable operation built into Needle's C++ core (the `op` of tensors it produced). Define new ops in Python by subclassing needle.autograd.TensorOp (which implements compute and gradient in Python).
    """

    @property
    def name(self) -> str:
        """Short name: "add", "matmul", ..."""

    def compute(self, *arrays: NDArray) -> NDArray | tuple[NDArray, ...]:
        """
        The forward computation on arrays (a tuple for an op with several outputs).
        """

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor | tuple[Tensor | None, ...] | None:
        """
        The gradient of each input given the output's gradient: a Tensor for a one-input op, else a tuple (None where an input gets no gradient).
        """

    def gradient_as_tuple(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor | None, ...]:
        """gradient() as a tuple with one entry per input."""

    def __call__(self, *inputs: Tensor) -> Tensor:
        """Applies this op to new inputs."""

    def __repr__(self) -> str: ...

def grad_enabled() -> bool:
    """True unless graph recording is disabled on this thread (no_grad)."""

def set_grad_enabled(enabled: bool) -> None:
    """Turns graph recording on or off for this thread."""

def topological_order(outputs: Sequence[Tensor]) -> list[Tensor]:
    """
    Every tensor reachable from `outputs` through op inputs, each after all of its inputs (Needle's find_topo_sort).
    """

def live_tensor_count() -> int:
    """
    Number of tensors alive in this process (Needle's autograd.TENSOR_COUNTER).
    """

class Module:
    """
    A C++ module (needle::nn::Module): parameters, buffers and child modules with a forward computation. needle.nn's layers wrap these objects.
    """

    @property
    def name(self) -> str:
        """The layer's name ("Linear", ...)."""

    def forward(self, x: Tensor) -> Tensor:
        """The computation of a module with one input."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """forward(x)."""

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        """
        (dotted name, tensor) of every parameter, in registration order; shared tensors once.
        """

    def parameters(self) -> list[Tensor]:
        """Every parameter, in registration order; shared tensors once."""

    def named_buffers(self) -> list[tuple[str, Tensor]]:
        """(dotted name, tensor) of every buffer (running statistics)."""

    def named_children(self) -> list[tuple[str, Module]]:
        """(name, module) of the direct children."""

    def children(self) -> list[Module]:
        """The direct children."""

    def parameter(self, name: str) -> Tensor:
        """This module's own parameter `name`."""

    def buffer(self, name: str) -> Tensor:
        """This module's own buffer `name`."""

    def child(self, name: str) -> Module:
        """This module's direct child `name`."""

    def train(self, mode: bool = True) -> None:
        """Sets training mode on this module and its descendants."""

    def eval(self) -> None:
        """train(False)."""

    @property
    def training(self) -> bool:
        """Whether the module is in training mode."""

    def state_dict(self) -> dict[str, NDArray]:
        """
        Parameters and buffers by dotted name, as NDArrays (the values, not copies).
        """

    def load_state_dict(self, state: Mapping[str, NDArray], strict: bool = True) -> None:
        """
        Replaces values by name (copied). Every entry is validated (names with strict, shapes, dtypes) before any value changes; errors are ValueErrors naming the key.
        """

    def to(self, device: Device) -> None:
        """
        Moves every parameter, buffer and gradient to `device`, keeping the Tensor objects.
        """

    def zero_grad(self) -> None:
        """Drops every parameter's gradient."""

    def adopt_parameters(self, cls: type[Tensor]) -> list[tuple[str, Tensor]]:
        """
        named_parameters(), each tensor's Python object made an instance of `cls` (a Tensor subclass) unless it already has one.
        """

    def __repr__(self) -> str: ...

def check_state_dict(owner: str, expected: Sequence[tuple[str, Tensor]], state: Mapping[str, NDArray], strict: bool = True) -> list[int]:
    """
    load_state_dict's checks for any module: `expected` its (dotted name, tensor) entries, `state` the arrays to load. Raises ValueError '<owner>.load_state_dict: ...' naming the key (missing or unexpected under strict, wrong shape or dtype); returns the indices of the entries `state` holds.
    """

def move_tensor(tensor: Tensor, device: Device) -> None:
    """
    Moves a tensor's value and gradient to `device` in place (the Tensor object is kept).
    """

class Identity(Module):
    def __init__(self) -> None: ...

class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Device | None = None, dtype: str | None = None) -> None: ...

    @property
    def in_features(self) -> int: ...

    @property
    def out_features(self) -> int: ...

    @property
    def weight(self) -> Tensor:
        """(in_features, out_features)."""

    @weight.setter
    def weight(self, arg: Tensor, /) -> None: ...

    @property
    def bias(self) -> Tensor:
        """(1, out_features), or None."""

    @bias.setter
    def bias(self, arg: Tensor, /) -> None: ...

class Flatten(Module):
    def __init__(self) -> None: ...

class ReLU(Module):
    def __init__(self) -> None: ...

class Tanh(Module):
    def __init__(self) -> None: ...

class Sigmoid(Module):
    def __init__(self) -> None: ...

class GELU(Module):
    def __init__(self) -> None: ...

class ModuleList(Module):
    @overload
    def __init__(self) -> None: ...

    @overload
    def __init__(self, modules: Sequence[Module]) -> None: ...

    def append(self, module: Module) -> None: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Module: ...

class Sequential(ModuleList):
    @overload
    def __init__(self) -> None: ...

    @overload
    def __init__(self, modules: Sequence[Module]) -> None: ...

class Residual(Module):
    def __init__(self, fn: Module) -> None: ...

    @property
    def fn(self) -> Module: ...

class SoftmaxLoss(Module):
    def __init__(self) -> None: ...

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Mean cross entropy of logits (N, C) and integer labels (N,)."""

class MSELoss(Module):
    def __init__(self) -> None: ...

    def __call__(self, prediction: Tensor, target: Tensor) -> Tensor:
        """Mean of squared differences."""

class Dropout(Module):
    def __init__(self, p: float = 0.5) -> None: ...

    @property
    def p(self) -> float:
        """In [0, 1)."""

    @p.setter
    def p(self, arg: float, /) -> None: ...

class Embedding(Module):
    def __init__(self, num_embeddings: int, embedding_dim: int, device: Device | None = None, dtype: str | None = None) -> None: ...

    @property
    def num_embeddings(self) -> int: ...

    @property
    def embedding_dim(self) -> int: ...

    @property
    def weight(self) -> Tensor:
        """(num_embeddings, embedding_dim)."""

    @weight.setter
    def weight(self, arg: Tensor, /) -> None: ...

class BatchNorm(Module):
    @property
    def num_features(self) -> int: ...

    @property
    def eps(self) -> float:
        """Finite and >= 0 (ValueError otherwise)."""

    @eps.setter
    def eps(self, arg: float, /) -> None: ...

    @property
    def momentum(self) -> float:
        """In [0, 1]."""

    @momentum.setter
    def momentum(self, arg: float, /) -> None: ...

    @property
    def weight(self) -> Tensor: ...

    @weight.setter
    def weight(self, arg: Tensor, /) -> None: ...

    @property
    def bias(self) -> Tensor: ...

    @bias.setter
    def bias(self, arg: Tensor, /) -> None: ...

    @property
    def running_mean(self) -> Tensor: ...

    @running_mean.setter
    def running_mean(self, arg: Tensor, /) -> None: ...

    @property
    def running_var(self) -> Tensor: ...

    @running_var.setter
    def running_var(self, arg: Tensor, /) -> None: ...

class BatchNorm1d(BatchNorm):
    def __init__(self, dim: int, eps: float = 1e-05, momentum: float = 0.1, device: Device | None = None, dtype: str | None = None) -> None: ...

class BatchNorm2d(BatchNorm):
    def __init__(self, dim: int, eps: float = 1e-05, momentum: float = 0.1, device: Device | None = None, dtype: str | None = None) -> None: ...

class LayerNorm1d(Module):
    def __init__(self, dim: int, eps: float = 1e-05, device: Device | None = None, dtype: str | None = None) -> None: ...

    @property
    def dim(self) -> int: ...

    @property
    def eps(self) -> float:
        """Finite and >= 0 (ValueError otherwise)."""

    @eps.setter
    def eps(self, arg: float, /) -> None: ...

    @property
    def weight(self) -> Tensor: ...

    @weight.setter
    def weight(self, arg: Tensor, /) -> None: ...

    @property
    def bias(self) -> Tensor: ...

    @bias.setter
    def bias(self, arg: Tensor, /) -> None: ...

class Conv(Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True, device: Device | None = None, dtype: str | None = None, padding: int | None = None) -> None: ...

    @property
    def in_channels(self) -> int: ...

    @property
    def out_channels(self) -> int: ...

    @property
    def kernel_size(self) -> int: ...

    @property
    def stride(self) -> int: ...

    @property
    def padding(self) -> int: ...

    @property
    def weight(self) -> Tensor:
        """(kernel_size, kernel_size, in_channels, out_channels)."""

    @weight.setter
    def weight(self, arg: Tensor, /) -> None: ...

    @property
    def bias(self) -> Tensor:
        """(out_channels,), or None."""

    @bias.setter
    def bias(self, arg: Tensor, /) -> None: ...

class Conv2d(Conv):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True, device: Device | None = None, dtype: str | None = None) -> None: ...

class MaxPool2d(Module):
    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None: ...

class AvgPool2d(Module):
    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None: ...

class RNNCell(Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = 'tanh', device: Device | None = None, dtype: str | None = None) -> None: ...

    def __call__(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """h' for x (batch, input_size) and h (batch, hidden_size) or None."""

    @property
    def nonlinearity(self) -> str: ...

    @property
    def input_size(self) -> int: ...

    @property
    def hidden_size(self) -> int: ...

    @property
    def W_ih(self) -> Tensor: ...

    @W_ih.setter
    def W_ih(self, arg: Tensor, /) -> None: ...

    @property
    def W_hh(self) -> Tensor: ...

    @W_hh.setter
    def W_hh(self, arg: Tensor, /) -> None: ...

    @property
    def bias_ih(self) -> Tensor:
        """None without bias."""

    @bias_ih.setter
    def bias_ih(self, arg: Tensor, /) -> None: ...

    @property
    def bias_hh(self) -> Tensor:
        """None without bias."""

    @bias_hh.setter
    def bias_hh(self, arg: Tensor, /) -> None: ...

class LSTMCell(Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Device | None = None, dtype: str | None = None) -> None: ...

    def __call__(self, x: Tensor, h: tuple[Tensor | None, Tensor | None] | None = None) -> tuple[Tensor, Tensor]:
        """(h', c') for x and h = (h0, c0) (None or either None: zeros)."""

    @property
    def input_size(self) -> int: ...

    @property
    def hidden_size(self) -> int: ...

    @property
    def W_ih(self) -> Tensor: ...

    @W_ih.setter
    def W_ih(self, arg: Tensor, /) -> None: ...

    @property
    def W_hh(self) -> Tensor: ...

    @W_hh.setter
    def W_hh(self, arg: Tensor, /) -> None: ...

    @property
    def bias_ih(self) -> Tensor:
        """None without bias."""

    @bias_ih.setter
    def bias_ih(self, arg: Tensor, /) -> None: ...

    @property
    def bias_hh(self) -> Tensor:
        """None without bias."""

    @bias_hh.setter
    def bias_hh(self, arg: Tensor, /) -> None: ...

class RNN(Module):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, nonlinearity: str = 'tanh', device: Device | None = None, dtype: str | None = None) -> None: ...

    def __call__(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """
        (output (seq_len, batch, hidden_size), h_n (num_layers, batch, hidden_size)).
        """

    @property
    def input_size(self) -> int: ...

    @property
    def hidden_size(self) -> int: ...

    @property
    def num_layers(self) -> int: ...

    def cell(self, layer: int) -> RNNCell: ...

class LSTM(Module):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, device: Device | None = None, dtype: str | None = None) -> None: ...

    def __call__(self, x: Tensor, h: tuple[Tensor | None, Tensor | None] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """(output, (h_n, c_n)) for x and h = (h0, c0) or None."""

    @property
    def input_size(self) -> int: ...

    @property
    def hidden_size(self) -> int: ...

    @property
    def num_layers(self) -> int: ...

    def cell(self, layer: int) -> LSTMCell: ...

class MultiHeadAttention(Module):
    def __init__(self, embed_dim: int, num_heads: int, causal: bool = False, dropout: float = 0.0, bias: bool = False, device: Device | None = None, dtype: str | None = None) -> None: ...

    def __call__(self, q: Tensor, k: Tensor | None = None, v: Tensor | None = None) -> Tensor:
        """
        Attention of q (batch, L, embed_dim) over k and v (batch, S, embed_dim); k defaults to q, v to k.
        """

    @property
    def embed_dim(self) -> int: ...

    @property
    def num_heads(self) -> int: ...

    @property
    def causal(self) -> bool: ...

    @property
    def dropout(self) -> float: ...

    @property
    def q_projection(self) -> Linear: ...

    @property
    def k_projection(self) -> Linear: ...

    @property
    def v_projection(self) -> Linear: ...

    @property
    def out_projection(self) -> Linear: ...

class TransformerLayer(Module):
    def __init__(self, dim: int, num_heads: int, hidden_size: int, dropout: float = 0.0, causal: bool = True, device: Device | None = None, dtype: str | None = None) -> None: ...

    @property
    def attn(self) -> MultiHeadAttention: ...

class Transformer(Module):
    def __init__(self, vocab_size: int, dim: int, num_layers: int, num_heads: int, hidden_size: int, max_seq_len: int = 2048, dropout: float = 0.0, causal: bool = True, device: Device | None = None, dtype: str | None = None) -> None: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def max_seq_len(self) -> int: ...

    def __call__(self, tokens: Tensor, cache: KVCache | None = None) -> Tensor:
        """
        Logits (batch, seq, vocab_size); with a cache, of the new tokens that continue its sequences.
        """

    def generate(self, prompt: NDArray, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0, use_cache: bool = True, cache: KVCache | None = None) -> NDArray:
        """
        prompt ids (batch, T) followed by max_new_tokens sampled ids: (batch, T + max_new_tokens).
        """

class KVCache:
    def __init__(self, model: Transformer, batch_size: int, capacity: int = 0) -> None: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def capacity(self) -> int: ...

    @property
    def length(self) -> int: ...

    @property
    def num_layers(self) -> int: ...

    def keys(self, layer: int) -> NDArray:
        """Layer's keys (batch, num_heads, capacity, head_dim)."""

    def values(self, layer: int) -> NDArray:
        """Layer's values (batch, num_heads, capacity, head_dim)."""

    def reset(self) -> None:
        """Empties the cache (length 0) and keeps its memory."""

class QuantizedLinear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Device = ...) -> None: ...

    @staticmethod
    def from_linear(linear: Linear) -> QuantizedLinear: ...

    @staticmethod
    def from_weight(weight: NDArray, bias: NDArray) -> QuantizedLinear:
        """
        From a float weight (out, in) (PyTorch's layout) and a bias (out,) or an empty array.
        """

    @property
    def in_features(self) -> int: ...

    @property
    def out_features(self) -> int: ...

    @property
    def input_scale(self) -> float: ...

    @input_scale.setter
    def input_scale(self, arg: float, /) -> None: ...

class QuantizedConv(Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, bias: bool = True, device: Device = ...) -> None: ...

    @staticmethod
    def from_conv(conv: Conv, input_scale: float = 0.0) -> QuantizedConv: ...

    @property
    def in_channels(self) -> int: ...

    @property
    def out_channels(self) -> int: ...

    @property
    def kernel_size(self) -> int: ...

    @property
    def stride(self) -> int: ...

    @property
    def padding(self) -> int: ...

    @property
    def input_scale(self) -> float: ...

    @input_scale.setter
    def input_scale(self, arg: float, /) -> None: ...

class QuantizedLSTM(Module):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, device: Device = ...) -> None: ...

    @staticmethod
    def from_lstm(lstm: LSTM) -> QuantizedLSTM: ...

    def __call__(self, x: Tensor, h: tuple[Tensor | None, Tensor | None] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """(output, (h_n, c_n)) for x and h = (h0, c0) or None."""

    @property
    def input_size(self) -> int: ...

    @property
    def hidden_size(self) -> int: ...

    @property
    def num_layers(self) -> int: ...

def quantize_dynamic(module: Module) -> int:
    """
    Replaces every Linear and LSTM below module by its int8 version, in place; returns how many.
    """

def quantize_convolutions(module: Module) -> int:
    """
    Replaces every Conv below module by a QuantizedConv (input_scale 0 until calibrated); returns how many.
    """

class Optimizer:
    """A C++ optimizer: updates its parameters in place from their gradients."""

    def step(self) -> None:
        """One update of every parameter that has a gradient."""

    def reset_grad(self) -> None:
        """Drops every parameter's gradient."""

    def zero_grad(self) -> None:
        """reset_grad()."""

    @property
    def lr(self) -> float:
        """The learning rate (ValueError when set negative)."""

    @lr.setter
    def lr(self, arg: float, /) -> None: ...

    @property
    def params(self) -> list[Tensor]:
        """The parameters, in the order given."""

    def state_dict(self) -> dict[str, NDArray]:
        """
        The state a resumed run needs, as NDArrays by name: 'lr', 'param_count' and the buffers 'state.<index>.<field>' (plus 'step' for Adam and AdamW).
        """

    def load_state_dict(self, state: Mapping[str, NDArray]) -> None:
        """
        Restores a state_dict() of the same kind of optimizer over parameters of the same count, shapes and dtypes; ValueError, changing nothing, when it does not match.
        """

    @property
    def name(self) -> str: ...

class SGD(Optimizer):
    def __init__(self, params: Sequence[Tensor], lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        """
        Needle's SGD: u <- momentum u + (1 - momentum) (grad + weight_decay p); p <- p - lr u.
        """

    @property
    def momentum(self) -> float:
        """In [0, 1)."""

    @momentum.setter
    def momentum(self, arg: float, /) -> None: ...

    @property
    def weight_decay(self) -> float:
        """>= 0."""

    @weight_decay.setter
    def weight_decay(self, arg: float, /) -> None: ...

class Adam(Optimizer):
    def __init__(self, params: Sequence[Tensor], lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-08, weight_decay: float = 0.0) -> None:
        """
        Needle's Adam with bias correction (weight decay added to the gradient).
        """

    @property
    def steps(self) -> int:
        """Calls to step() so far."""

    @property
    def beta1(self) -> float:
        """In [0, 1)."""

    @beta1.setter
    def beta1(self, arg: float, /) -> None: ...

    @property
    def beta2(self) -> float:
        """In [0, 1)."""

    @beta2.setter
    def beta2(self, arg: float, /) -> None: ...

    @property
    def eps(self) -> float:
        """>= 0."""

    @eps.setter
    def eps(self, arg: float, /) -> None: ...

    @property
    def weight_decay(self) -> float:
        """>= 0."""

    @weight_decay.setter
    def weight_decay(self, arg: float, /) -> None: ...

class AdamW(Adam):
    def __init__(self, params: Sequence[Tensor], lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-08, weight_decay: float = 0.01) -> None:
        """Adam with decoupled weight decay (PyTorch's AdamW)."""

class LRScheduler:
    """
    A learning-rate schedule driving an optimizer: call step() after optimizer.step().
    """

    def step(self) -> None:
        """Advances the schedule by one and sets the optimizer's learning rate."""

    def get_lr(self) -> float:
        """The learning rate of the current step."""

    def lr_at(self, epoch: int) -> float:
        """The learning rate `epoch` steps after construction."""

    def state_dict(self) -> dict[str, NDArray]:
        """'last_epoch' and 'base_lr' as 0-d NDArrays."""

    def load_state_dict(self, state: Mapping[str, NDArray]) -> None:
        """
        Restores a state_dict() and sets the optimizer's learning rate to that step's; ValueError, changing nothing, when it does not match.
        """

    @property
    def last_epoch(self) -> int: ...

    @property
    def base_lr(self) -> float: ...

class StepLR(LRScheduler):
    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        """base_lr * gamma ** (epoch // step_size)."""

class CosineAnnealingLR(LRScheduler):
    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        """eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""

class LinearWarmup(LRScheduler):
    def __init__(self, optimizer: Optimizer, warmup_steps: int, start_factor: float = 0.3333333333333333, then: LRScheduler | None = None) -> None:
        """
        base_lr * (start_factor + (1 - start_factor) * epoch / warmup_steps) during the warm-up, then base_lr or the schedule `then` (counting from the end of the warm-up).
        """

def clip_grad_norm(params: Sequence[Tensor], max_norm: float) -> float:
    """
    Scales the gradients so that their global 2-norm is at most max_norm; returns the norm before clipping.
    """

class Transform:
    """A C++ image transform on one (H, W, C) image."""

    def __call__(self, image: NDArray) -> NDArray:
        """The transformed image (a new array)."""

class RandomFlipHorizontal(Transform):
    def __init__(self, p: float = 0.5) -> None:
        """
        Mirrors the image along W with probability p (Needle's C++ generator; needle.data's transform draws from NumPy instead).
        """

class RandomCrop(Transform):
    def __init__(self, padding: int = 3) -> None:
        """Zero-pads by `padding` and crops a window shifted by up to +-padding."""

    def crop(self, image: NDArray, shift_x: int, shift_y: int) -> NDArray:
        """The crop for given shifts (dx along H, dy along W)."""

class Dataset:
    """A C++ dataset: samples are tuples of NDArrays."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[NDArray, ...]:
        """Sample `index` (negative counts from the end)."""

    def apply_transforms(self, image: NDArray) -> NDArray:
        """The dataset's transforms applied in order to one (H, W, C) image."""

    @property
    def transforms(self) -> list[Transform]: ...

class NDArrayDataset(Dataset):
    def __init__(self, arrays: Sequence[NDArray]) -> None:
        """Sample i is the i-th row of every array."""

class MNISTDataset(Dataset):
    def __init__(self, image_filename: str, label_filename: str, transforms: Sequence[Transform] = []) -> None:
        """
        Gzipped (or plain) IDX images and labels: images (28, 28, 1) float32 in [0, 1], labels int64.
        """

    @property
    def images(self) -> NDArray:
        """(N, rows, cols, 1) float32, untransformed."""

    @property
    def labels(self) -> NDArray:
        """(N,) int64."""

class CIFAR10Dataset(Dataset):
    def __init__(self, base_folder: str, train: bool, transforms: Sequence[Transform] = []) -> None:
        """
        The cifar-10-batches-py pickles (read without running code): images (3, 32, 32) float32 in [0, 1].
        """

    @property
    def images(self) -> NDArray:
        """(N, 3, 32, 32) float32, untransformed."""

    @property
    def labels(self) -> NDArray:
        """(N,) int64."""

class DataLoaderEpoch:
    """One pass over a DataLoader's data."""

    def __iter__(self) -> DataLoaderEpoch: ...

    def __next__(self) -> tuple[NDArray, ...]: ...

    @property
    def order(self) -> list[int]:
        """The sample indices of this epoch, in batch order."""

class DataLoader:
    """
    Batches of a C++ dataset, built on worker threads when num_workers > 0.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False, num_workers: int = 0, seed: int | None = None) -> None: ...

    def __iter__(self) -> DataLoaderEpoch:
        """Starts the next epoch (a new permutation when shuffling)."""

    def epoch(self, order: Sequence[int]) -> DataLoaderEpoch:
        """
        An epoch over the samples `order` names, in that order (e.g. a permutation drawn by NumPy), built on the worker threads like any other.
        """

    def __len__(self) -> int:
        """Batches per epoch."""

    @property
    def batch_size(self) -> int: ...

    @property
    def num_workers(self) -> int: ...

    @property
    def dataset(self) -> Dataset: ...

class Dictionary:
    """Words and their ids (Penn Treebank)."""

    def __init__(self) -> None: ...

    def add_word(self, word: str) -> int:
        """The id of `word`, added when new."""

    def index(self, word: str) -> int:
        """The id of a known word (ValueError otherwise)."""

    def word(self, id: int) -> str:
        """The word of an id."""

    def __len__(self) -> int: ...

    @property
    def word2idx(self) -> dict[str, int]:
        """A copy of the word -> id map."""

    @property
    def idx2word(self) -> list[str]:
        """A copy of the id -> word list."""

class Corpus:
    """The train/valid/test splits of a Penn Treebank folder as word ids."""

    def __init__(self, base_dir: str, max_lines: int | None = None) -> None: ...

    def tokenize(self, path: str, max_lines: int | None = None) -> list[int]:
        """
        Adds the words of `path` (each line then <eos>) to the dictionary and returns their ids.
        """

    @property
    def dictionary(self) -> Dictionary: ...

    @property
    def train(self) -> list[int]: ...

    @property
    def valid(self) -> list[int]: ...

    @property
    def test(self) -> list[int]: ...

def batchify(data: Sequence[int], batch_size: int, dtype: str = 'int64', device: Device | None = None) -> NDArray:
    """
    Needle's batchify: ids laid out as (len(data) // batch_size, batch_size), column j the j-th run.
    """

def get_batch(batches: NDArray, i: int, bptt: int) -> tuple[NDArray, NDArray]:
    """
    Needle's get_batch: (rows [i, i + L), rows [i + 1, i + 1 + L) flattened), L = min(bptt, nbatch - 1 - i).
    """

def save_safetensors(path: str, tensors: Mapping[str, NDArray], metadata: Mapping[str, str] = {}) -> None:
    """Writes NDArrays by name (and string metadata) to a safetensors file."""

def load_safetensors(path: str, device: Device | None = None) -> dict[str, NDArray]:
    """
    Every tensor of a safetensors file, as NDArrays on `device`. The whole file is validated first: a missing, truncated or malformed file raises ValueError naming it.
    """

def load_safetensors_metadata(path: str) -> dict[str, str]:
    """The "__metadata__" of a safetensors file (empty when absent)."""

def debug_set_package_dir(package: str, cwd: str) -> None:
    """
    Frames under `package` are skipped when naming call sites; paths under `cwd` are shown relative.
    """

class TraceSession:
    """The recorder behind needle.trace(): start(), stop(), then read it."""

    def __init__(self) -> None: ...

    def start(self) -> None:
        """Starts recording (RuntimeError when another trace records)."""

    def stop(self) -> None:
        """Stops recording."""

    def events(self) -> list[dict[str, Any]]:
        """
        The recorded events as dicts (times in microseconds from the start of the trace).
        """

    def chrome_json(self) -> str:
        """The recording in Chrome's trace event format."""

    def save(self, path: str) -> None:
        """Writes the Chrome trace JSON to `path`."""

    def summary(self) -> str:
        """
        Time per op, backward node and kernel, share of the traced time, GFLOP/s and GB/s.
        """

    def duration_us(self) -> float:
        """Wall time of the trace in microseconds."""

def trace_is_recording() -> bool:
    """True while some trace records."""

def debug_enable_anomaly_mode() -> None:
    """Turns anomaly mode on (calls nest)."""

def debug_disable_anomaly_mode() -> None:
    """Undoes one debug_enable_anomaly_mode()."""

def anomaly_mode_enabled() -> bool:
    """True while anomaly mode is on."""

def debug_push_check_against_ref(rtol: float, atol: float) -> None:
    """
    Starts checking every op against the ref device with these tolerances (calls nest).
    """

def debug_pop_check_against_ref() -> None:
    """Undoes one debug_push_check_against_ref()."""

def check_against_ref_enabled() -> bool:
    """True while ops are checked against ref."""

def memory_stats(device: Device | None = None) -> dict[str, int]:
    """
    live_bytes, cached_bytes (0: no caching allocator), peak_bytes, live_arrays (of the device's type) and live_tensors (all devices).
    """

def reset_peak_memory_stats(device: Device | None = None) -> None:
    """Restarts the peak at the current live bytes."""

def empty_cache() -> int:
    """Releases the allocator's cache; returns the bytes released (always 0)."""

def memory_summary() -> str:
    """Per-device statistics and live tensors grouped by call site."""

def memory_by_call_site() -> list[tuple[str, int, int]]:
    """
    (call site, live tensors, bytes) for tensors created while tracked, largest first.
    """

def debug_enable_memory_tracking() -> None:
    """Records tensors' call sites (calls nest)."""

def debug_disable_memory_tracking() -> None:
    """Undoes one debug_enable_memory_tracking()."""

def measure_fma_peak(threads: int = 1, seconds: float = 0.2) -> dict[str, object]:
    """
    The float32 FMA peak measured on `threads` threads at once: isa, threads, gflops (all together).
    """

def graph_dot(tensor: Tensor) -> str:
    """The autograd graph behind `tensor` as Graphviz DOT."""

def set_num_threads(n: int) -> None:
    """
    Sets how many threads the cpu kernels use, the calling thread included (1 to 1024; ValueError otherwise). The default comes from the NEEDLE_NUM_THREADS environment variable, else the number of hardware threads.
    """

def get_num_threads() -> int:
    """The number of threads the cpu kernels use."""

class Work:
    """A collective in flight (async_op=True)."""

    @property
    def completed(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> None:
        """
        Blocks until the collective completed; RuntimeError after `timeout` seconds (default: NEEDLE_DIST_TIMEOUT or 300) or when it failed.
        """

class ProcessGroup:
    """The ranks of this job and the collectives between them."""

    @property
    def rank(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def local_rank(self) -> int: ...

    @property
    def backend(self) -> str: ...

    def all_reduce(self, array: NDArray, op: str = 'sum', async_op: bool = False) -> object:
        """Reduces `array` over the ranks in place ('sum', 'average' or 'max')."""

    def broadcast(self, array: NDArray, root: int = 0, async_op: bool = False) -> object:
        """Copies rank `root`'s `array` into every rank's."""

    def all_gather_into(self, output: NDArray, input: NDArray, async_op: bool = False) -> object:
        """Every rank's `input` into `output` of shape (size, *input.shape)."""

    def reduce_scatter_into(self, output: NDArray, input: NDArray, op: str = 'sum', async_op: bool = False) -> object:
        """
        `input` (size * n, ...) reduced over the ranks; this rank's block of n rows into `output`.
        """

    def barrier(self, async_op: bool = False) -> object:
        """Returns once every rank has called barrier()."""

def dist_init() -> ProcessGroup:
    """
    The process group of this job, set up from the launcher's environment on the first call.
    """

def dist_is_initialized() -> bool: ...

def dist_shutdown() -> None:
    """Runs the queued collectives, stops the group and finalizes MPI."""

def dist_abort(message: str, exit_code: int = 1) -> None:
    """Ends every rank of the job (MPI_Abort) after printing `message`."""

def dist_mpi_available() -> bool: ...

def dist_nccl_available() -> bool: ...

def dist_broadcast_from_rank0(named_tensors: Sequence[tuple[str, Tensor]], what: str) -> None:
    """
    Checks every rank has the same (name, dtype, shape) list, then copies rank 0's values into every rank's.
    """

class GradientReducer:
    """Averages gradients over the ranks in buckets started during backward."""

    def __init__(self, named_parameters: Sequence[tuple[str, Tensor]], bucket_cap_mb: float = 25.0, find_unused_parameters: bool = False) -> None: ...

    @property
    def sync(self) -> bool:
        """False inside no_sync(): backward only accumulates local gradients."""

    @sync.setter
    def sync(self, arg: bool, /) -> None: ...

    def bucket_names(self) -> list[list[str]]:
        """The parameter names of each bucket, in launch order."""

    def stats(self) -> dict[str, float]:
        """
        Communication statistics: per-step bytes and buckets, all-reduce and waiting seconds, hidden fraction.
        """

    def last_timeline(self) -> tuple[list[tuple[float, float, float]], float]:
        """
        ([(queued, started, finished) per bucket], backward_end) of the last step, steady-clock seconds.
        """

class DistributedSampler:
    def __init__(self, dataset_size: int, num_replicas: int = -1, rank: int = -1, shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None: ...

    def set_epoch(self, epoch: int) -> None: ...

    @property
    def epoch(self) -> int: ...

    def indices(self) -> list[int]:
        """This rank's indices for the current epoch."""

    def __len__(self) -> int: ...

    @property
    def num_replicas(self) -> int: ...

    @property
    def rank(self) -> int: ...

class SyncBatchNorm(Module):
    def __init__(self, dim: int, eps: float = 1e-05, momentum: float = 0.1, device: Device | None = None, dtype: str | None = None) -> None: ...

    @property
    def num_features(self) -> int: ...

    @property
    def eps(self) -> float: ...

    @property
    def momentum(self) -> float: ...

    @property
    def weight(self) -> Tensor: ...

    @property
    def bias(self) -> Tensor: ...

    @property
    def running_mean(self) -> Tensor: ...

    @property
    def running_var(self) -> Tensor: ...

def torch_install(cls: type) -> None:
    """
    Makes `cls` (needle.torch.Tensor, with slots _t and _computed) the class torch_wrap creates, and gives it the C++ common cases of +, -, * and / (operands they do not cover go to cls.add, cls.sub, cls.mul and cls.div), of sum() and of backward() (calls with arguments go to the Python methods they replace).
    """

def torch_conv2d(input: object, weight: object, bias: object | None, stride: int, padding: int) -> object:
    """
    needle.torch's Conv2d in its common case (one group, no dilation, square kernel, stride and padding): the torch.Tensor input (N, C, H, W) convolved with weight (C_out, C, k, k), plus bias (C_out) or None. The layer checks the shapes first.
    """

def torch_wrap(t: object) -> object:
    """A needle.torch.Tensor over Needle tensor `t` (no copy)."""
