"""The functions of the ``torch`` namespace: tensor factories, joining and splitting, selection and the
function forms of Tensor methods. Each one is a thin translation into Needle's ops."""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from needle import _core
from needle.torch import _dtype
from needle.torch._dtype import Size, dtype
from needle.torch._ops import ops as _ops
from needle.torch._tensor import Tensor, ValuesIndices, _as_numpy, _axis, _shape_args, core_of, wrap


def _finish(t: _core.Tensor, device: Any, requires_grad: builtins.bool) -> Tensor:
    """``t`` on ``device`` (None: where it is), recording gradients if asked."""
    if device is not None:
        target = _dtype.to_needle_device(device)
        if target != t.device:
            t = t.to(target)
    if requires_grad:
        t.requires_grad = True
    return wrap(t)


def _new(array: np.ndarray[Any, Any], device: Any, requires_grad: builtins.bool) -> Tensor:
    needle_device = None if device is None else _dtype.to_needle_device(device)
    t = _core.Tensor(array, device=needle_device, dtype=str(array.dtype), requires_grad=False)
    if requires_grad:
        if not array.dtype.kind == "f":
            raise RuntimeError("Only Tensors of floating point dtype can require gradients")
        t.requires_grad = True
    return wrap(t)


def _dtype_name(d: dtype | None, default: str | None = None) -> str:
    if d is None:
        return default if default is not None else _dtype.get_default_dtype().name
    return _dtype.name_of(d)


# ---- making tensors ---------------------------------------------------------------------------------------
def tensor(
    data: Any, *, dtype: dtype | None = None, device: Any = None, requires_grad: builtins.bool = False
) -> Tensor:
    """A new tensor holding a copy of ``data`` (numbers, nested lists, a NumPy array or a tensor), with
    PyTorch's dtype inference."""
    array = _as_numpy(data, None if dtype is None else _dtype.name_of(dtype))
    return _new(np.array(array), device, requires_grad)


def as_tensor(data: Any, dtype: dtype | None = None, device: Any = None) -> Tensor:
    """``data`` as a tensor: a tensor of the right dtype and device is returned as it is."""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray[Any, Any]) -> Tensor:
    """A tensor with ``array``'s values and dtype (a copy: Needle's storage is its own)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return tensor(array, dtype=_dtype.from_name(_as_numpy(array).dtype.name))


def _filled(shape: Sequence[Any], value: Any, dtype_name: str, device: Any, requires_grad: builtins.bool) -> Tensor:
    return _new(np.full(_shape_args(shape), value, dtype=dtype_name), device, requires_grad)


def zeros(*size: Any, dtype: dtype | None = None, device: Any = None, requires_grad: builtins.bool = False) -> Tensor:
    """A tensor of zeros."""
    return _filled(size, 0, _dtype_name(dtype), device, requires_grad)


def ones(*size: Any, dtype: dtype | None = None, device: Any = None, requires_grad: builtins.bool = False) -> Tensor:
    """A tensor of ones."""
    return _filled(size, 1, _dtype_name(dtype), device, requires_grad)


def empty(*size: Any, dtype: dtype | None = None, device: Any = None, requires_grad: builtins.bool = False) -> Tensor:
    """A tensor whose values are not meant to be read (zeros here)."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def full(
    size: Sequence[int],
    fill_value: Any,
    *,
    dtype: dtype | None = None,
    device: Any = None,
    requires_grad: builtins.bool = False,
) -> Tensor:
    """A tensor filled with ``fill_value`` (its dtype from the value unless given)."""
    default = _as_numpy(fill_value).dtype.name
    return _filled(size, fill_value, _dtype_name(dtype, default), device, requires_grad)


def _like(x: Tensor, dtype: dtype | None) -> tuple[str, Any]:
    return (x._t.dtype if dtype is None else _dtype.name_of(dtype)), x.device


def zeros_like(
    x: Tensor, *, dtype: dtype | None = None, device: Any = None, requires_grad: builtins.bool = False
) -> Tensor:
    """Zeros in ``x``'s shape, dtype and device."""
    name, where = _like(x, dtype)
    return _filled(x.shape, 0, name, device or where, requires_grad)


def ones_like(
    x: Tensor, *, dtype: dtype | None = None, device: Any = None, requires_grad: builtins.bool = False
) -> Tensor:
    """Ones in ``x``'s shape, dtype and device."""
    name, where = _like(x, dtype)
    return _filled(x.shape, 1, name, device or where, requires_grad)


def empty_like(
    x: Tensor, *, dtype: dtype | None = None, device: Any = None, requires_grad: builtins.bool = False
) -> Tensor:
    """A tensor in ``x``'s shape, dtype and device (zeros here)."""
    return zeros_like(x, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(
    x: Tensor, fill_value: Any, *, dtype: dtype | None = None, device: Any = None, requires_grad: builtins.bool = False
) -> Tensor:
    """``fill_value`` in ``x``'s shape, dtype and device."""
    name, where = _like(x, dtype)
    return _filled(x.shape, fill_value, name, device or where, requires_grad)


def arange(
    start: Any,
    end: Any = None,
    step: Any = 1,
    *,
    dtype: dtype | None = None,
    device: Any = None,
    requires_grad: builtins.bool = False,
) -> Tensor:
    """Values from ``start`` (0 if only one bound is given) up to ``end`` in steps of ``step``: int64 when
    every bound is an integer, else the default float dtype."""
    if end is None:
        start, end = 0, start
    bounds = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if bounds[2] == 0:
        raise RuntimeError("step must be nonzero")
    integral = all(isinstance(v, int) for v in bounds)
    name = _dtype_name(dtype, "int64" if integral else None)
    count = builtins.max(0, math.ceil((bounds[1] - bounds[0]) / bounds[2]))
    values = np.asarray(bounds[0], dtype=np.float64) + np.arange(count, dtype=np.float64) * bounds[2]
    return _new(values.astype(name), device, requires_grad)


def linspace(
    start: float,
    end: float,
    steps: int,
    *,
    dtype: dtype | None = None,
    device: Any = None,
    requires_grad: builtins.bool = False,
) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    return _new(np.linspace(start, end, steps).astype(_dtype_name(dtype)), device, requires_grad)


def eye(
    n: int,
    m: int | None = None,
    *,
    dtype: dtype | None = None,
    device: Any = None,
    requires_grad: builtins.bool = False,
) -> Tensor:
    """The n x m identity matrix."""
    return _new(np.eye(n, m, dtype=_dtype_name(dtype)), device, requires_grad)


def _random(draw: Callable[..., _core.NDArray], size: Sequence[Any], dtype_: dtype | None, device: Any) -> _core.Tensor:
    name = _dtype_name(dtype_)
    if name not in ("float32", "float64"):
        raise RuntimeError(f"random floats: expected a floating-point dtype, got {name}")
    shape = _shape_args(size)
    return _core.Tensor(draw(*shape, dtype=name), requires_grad=False)


def rand(*size: Any, dtype: dtype | None = None, device: Any = None, requires_grad: builtins.bool = False) -> Tensor:
    """Uniform samples from [0, 1) (Needle's generator: ``torch.manual_seed`` seeds it)."""
    target = _dtype.to_needle_device(device or "cpu")
    return _finish(_random(target.rand, size, dtype, None), None, requires_grad)


def randn(*size: Any, dtype: dtype | None = None, device: Any = None, requires_grad: builtins.bool = False) -> Tensor:
    """Standard normal samples (Needle's generator)."""
    target = _dtype.to_needle_device(device or "cpu")
    return _finish(_random(target.randn, size, dtype, None), None, requires_grad)


def rand_like(x: Tensor, *, dtype: dtype | None = None) -> Tensor:
    """Uniform samples in ``x``'s shape and dtype."""
    return rand(x.shape, dtype=dtype or x.dtype, device=x.device)


def randn_like(x: Tensor, *, dtype: dtype | None = None) -> Tensor:
    """Standard normal samples in ``x``'s shape and dtype."""
    return randn(x.shape, dtype=dtype or x.dtype, device=x.device)


def randint(low: int, high: Any = None, size: Any = None, *, dtype: dtype | None = None, device: Any = None) -> Tensor:
    """Integers drawn uniformly from [low, high) (``randint(high, size)`` starts at 0)."""
    if size is None:
        low, high, size = 0, low, high
    if high is None or size is None:
        raise TypeError("randint() missing required arguments: 'high' and 'size'")
    if high <= low:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    shape = _shape_args([size])
    uniform = np.asarray(_dtype.to_needle_device("cpu").rand(*shape, dtype="float64"))
    values = np.minimum(np.floor(uniform * (high - low)) + low, high - 1).astype(_dtype_name(dtype, "int64"))
    return _new(values, device, False)


def randperm(n: int, *, dtype: dtype | None = None, device: Any = None) -> Tensor:
    """A random permutation of 0..n-1 (Needle's generator)."""
    keys = np.asarray(_dtype.to_needle_device("cpu").rand(n, dtype="float64")) if n else np.zeros(0)
    return _new(np.argsort(keys, kind="stable").astype(_dtype_name(dtype, "int64")), device, False)


# ---- joining, splitting, selecting ---------------------------------------------------------------------
def _same_dtype(tensors: Sequence[Tensor]) -> list[_core.Tensor]:
    cores = [core_of(t) for t in tensors]
    names = {c.dtype for c in cores}
    if len(names) > 1:
        result = builtins.max(
            names, key=lambda n: (_dtype.from_name(n).is_floating_point, _dtype.from_name(n).itemsize)
        )
        cores = [c if c.dtype == result else _ops.astype(c, result) for c in cores]
    return cores


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """The tensors joined along an existing dimension ``dim``."""
    if len(tensors) == 0:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    cores = [c for c in _same_dtype(tensors) if c.shape != (0,)]  # PyTorch skips 1-d empty tensors
    if not cores:
        return wrap(core_of(tensors[0]))
    return wrap(_ops.concat(cores, _axis(dim, len(cores[0].shape))))


concat = concatenate = cat


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """The tensors (all of one shape) joined along a new dimension ``dim``."""
    if len(tensors) == 0:
        raise RuntimeError("stack expects a non-empty TensorList")
    cores = _same_dtype(tensors)
    return wrap(_ops.stack(cores, _axis(dim, len(cores[0].shape) + 1)))


def split(x: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the listed sizes."""
    d = _axis(dim, x.ndim)
    extent = x.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        sizes = [builtins.min(size, extent - start) for start in range(0, extent, size)] if size > 0 else [extent]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != extent:
            raise RuntimeError(
                f"split_with_sizes expects split_sizes to sum exactly to {extent} (input tensor's size at "
                f"dimension {d}), but got split_sizes={sizes}"
            )
    pieces = []
    start = 0
    for size in sizes:
        pieces.append(x.narrow(d, start, size))
        start += size
    return tuple(pieces)


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """At most ``chunks`` pieces of equal size (the last may be smaller) along ``dim``."""
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0")
    extent = x.shape[_axis(dim, x.ndim)]
    return split(x, builtins.max(1, math.ceil(extent / chunks)), dim)


def unbind(x: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices along ``dim``, with that dimension removed."""
    return tuple(wrap(t) for t in _ops.split(x._t, _axis(dim, x.ndim)))


def where(condition: Tensor, input: Any = None, other: Any = None) -> Any:
    """``input`` where ``condition`` is true, ``other`` elsewhere (numbers or tensors, broadcast);
    ``where(condition)`` alone gives the indices of the true elements per dimension."""
    if input is None and other is None:
        return tuple(tensor(i) for i in np.nonzero(condition._t.numpy()))
    if condition.dtype is not _dtype.bool:
        raise RuntimeError(
            f"where expected condition to be a boolean tensor, but got a tensor with dtype {condition.dtype}"
        )
    if isinstance(input, int | float) and isinstance(other, int | float):
        # Two numbers: the result takes the dtype PyTorch gives them (default float, else int64 or bool).
        input = tensor(input, device=condition.device) if type(input) is type(other) else tensor(float(input))
    a = input if isinstance(input, int | float) else core_of(input, condition._t)
    b = other if isinstance(other, int | float) else core_of(other, condition._t)
    return wrap(_ops.where(condition._t, a, b))


def nonzero(x: Tensor, *, as_tuple: builtins.bool = False) -> Any:
    """The indices of the non-zero elements: an (n, ndim) int64 tensor, or one tensor per dimension."""
    found = np.nonzero(x._t.numpy())
    if as_tuple:
        return tuple(tensor(i) for i in found)
    return tensor(np.stack(found, axis=1) if found else np.zeros((0, 0), np.int64))


def sort(x: Tensor, dim: int = -1, descending: builtins.bool = False, stable: builtins.bool = False) -> ValuesIndices:
    """Values sorted along ``dim`` (the gradient goes back to where each came from) and their indices."""
    d = _axis(dim, x.ndim)
    values = x._t.numpy()
    order = np.argsort(-values if descending else values, axis=d, kind="stable") if x.ndim else np.zeros((), np.int64)
    indices = tensor(order.astype(np.int64), device=x.device)
    return ValuesIndices(x.gather(d, indices) if x.ndim else x.clone(), indices)


def argsort(x: Tensor, dim: int = -1, descending: builtins.bool = False, stable: builtins.bool = False) -> Tensor:
    """The indices that sort ``x`` along ``dim``."""
    return sort(x, dim, descending, stable).indices


def topk(
    x: Tensor, k: int, dim: int = -1, largest: builtins.bool = True, sorted: builtins.bool = True
) -> ValuesIndices:
    """The ``k`` largest (or smallest) values along ``dim``, in order, and their indices."""
    d = _axis(dim, x.ndim)
    if not 0 <= k <= (x.shape[d] if x.ndim else 1):
        raise RuntimeError(f"selected index k out of range (topk: k={k}, dimension {d} of shape {list(x.shape)})")
    order = sort(x.detach(), d, descending=largest).indices
    indices = order.narrow(d, 0, k)
    return ValuesIndices(x.gather(d, indices), indices)


def gather(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """Values of ``x`` at ``index`` along ``dim``."""
    return x.gather(dim, index)


def einsum(equation: str, *operands: Any) -> Tensor:
    """The common einsum patterns, computed with Needle's matmul: 'ij,jk->ik', batched 'bij,bjk->bik',
    'bhqd,bhkd->bhqk' and the like (one contracted index, free indices kept in order)."""
    tensors: list[Tensor] = (
        list(operands[0]) if len(operands) == 1 and isinstance(operands[0], list | tuple) else list(operands)
    )
    inputs, _, output = equation.replace(" ", "").partition("->")
    names = inputs.split(",")
    if len(names) != 2 or len(tensors) != 2 or not output:
        raise NotImplementedError(
            f"torch.einsum('{equation}'): only two operands with an explicit output are supported"
        )
    a, b = names
    contracted = [c for c in a if c in b and c not in output]
    batch = [c for c in output if c in a and c in b]
    left = [c for c in a if c not in b]
    right = [c for c in b if c not in a]
    if len(contracted) != 1 or output != "".join(batch + left + right):
        raise NotImplementedError(f"torch.einsum('{equation}'): this pattern is not supported by needle.torch")
    k = contracted[0]
    x = tensors[0].permute(*[a.index(c) for c in [*batch, *left, k]])
    y = tensors[1].permute(*[b.index(c) for c in [*batch, k, *right]])
    xs = list(x.shape)
    ys = list(y.shape)
    nb = len(batch)
    rows = int(np.prod(xs[nb:-1]))
    cols = int(np.prod(ys[nb + 1 :]))
    product = x.reshape(*xs[:nb], rows, xs[-1]).matmul(y.reshape(*ys[:nb], ys[nb], cols))
    return product.reshape(*xs[:-1], *ys[nb + 1 :])


def _triangle(x: Tensor, diagonal: int, upper: builtins.bool) -> Tensor:
    rows, cols = x.shape[-2], x.shape[-1]
    keep = np.triu(np.ones((rows, cols), bool), diagonal) if upper else np.tril(np.ones((rows, cols), bool), diagonal)
    mask = core_of(keep, x._t)
    zero = _ops.astype(core_of(np.zeros((), np.int64), x._t), x._t.dtype)
    return wrap(_ops.where(mask, x._t, zero))


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The elements on and above the ``diagonal``-th diagonal of the last two dimensions; zeros below."""
    return _triangle(x, diagonal, upper=True)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The elements on and below the ``diagonal``-th diagonal of the last two dimensions; zeros above."""
    return _triangle(x, diagonal, upper=False)


# ---- function forms of Tensor methods ------------------------------------------------------------------
def _method(name: str) -> Callable[..., Any]:
    def call(x: Tensor, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(x, Tensor):
            x = tensor(x)
        return getattr(x, name)(*args, **kwargs)

    call.__name__ = name
    call.__doc__ = f"``x.{name}(...)`` as a function."
    return call


_METHODS = [
    "abs",
    "add",
    "all",
    "allclose",
    "amax",
    "amin",
    "any",
    "argmax",
    "argmin",
    "bmm",
    "clamp",
    "clip",
    "div",
    "eq",
    "equal",
    "erf",
    "exp",
    "flatten",
    "ge",
    "gt",
    "isfinite",
    "isnan",
    "le",
    "log",
    "log1p",
    "log_softmax",
    "logical_and",
    "logical_not",
    "logical_or",
    "logsumexp",
    "lt",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mm",
    "mul",
    "narrow",
    "ne",
    "neg",
    "norm",
    "numel",
    "permute",
    "pow",
    "reciprocal",
    "relu",
    "reshape",
    "rsqrt",
    "sigmoid",
    "softmax",
    "sqrt",
    "square",
    "squeeze",
    "std",
    "sub",
    "sum",
    "t",
    "tanh",
    "transpose",
    "unflatten",
    "unsqueeze",
    "var",
    "masked_fill",
]

FUNCTIONS: dict[str, Callable[..., Any]] = {name: _method(name) for name in _METHODS}


def is_tensor(x: object) -> builtins.bool:
    """Whether ``x`` is a tensor."""
    return isinstance(x, Tensor)


def is_floating_point(x: Tensor) -> builtins.bool:
    """Whether ``x`` has a floating-point dtype."""
    return x.dtype.is_floating_point


def numel(x: Tensor) -> int:
    """The number of elements of ``x``."""
    return x.numel()


def broadcast_shapes(*shapes: Sequence[int]) -> Size:
    """The shape the given shapes broadcast to."""
    return Size(np.broadcast_shapes(*[tuple(s) for s in shapes]))
