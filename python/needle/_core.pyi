"""
Needle's compiled core: NDArray, devices and the array functions (no autograd).
"""

from collections.abc import Iterator, Sequence
import types
from typing import Any, ClassVar, overload

import numpy.typing


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
        An array from an NDArray (copied), a NumPy array (its dtype kept), a nested list or a scalar (float -> float32, int -> int64, bool -> bool).
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
        """The element type: "float32", "float64", "int32", "int64" or "bool"."""

    def shares_memory(self, other: NDArray) -> bool:
        """True when both arrays view the same storage."""

    def compact(self) -> NDArray:
        """This array when already contiguous, else a contiguous copy."""

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

def neg(a: NDArray) -> NDArray:
    """-a"""

def abs(a: NDArray) -> NDArray:
    """|a|"""

def exp(a: NDArray) -> NDArray:
    """e ** a (integers computed in float32)"""

def log(a: NDArray) -> NDArray:
    """Natural logarithm (integers computed in float32)"""

def sqrt(a: NDArray) -> NDArray:
    """Square root (integers computed in float32)"""

def tanh(a: NDArray) -> NDArray:
    """Hyperbolic tangent (integers computed in float32)"""

def sigmoid(a: NDArray) -> NDArray:
    """1 / (1 + exp(-a)) (integers computed in float32)"""

def relu(a: NDArray) -> NDArray:
    """max(a, 0)"""

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
