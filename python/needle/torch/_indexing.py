"""PyTorch's indexing on ``needle.torch`` tensors: basic keys (ints, slices, None, ``...``) become views
through Needle's ``getitem``; keys with integer or boolean tensors, lists or arrays (advanced indexing) pick
elements by their flat positions with ``embedding``, whose backward adds the gradient back into the picked
elements. Assignment (``x[key] = value``) writes the storage in place; when gradients are recorded it is an
op in the graph (``where`` over the positions), so gradients reach both ``x``'s earlier value and ``value``.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

import numpy as np

from needle import _core
from needle.torch._ops import ops as _ops

if TYPE_CHECKING:
    from needle.torch._tensor import Tensor

_BASIC = (int, slice, type(None), type(Ellipsis))


def _is_basic(key: Any) -> builtins.bool:
    if isinstance(key, tuple):
        return all(isinstance(k, _BASIC) and not isinstance(k, builtins.bool) for k in key)
    return isinstance(key, _BASIC) and not isinstance(key, builtins.bool)


def _numpy_key(key: Any) -> Any:
    """``key`` with every tensor and list turned into a NumPy index (a float tensor is refused, as in
    PyTorch); NumPy then checks it against the shape."""
    from needle.torch._tensor import Tensor

    def convert(k: Any) -> Any:
        if isinstance(k, Tensor):
            if k.dtype.is_floating_point:
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            return k._t.numpy()
        if isinstance(k, list):
            return np.asarray([convert(v) for v in k])
        return k

    converted = tuple(convert(k) for k in key) if isinstance(key, tuple) else convert(key)
    return converted


def _positions(shape: tuple[int, ...], key: Any) -> np.ndarray[Any, Any]:
    """The flat positions of the elements ``key`` picks from a tensor of ``shape``, in the result's shape,
    with NumPy's (= PyTorch's) rules for advanced indexing and its IndexErrors."""
    flat = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    try:
        return np.asarray(flat[_numpy_key(key)])
    except IndexError as error:
        raise IndexError(f"index {key!r} is out of bounds for a tensor of shape {list(shape)}: {error}") from None


def _take(t: _core.Tensor, positions: np.ndarray[Any, Any]) -> _core.Tensor:
    """The elements of ``t`` at flat ``positions``, in their shape (the gradient goes back to them)."""
    index = _core.Tensor(positions.reshape(-1), device=t.device, dtype="int64", requires_grad=False)
    rows = _ops.embedding(index, _ops.reshape(t, [-1, 1]))
    result: _core.Tensor = _ops.reshape(rows, list(positions.shape))
    return result


def getitem(x: Tensor, key: Any) -> Tensor:
    """``x[key]``."""
    from needle.torch._tensor import wrap

    if _is_basic(key):
        return wrap(_ops.getitem(x._t, key))
    rows = _row_index(key)
    if rows is not None and x._t.shape:
        # x[index] with one integer index: whole rows, gathered without a table of every element's position.
        extent = x._t.shape[0]
        if rows.size and (rows.min() < -extent or rows.max() >= extent):
            raise IndexError(f"index {int(rows.max())} is out of bounds for dimension 0 with size {extent}")
        index = _core.Tensor(rows % max(extent, 1), device=x._t.device, dtype="int64", requires_grad=False)
        picked = _ops.embedding(index, _ops.reshape(x._t, [extent, -1]))
        return wrap(_ops.reshape(picked, [*rows.shape, *x._t.shape[1:]]))
    return wrap(_take(x._t, _positions(x._t.shape, key)))


def _row_index(key: Any) -> np.ndarray[Any, Any] | None:
    """The integer array of a key that is one integer tensor, list or array (not boolean), else None."""
    from needle.torch._tensor import Tensor

    if isinstance(key, Tensor):
        values = key._t.numpy() if key.dtype.name not in ("bool", "float32", "float64") else None
    elif isinstance(key, list | np.ndarray):
        values = np.asarray(key)
        if values.dtype.kind not in "iu" or values.ndim == 0:
            values = None
    else:
        values = None
    return None if values is None else values.astype(np.int64, copy=False)


def setitem(x: Tensor, key: Any, value: Any) -> None:
    """``x[key] = value`` (``value`` broadcast to the picked elements)."""
    from needle.torch._tensor import Tensor, core_of

    t = x._t
    source = core_of(value, t)
    recording = _core.grad_enabled() and (t.requires_grad or source.requires_grad)
    if recording:
        if t.is_leaf and t.requires_grad:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        x._assign(_functional_setitem(t, key, source), "__setitem__")
        return
    if _is_basic(key):
        t.data[key] = source if source.dtype == t.dtype else _ops.astype(source, t.dtype)
        return
    values = t.numpy()
    values[_numpy_key(key)] = source.numpy() if isinstance(value, Tensor | _core.Tensor) else value
    t.data[...] = _core.Tensor(values, device=t.device, dtype=t.dtype, requires_grad=False)


def _functional_setitem(t: _core.Tensor, key: Any, source: _core.Tensor) -> _core.Tensor:
    """``t`` with ``source`` written at ``key``, as an op in the graph."""
    picked = _positions(t.shape, key)
    # For every element of t: which picked element (if any) overwrites it; the last write wins, as in NumPy.
    writer = np.full(t.shape, -1, dtype=np.int64)
    writer.reshape(-1)[picked.reshape(-1)] = np.arange(picked.size, dtype=np.int64)
    mask = _core.Tensor(writer >= 0, device=t.device, dtype="bool", requires_grad=False)
    spread = _ops.broadcast_to(_ops.astype(source, t.dtype), list(picked.shape))
    written = _take(spread, np.maximum(writer, 0))
    result: _core.Tensor = _ops.where(mask, written, t)
    return result
