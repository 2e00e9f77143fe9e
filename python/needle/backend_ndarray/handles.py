"""The course Needle's backend functions on storage handles, as methods of every device.

Course code (its NDArray tests) calls a device's backend directly, on handles (``a._handle``, the storage
seen as a flat array) with the shape, strides and offset passed separately::

    device.ewise_add(a.compact()._handle, b.compact()._handle, out._handle)
    device.matmul_tiled(A._handle, B._handle, C._handle, m, n, p)

Each function here views the handles as arrays (``NDArray.make``) and runs Needle's array functions on them;
nothing is computed twice. ``Device.__getattr__`` (python/src/bind_course_ndarray.cpp) looks names up here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from needle import _core
from needle._core import NDArray, StorageHandle

Scalar = bool | int | float


def _view(handle: StorageHandle, shape: Sequence[int], strides: Sequence[int], offset: int) -> NDArray:
    return NDArray.make(tuple(shape), strides=tuple(strides), handle=handle, offset=offset)


def _flat(handle: StorageHandle, size: int | None = None) -> NDArray:
    """The first ``size`` elements of ``handle`` (all of them by default) as a 1-D array."""
    return _view(handle, (handle.size if size is None else size,), (1,), 0)


def _write(out: StorageHandle, value: NDArray) -> None:
    """Stores ``value`` (any shape) into the first ``value.size`` elements of ``out``."""
    _flat(out, value.size)[:] = value.reshape((value.size,))


def fill(out: StorageHandle, val: Scalar) -> None:
    """Every element of ``out`` set to ``val``."""
    _flat(out).fill(val)


def compact(a: StorageHandle, out: StorageHandle, shape: Sequence[int], strides: Sequence[int], offset: int) -> None:
    """``out`` = the elements of the strided view (shape, strides, offset) of ``a``, in row-major order."""
    _write(out, _view(a, shape, strides, offset).copy())


def ewise_setitem(
    a: StorageHandle, out: StorageHandle, shape: Sequence[int], strides: Sequence[int], offset: int
) -> None:
    """The strided view (shape, strides, offset) of ``out`` = the compact ``a`` read in row-major order."""
    size = int(np.prod(shape))
    _view(out, shape, strides, offset)[...] = _flat(a, size).reshape(tuple(shape))


def scalar_setitem(
    size: int, val: Scalar, out: StorageHandle, shape: Sequence[int], strides: Sequence[int], offset: int
) -> None:
    """Every element of the strided view (shape, strides, offset) of ``out`` = ``val`` (``size`` of them)."""
    del size  # implied by shape
    _view(out, shape, strides, offset).fill(val)


def _elementwise(function: str, scalar: bool = False) -> Callable[..., None]:
    array_function = getattr(_core, function)

    def on_arrays(a: StorageHandle, b: StorageHandle, out: StorageHandle) -> None:
        _write(out, array_function(_flat(a, out.size), _flat(b, out.size)).astype(out.dtype))

    def on_scalar(a: StorageHandle, val: Scalar, out: StorageHandle) -> None:
        _write(out, array_function(_flat(a, out.size), val).astype(out.dtype))

    return on_scalar if scalar else on_arrays


ewise_add = _elementwise("add")
ewise_mul = _elementwise("mul")
ewise_div = _elementwise("div")
ewise_maximum = _elementwise("maximum")
ewise_eq = _elementwise("eq")
ewise_ge = _elementwise("ge")
scalar_add = _elementwise("add", scalar=True)
scalar_mul = _elementwise("mul", scalar=True)
scalar_div = _elementwise("div", scalar=True)
scalar_power = _elementwise("power", scalar=True)
scalar_maximum = _elementwise("maximum", scalar=True)
scalar_eq = _elementwise("eq", scalar=True)
scalar_ge = _elementwise("ge", scalar=True)


def _unary(function: str) -> Callable[..., None]:
    array_function = getattr(_core, function)

    def on_array(a: StorageHandle, out: StorageHandle) -> None:
        _write(out, array_function(_flat(a, out.size)).astype(out.dtype))

    return on_array


ewise_log = _unary("log")
ewise_exp = _unary("exp")
ewise_tanh = _unary("tanh")


def matmul(a: StorageHandle, b: StorageHandle, out: StorageHandle, m: int, n: int, p: int) -> None:
    """``out`` (m, p) = ``a`` (m, n) @ ``b`` (n, p), all compact row-major."""
    _write(out, _core.matmul(_flat(a, m * n).reshape((m, n)), _flat(b, n * p).reshape((n, p))))


def _untile(handle: StorageHandle, rows: int, cols: int, tile: int) -> NDArray:
    """A tile-major (rows/tile, cols/tile, tile, tile) handle as the (rows, cols) matrix it holds."""
    tiles = _flat(handle, rows * cols).reshape((rows // tile, cols // tile, tile, tile))
    return tiles.permute((0, 2, 1, 3)).reshape((rows, cols))


def matmul_tiled(a: StorageHandle, b: StorageHandle, out: StorageHandle, m: int, n: int, p: int) -> None:
    """``matmul`` on tile-major operands: each holds (rows/T, cols/T, T, T) tiles, T = ``__tile_size__``."""
    tile = _core.Device.__tile_size__
    for name, size in (("m", m), ("n", n), ("p", p)):
        if size % tile != 0:
            raise ValueError(f"matmul_tiled: {name} = {size} is not a multiple of the tile size {tile}")
    product = _core.matmul(_untile(a, m, n, tile), _untile(b, n, p, tile))
    _write(out, product.reshape((m // tile, tile, p // tile, tile)).permute((0, 2, 1, 3)))


def _reduction(function: str) -> Callable[..., None]:
    array_function = getattr(_core, function)

    def on_rows(a: StorageHandle, out: StorageHandle, reduce_size: int) -> None:
        rows = _flat(a, out.size * reduce_size).reshape((out.size, reduce_size))
        _write(out, array_function(rows, axis=1))

    return on_rows


reduce_sum = _reduction("sum")
reduce_max = _reduction("max")


def from_numpy(a: np.ndarray, out: StorageHandle) -> None:
    """``out`` = the elements of the NumPy array ``a`` in row-major order."""
    values = np.ascontiguousarray(a).reshape(-1)
    _flat(out, values.size)[:] = NDArray(values, device=out.device, dtype=out.dtype)


def to_numpy(a: StorageHandle, shape: Sequence[int], strides: Sequence[int], offset: int) -> np.ndarray:
    """A NumPy copy of the strided view (shape, strides, offset) of ``a``."""
    return _view(a, shape, strides, offset).numpy().copy()
