"""``torch.Tensor``: PyTorch's tensor API over a Needle tensor.

A ``Tensor`` here holds one ``needle._core.Tensor`` (``_t``) and translates PyTorch's names, argument
conventions and return values into calls of Needle's C++ ops; the graph, the gradients and every kernel are
Needle's, so ``needle.trace()`` sees a PyTorch script's ops as it sees Needle's. What differs from Needle's
course API is only the surface: ``dim``/``keepdim``, ``(values, indices)`` from ``max(dim)``, in-place methods
ending in ``_``, PyTorch's errors.
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, NoReturn, cast

import numpy as np

from needle import _core
from needle.torch import _dtype
from needle.torch._dtype import Size, device, dtype
from needle.torch._ops import TorchRuntimeError
from needle.torch._ops import ops as _ops

Scalar = builtins.bool | builtins.int | builtins.float
_Core = _core.Tensor


class ValuesIndices(NamedTuple):
    """What ``max(dim)``, ``min(dim)``, ``sort``, ``topk`` and ``mode``-like calls return, as in PyTorch."""

    values: Tensor
    indices: Tensor


def _core_of(value: object, like: _Core | None = None) -> _Core:
    """The Needle tensor of a tensor, or a new constant one for a number, list or NumPy array (with the
    dtype PyTorch would give it; a Python number next to a tensor ``like`` takes part in promotion as a
    scalar and lives on that tensor's device)."""
    if isinstance(value, Tensor):
        return value._t
    if isinstance(value, _Core):
        return value
    array = _as_numpy(value)
    device_ = like.device if like is not None else None
    return _Core(array, device=device_, dtype=str(array.dtype), requires_grad=False)


def _as_numpy(value: object, dtype_name: str | None = None) -> np.ndarray[Any, Any]:
    """``value`` (a number, nested lists of numbers or tensors, a NumPy array) as a NumPy array with
    PyTorch's dtype inference: Python floats give the default float dtype, ints int64, bools bool."""
    if isinstance(value, Tensor):
        value = value._t.numpy()
    elif isinstance(value, list | tuple) and any(isinstance(v, Tensor) for v in _flatten(value)):
        value = _nested_items(value)
    array = np.asarray(value)
    if array.dtype.kind in "USOV":
        raise TypeError(f"expected a tensor, a number or (nested) lists of numbers, got {type(value).__name__}")
    if dtype_name is not None:
        return array.astype(dtype_name, copy=False)
    if array.dtype == np.float64 and not isinstance(value, np.ndarray | np.generic):
        return array.astype(_dtype.get_default_dtype().name)
    if array.dtype.kind in "iu" and not isinstance(value, np.ndarray | np.generic):
        return array.astype(np.int64)
    if array.dtype.name not in _dtype._BY_NAME:
        raise TypeError(
            f"can't convert np.ndarray of type numpy.{array.dtype.name}. The only supported types are: "
            "float64, float32, int64, int32, int8, uint8, and bool."
        )
    return array


def _flatten(value: object) -> Iterator[object]:
    if isinstance(value, list | tuple):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def _nested_items(value: object) -> object:
    if isinstance(value, list | tuple):
        return [_nested_items(v) for v in value]
    if isinstance(value, Tensor):
        return value._t.numpy()
    return value


class ScalarOverflowError(OverflowError, RuntimeError):
    """An int operand beyond int64: PyTorch 2 raises OverflowError, PyTorch 1 RuntimeError; this is both."""


def _number(value: Scalar) -> Scalar:
    """A Python number operand, refused as PyTorch refuses it when it is an int beyond int64."""
    if type(value) is int and not -(2**63) <= value < 2**63:
        raise ScalarOverflowError("int too big to convert")
    return value


# What a shape given as one argument usually is (tuple, list, torch.Size); others take the general path.
_SHAPE_TYPES: tuple[type, ...] = (tuple, list, Size)


def _shape_args(args: Sequence[Any]) -> tuple[int, ...]:
    """The shape of ``f(2, 3)``, ``f((2, 3))``, ``f([2, 3])`` or ``f(torch.Size([2, 3]))``."""
    # The common cases first, without the conversions below.
    if len(args) == 1 and type(args[0]) in _SHAPE_TYPES:
        if all(type(s) is int for s in args[0]):
            return tuple(args[0])
    elif all(type(s) is int for s in args):
        return tuple(args)
    if len(args) == 1 and isinstance(args[0], Sequence):
        return tuple(int(s) for s in args[0])
    return tuple(int(s) for s in args)


def _dims(dim: int | Sequence[int] | None, ndim: int) -> tuple[int, ...] | None:
    """``dim`` as a tuple of non-negative axes (None: every axis), checked as PyTorch checks it."""
    if dim is None:
        return None
    dims = tuple(dim) if isinstance(dim, Sequence) else (dim,)
    return tuple(_axis(d, ndim) for d in dims)


def _axis(dim: int, ndim: int) -> int:
    """``dim`` wrapped into [0, ndim), with PyTorch's IndexError when it is out of range."""
    if type(dim) is int and 0 <= dim < ndim:  # the common case, without the checks below
        return dim
    try:
        dim = operator.index(dim)  # ints, NumPy ints and one-element integer tensors
    except TypeError:
        raise TypeError(f"a dimension must be an int, got {type(dim).__name__} {dim!r}") from None
    bound = builtins.max(ndim, 1)
    if not -bound <= dim < bound:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-bound}, {bound - 1}], but got {dim})")
    return dim % bound


class Tensor:
    """A PyTorch tensor over a Needle tensor: PyTorch's methods, properties and operators."""

    __slots__ = ("_computed", "_t")
    _t: _Core
    # Made by an op that recorded gradients: PyTorch keeps no .grad for such tensors (Needle's graph frees
    # the op after backward, so this is remembered here).
    _computed: builtins.bool

    def __init__(self, *args: Any) -> None:
        # torch.Tensor(data) makes a float tensor of the default dtype; torch.Tensor(2, 3) an uninitialized one.
        if len(args) == 1 and not isinstance(args[0], int):
            self._t = _Core(
                _as_numpy(args[0], _dtype.get_default_dtype().name),
                dtype=_dtype.get_default_dtype().name,
                requires_grad=False,
            )
        else:
            shape = _shape_args(args)
            self._t = _Core(
                np.zeros(shape, _dtype.get_default_dtype().name),
                dtype=_dtype.get_default_dtype().name,
                requires_grad=False,
            )

    # ---- what the tensor is -------------------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        """The tensor's shape as a ``torch.Size``."""
        return Size(self._t.shape)

    def size(self, dim: builtins.int | None = None) -> Any:
        """The shape (a ``torch.Size``), or the extent of dimension ``dim``."""
        shape = self._t.shape
        if dim is None:
            return Size(shape)
        return shape[_axis(dim, len(shape))]

    @property
    def dtype(self) -> dtype:
        """The element type, a ``torch.dtype``."""
        return _dtype.from_name(self._t.dtype)

    @property
    def device(self) -> device:
        """The device the tensor lives on, a ``torch.device``."""
        return device.from_needle(self._t.device)

    @property
    def is_cuda(self) -> builtins.bool:
        """Whether the tensor lives on a GPU."""
        return not self._t.device.is_host

    @property
    def ndim(self) -> builtins.int:
        """The number of dimensions."""
        return len(self._t.shape)

    def dim(self) -> builtins.int:
        """The number of dimensions."""
        return len(self._t.shape)

    def ndimension(self) -> builtins.int:
        """The number of dimensions."""
        return len(self._t.shape)

    def numel(self) -> builtins.int:
        """The number of elements."""
        return self._t.numel()

    def nelement(self) -> builtins.int:
        """The number of elements."""
        return self._t.numel()

    def element_size(self) -> builtins.int:
        """Bytes per element."""
        return self.dtype.itemsize

    def is_floating_point(self) -> builtins.bool:
        """Whether the dtype is a floating-point one."""
        return self.dtype.is_floating_point

    def is_contiguous(self) -> builtins.bool:
        """Whether the elements lie in row-major order without gaps."""
        return self._t.cached_data.is_compact()

    # ---- autograd -----------------------------------------------------------------------------------------
    @property
    def requires_grad(self) -> builtins.bool:
        """Whether gradients are recorded for this tensor."""
        return self._t.requires_grad

    @requires_grad.setter
    def requires_grad(self, value: builtins.bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: builtins.bool = True) -> Tensor:
        """Turns gradient recording for this leaf on or off; returns the tensor."""
        if self._computed and not requires_grad:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use a computed "
                "variable in a subgraph that doesn't require differentiation use var_no_grad = var.detach()."
            )
        if requires_grad and not self.dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        self._t.requires_grad = requires_grad
        return self

    @property
    def grad(self) -> Tensor | None:
        """The gradient accumulated by ``backward()`` (None before the first, and for tensors computed by
        ops: PyTorch keeps gradients of leaves only)."""
        if self._computed:
            return None
        g = self._t.grad
        return None if g is None else _wrap(g)

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        self._t.grad = None if value is None else value._t

    @property
    def is_leaf(self) -> builtins.bool:
        """Whether the tensor was made by the user rather than by an op that records gradients (also after
        backward() has released the graph, as in PyTorch)."""
        return not self._computed

    @property
    def grad_fn(self) -> _core.Op | None:
        """The op that made this tensor (None for leaves)."""
        return self._t.op

    def backward(
        self,
        gradient: Tensor | None = None,
        retain_graph: builtins.bool | None = None,
        create_graph: builtins.bool = False,
    ) -> None:
        """Accumulates d(self)/d(leaf) into every leaf's ``.grad`` (``gradient`` is required unless this is a
        single element). With ``create_graph`` the gradients are themselves recorded, so that they can be
        differentiated again; the graph is then kept unless ``retain_graph`` is False, as in PyTorch."""
        # _core.torch_install, called below the class, puts its C++ common case (loss.backward() of a
        # one-element tensor that requires grad) in front of this method, which it calls for everything else.
        if not self._t.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None and self._t.numel() != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        out_grad = None if gradient is None else _core_of(gradient, self._t)
        keep = create_graph if retain_graph is None else builtins.bool(retain_graph)
        self._t.backward(out_grad, retain_graph=keep, create_graph=builtins.bool(create_graph))

    def detach(self) -> Tensor:
        """The same values, outside the graph (shares storage)."""
        return _wrap(self._t.detach())

    def detach_(self) -> Tensor:
        """Takes this tensor out of the graph, in place."""
        self._t = self._t.detach()
        self._computed = False
        return self

    @property
    def data(self) -> Tensor:
        """The same storage without gradient tracking."""
        return _wrap(self._t.data)

    @data.setter
    def data(self, value: Tensor) -> None:
        self._t.data = value._t

    # ---- copying and pickling -----------------------------------------------------------------------------
    def _copy_core(self) -> _Core:
        """A new leaf with a copy of the values (recording gradients if this is a leaf that does)."""
        values = _Core(self._t.numpy(), device=self._t.device, dtype=self._t.dtype, requires_grad=False)
        if self._t.requires_grad and not self._computed:
            values.requires_grad = True
        return values

    def __deepcopy__(self, memo: dict[builtins.int, Any]) -> Tensor:
        if self._computed:
            raise RuntimeError(
                "Only Tensors created explicitly by the user (graph leaves) support the deepcopy protocol at the "
                "moment."
            )
        result = _wrap(self._copy_core())
        if type(self) is not Tensor:  # a Parameter stays a Parameter
            result = type(self)(result, self._t.requires_grad)
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (_rebuild, (type(self), self._t.numpy(), self._t.requires_grad and not self._computed))

    # ---- conversions --------------------------------------------------------------------------------------
    def item(self) -> Scalar:
        """The single element as a Python number."""
        if self._t.numel() != 1:
            # PyTorch 2 raises RuntimeError, PyTorch 1 ValueError: this is both.
            raise TorchRuntimeError(f"a Tensor with {self._t.numel()} elements cannot be converted to Scalar")
        return self._t.item()

    def tolist(self) -> Any:
        """The values as (nested) Python lists."""
        result: Any = self._t.numpy().tolist()
        return result

    def numpy(self, *, force: builtins.bool = False) -> np.ndarray[Any, Any]:
        """A NumPy copy of the values (PyTorch's error for a tensor that requires grad)."""
        if self._t.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._t.numpy()

    def __array__(self, dtype: object = None, copy: builtins.bool | None = None) -> np.ndarray[Any, Any]:
        array = self._t.numpy()
        return array if dtype is None else array.astype(dtype)  # type: ignore[call-overload]

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """Converts to a dtype and/or moves to a device: ``to(torch.float64)``, ``to('cpu')``,
        ``to(device, dtype)``, ``to(other_tensor)``."""
        target_dtype: object = kwargs.pop("dtype", None)
        target_device: object = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        kwargs.pop("copy", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, Tensor):
                target_dtype, target_device = arg.dtype, arg.device
            elif isinstance(arg, dtype):
                target_dtype = arg
            elif arg is not None:
                target_device = arg
        result = self._t
        if target_device is not None:
            needle_device = _dtype.to_needle_device(target_device)
            if needle_device != result.device:
                result = result.to(needle_device)
        if target_dtype is not None and _dtype.name_of(target_dtype) != result.dtype:
            result = _ops.astype(result, _dtype.name_of(target_dtype))
        return self if result is self._t else _wrap(result)

    def type(self, dtype_: _dtype.dtype | None = None) -> Any:
        """The type name ("torch.FloatTensor"...), or this tensor converted to ``dtype_``."""
        if dtype_ is None:
            names = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int", "int8": "Char"}
            names |= {"uint8": "Byte", "bool": "Bool"}
            return f"torch.{names[self._t.dtype]}Tensor"
        return self.to(dtype_)

    def type_as(self, other: Tensor) -> Tensor:
        """This tensor converted to ``other``'s dtype."""
        return self.to(other.dtype)

    def float(self) -> Tensor:
        """As float32."""
        return self.to(_dtype.float32)

    def double(self) -> Tensor:
        """As float64."""
        return self.to(_dtype.float64)

    def long(self) -> Tensor:
        """As int64."""
        return self.to(_dtype.int64)

    def int(self) -> Tensor:
        """As int32."""
        return self.to(_dtype.int32)

    def bool(self) -> Tensor:
        """As bool."""
        return self.to(_dtype.bool)

    def byte(self) -> Tensor:
        """As uint8."""
        return self.to(_dtype.uint8)

    def half(self) -> Tensor:
        """float16 is not a Needle dtype."""
        raise NotImplementedError("Tensor.half: needle.torch has no float16 dtype")

    def cpu(self) -> Tensor:
        """This tensor on the CPU."""
        return self.to("cpu")

    def cuda(self, device_: builtins.int | str | None = None) -> Tensor:
        """This tensor on a GPU."""
        return self.to(device("cuda", device_) if isinstance(device_, int) or device_ is None else device_)

    def clone(self) -> Tensor:
        """A copy that stays in the graph (its gradient flows back to this tensor)."""
        return _wrap(_ops.mul_scalar(self._t, 1) if self._t.dtype != "bool" else _ops.astype(self._t, "bool"))

    def contiguous(self) -> Tensor:
        """This tensor (Needle's kernels read any layout; ops that need row-major order copy themselves)."""
        return self

    # ---- shape ------------------------------------------------------------------------------------------
    def view(self, *shape: Any) -> Tensor:
        """The same elements in another shape (-1 infers one extent); ``view(dtype)`` is not supported."""
        if len(shape) == 1 and isinstance(shape[0], dtype):
            raise NotImplementedError("Tensor.view(dtype) is not supported by needle.torch")
        return _wrap(_ops.reshape(self._t, _shape_args(shape)))

    reshape = view

    def view_as(self, other: Tensor) -> Tensor:
        """This tensor in ``other``'s shape."""
        return self.view(other._t.shape)

    reshape_as = view_as

    def permute(self, *dims: Any) -> Tensor:
        """The dimensions reordered."""
        order = _shape_args(dims)
        if len(order) != self.ndim:
            raise RuntimeError(
                f"permute(sparse_coo): number of dimensions in the tensor input does not match the length of "
                f"the desired ordering of dimensions i.e. input.dim() = {self.ndim} is not equal to "
                f"len(dims) = {len(order)}"
            )
        return _wrap(_ops.permute(self._t, [_axis(d, self.ndim) for d in order]))

    def transpose(self, dim0: builtins.int, dim1: builtins.int) -> Tensor:
        """Dimensions ``dim0`` and ``dim1`` swapped."""
        order = list(range(self.ndim))
        a, b = _axis(dim0, self.ndim), _axis(dim1, self.ndim)
        order[a], order[b] = order[b], order[a]
        return _wrap(_ops.permute(self._t, order))

    swapaxes = transpose

    def t(self) -> Tensor:
        """The transpose of a matrix (a vector unchanged)."""
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self if self.ndim < 2 else self.transpose(0, 1)

    @property
    def T(self) -> Tensor:
        """Every dimension reversed."""
        return _wrap(_ops.permute(self._t, list(range(self.ndim))[::-1]))

    @property
    def mT(self) -> Tensor:
        """The last two dimensions swapped."""
        return self.transpose(-2, -1)

    def unsqueeze(self, dim: builtins.int) -> Tensor:
        """A new dimension of extent 1 at ``dim``."""
        return _wrap(_ops.unsqueeze(self._t, _axis(dim, self.ndim + 1)))

    def squeeze(self, dim: builtins.int | Sequence[builtins.int] | None = None) -> Tensor:
        """Dimensions of extent 1 removed (only those of ``dim`` when given; others are kept)."""
        shape = self._t.shape
        dims = range(len(shape)) if dim is None else (_dims(dim, len(shape)) or ())
        keep = [d for d in dims if shape[d] == 1]
        return _wrap(_ops.squeeze(self._t, keep)) if keep else self

    def flatten(self, start_dim: builtins.int = 0, end_dim: builtins.int = -1) -> Tensor:
        """Dimensions ``start_dim`` to ``end_dim`` merged into one."""
        shape = self._t.shape
        if not shape:
            return self.view(1)
        start, end = _axis(start_dim, len(shape)), _axis(end_dim, len(shape))
        merged = 1
        for extent in shape[start : end + 1]:
            merged *= extent
        return _wrap(_ops.reshape(self._t, [*shape[:start], merged, *shape[end + 1 :]]))

    def unflatten(self, dim: builtins.int, sizes: Sequence[builtins.int]) -> Tensor:
        """Dimension ``dim`` split into ``sizes``."""
        shape = self._t.shape
        d = _axis(dim, len(shape))
        return self.view((*shape[:d], *sizes, *shape[d + 1 :]))

    def expand(self, *sizes: Any) -> Tensor:
        """A broadcast view with extents ``sizes`` (-1 keeps an extent)."""
        target = list(_shape_args(sizes))
        shape = self._t.shape
        offset = len(target) - len(shape)
        if offset < 0:
            raise RuntimeError(
                f"expand(torch.FloatTensor{{{list(shape)}}}, size={target}): the number of sizes provided "
                f"({len(target)}) must be greater or equal to the number of dimensions in the tensor ({len(shape)})"
            )
        for i, extent in enumerate(shape):
            if target[offset + i] == -1:
                target[offset + i] = extent
        if tuple(target) == shape:
            return self
        return _wrap(_ops.broadcast_to(self._t, target))

    def expand_as(self, other: Tensor) -> Tensor:
        """This tensor broadcast to ``other``'s shape."""
        return self.expand(other._t.shape)

    def repeat(self, *sizes: Any) -> Tensor:
        """The tensor tiled ``sizes[d]`` times along each dimension d."""
        reps = _shape_args(sizes)
        if len(reps) < self.ndim:
            raise RuntimeError(
                "Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor"
            )
        shape = (1,) * (len(reps) - self.ndim) + self._t.shape
        # Insert a dimension of extent r before each d, broadcast it, and merge the two.
        interleaved = [x for extent in shape for x in (1, extent)]
        tiled = [x for r, extent in zip(reps, shape, strict=True) for x in (r, extent)]
        expanded = _ops.broadcast_to(_ops.reshape(self._t, interleaved), tiled)
        return _wrap(_ops.reshape(expanded, [r * e for r, e in zip(reps, shape, strict=True)]))

    def split(
        self, split_size_or_sections: builtins.int | Sequence[builtins.int], dim: builtins.int = 0
    ) -> tuple[Tensor, ...]:
        """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the listed sizes."""
        from needle.torch._functions import split

        return split(self, split_size_or_sections, dim)

    def chunk(self, chunks: builtins.int, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        """At most ``chunks`` pieces of equal size along ``dim``."""
        from needle.torch._functions import chunk

        return chunk(self, chunks, dim)

    def narrow(self, dim: builtins.int, start: builtins.int, length: builtins.int) -> Tensor:
        """Elements ``start`` to ``start + length`` along ``dim`` (a view)."""
        d = _axis(dim, self.ndim)
        key = (slice(None),) * d + (slice(start, start + length),)
        return _wrap(_ops.getitem(self._t, key))

    def __len__(self) -> builtins.int:
        if not self._t.shape:
            raise TypeError("len() of a 0-d tensor")
        return self._t.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if not self._t.shape:
            raise TypeError("iteration over a 0-d tensor")
        # As PyTorch: the slices of unbind(0), one node whose backward stacks their gradients.
        return (_wrap(t) for t in _ops.split(self._t, 0))

    # ---- indexing -----------------------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Tensor:
        from needle.torch._indexing import getitem

        return getitem(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        from needle.torch._indexing import setitem

        setitem(self, key, value)

    # ---- printing ---------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        values = self._t.numpy()
        floating = values.dtype.kind == "f"
        body = np.array2string(
            values,
            separator=", ",
            prefix="tensor(",
            precision=4 if floating else None,
            floatmode="fixed" if floating else "maxprec",
        )
        extras = []
        if self._t.dtype not in ("float32", "int64", "bool") or self._t.numel() == 0:
            extras.append(f"dtype={self.dtype!r}")
        if not self._t.device.is_host:
            extras.append(f"device='{self.device}'")
        if self._t.op is not None and self._t.requires_grad:
            op = self._t.op
            extras.append(f"grad_fn=<{op.name if op is not None else ''}Backward>")
        elif self._t.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    __str__ = __repr__

    # By identity, as PyTorch (== compares elements): the tensor stays the same dict key when an in-place op
    # gives it a new Needle tensor.
    __hash__ = object.__hash__

    def __bool__(self) -> builtins.bool:
        if self._t.numel() != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return builtins.bool(self._t.item())

    def __float__(self) -> builtins.float:
        return float(self.item())

    def __int__(self) -> builtins.int:
        return int(self.item())

    def __index__(self) -> builtins.int:
        if self.dtype.is_floating_point or self._t.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self._t.item())

    def __format__(self, spec: str) -> str:
        if self._t.numel() == 1 and not self._t.shape:
            return format(self._t.item(), spec)
        return format(repr(self), spec)

    # ---- element-wise arithmetic ------------------------------------------------------------------------
    def _operand(self, other: object) -> _Core:
        """``other`` as a Needle tensor for a binary op with this one. A 0-d tensor of the same kind
        (floating or integral) counts as a scalar in type promotion, as in PyTorch, so it takes our dtype."""
        o = _core_of(other, self._t)
        same_kind = _dtype.from_name(o.dtype).is_floating_point is self.dtype.is_floating_point
        if not o.shape and self._t.shape and o.dtype not in (self._t.dtype, "bool") and same_kind:
            o = _ops.astype(o, self._t.dtype)
        return o

    def add(self, other: Any, *, alpha: Scalar = 1) -> Tensor:
        """self + alpha * other."""
        if isinstance(other, Scalar):
            return _wrap(_ops.add_scalar(self._t, _number(other * alpha)))
        o = self._operand(other)
        return _wrap(_ops.add(self._t, o if alpha == 1 else _ops.mul_scalar(o, alpha)))

    def sub(self, other: Any, *, alpha: Scalar = 1) -> Tensor:
        """self - alpha * other."""
        if isinstance(other, Scalar):
            return _wrap(_ops.add_scalar(self._t, _number(-other * alpha)))
        o = self._operand(other)
        return _wrap(_ops.sub(self._t, o if alpha == 1 else _ops.mul_scalar(o, alpha)))

    def mul(self, other: Any) -> Tensor:
        """self * other."""
        if isinstance(other, Scalar):
            return _wrap(_ops.mul_scalar(self._t, _number(other)))
        return _wrap(_ops.multiply(self._t, self._operand(other)))

    def div(self, other: Any, *, rounding_mode: str | None = None) -> Tensor:
        """self / other (true division; ``rounding_mode`` is not supported)."""
        if rounding_mode is not None:
            raise NotImplementedError("Tensor.div(rounding_mode=...) is not supported by needle.torch")
        if isinstance(other, Scalar):
            return _wrap(_ops.divide_scalar(self._t, _number(other)))
        return _wrap(_ops.divide(self._t, self._operand(other)))

    def pow(self, exponent: Any) -> Tensor:
        """self ** exponent."""
        if isinstance(exponent, Scalar):
            return _wrap(_ops.power_scalar(self._t, _number(exponent)))
        return _wrap(_ops.power(self._t, self._operand(exponent)))

    multiply, subtract, divide, true_divide = mul, sub, div, div

    # The common cases of +, -, * and / (two tensors of one dtype, a tensor and a Python number) run in C++:
    # _core.torch_install, called below the class, replaces these six methods with its own, which hand every
    # other operand to the general methods (self.add(other), ...), as these do.
    def __add__(self, other: Any) -> Tensor:
        return self.add(other)

    def __radd__(self, other: Any) -> Tensor:
        return self.add(other)

    def __sub__(self, other: Any) -> Tensor:
        return self.sub(other)

    def __rsub__(self, other: Any) -> Tensor:
        if isinstance(other, Scalar):
            return _wrap(_ops.add_scalar(_ops.negate(self._t), _number(other)))
        return _wrap(_ops.sub(self._operand(other), self._t))

    def __mul__(self, other: Any) -> Tensor:
        return self.mul(other)

    def __rmul__(self, other: Any) -> Tensor:
        return self.mul(other)

    def __truediv__(self, other: Any) -> Tensor:
        return self.div(other)

    def __rtruediv__(self, other: Any) -> Tensor:
        if isinstance(other, Scalar):
            return _wrap(_ops.rdivide_scalar(_number(other), self._t))
        return _wrap(_ops.divide(self._operand(other), self._t))

    def __pow__(self, other: Any) -> Tensor:
        return self.pow(other)

    def __rpow__(self, other: Any) -> Tensor:
        if isinstance(other, Scalar):
            return _wrap(_ops.rpower_scalar(_number(other), self._t))
        return _wrap(_ops.power(self._operand(other), self._t))

    def __matmul__(self, other: Tensor) -> Tensor:
        return self.matmul(other)

    def __rmatmul__(self, other: Tensor) -> Tensor:
        return _wrap(_ops.matmul(_core_of(other, self._t), self._t))

    def __neg__(self) -> Tensor:
        return _wrap(_ops.negate(self._t))

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _wrap(_ops.abs(self._t))

    def __floordiv__(self, other: Any) -> Tensor:
        raise NotImplementedError("Tensor.__floordiv__ (//) is not supported by needle.torch")

    def __mod__(self, other: Any) -> Tensor:
        raise NotImplementedError("Tensor.__mod__ (%) is not supported by needle.torch")

    def matmul(self, other: Tensor) -> Tensor:
        """Matrix product with NumPy's rules for 1-d operands and batch broadcasting."""
        return _wrap(_ops.matmul(self._t, _core_of(other, self._t)))

    def mm(self, other: Tensor) -> Tensor:
        """Product of two matrices."""
        if self.ndim != 2 or other.ndim != 2:
            raise RuntimeError(f"self must be a matrix (mm: got {self.ndim}-d and {other.ndim}-d tensors)")
        return self.matmul(other)

    def bmm(self, other: Tensor) -> Tensor:
        """Product of two batches of matrices (b, n, m) @ (b, m, p)."""
        if self.ndim != 3 or other.ndim != 3:
            raise RuntimeError(f"batch1 must be a 3D tensor (bmm: got {self.ndim}-d and {other.ndim}-d tensors)")
        return self.matmul(other)

    def neg(self) -> Tensor:
        """-self."""
        return _wrap(_ops.negate(self._t))

    def abs(self) -> Tensor:
        """|self|."""
        return _wrap(_ops.abs(self._t))

    def exp(self) -> Tensor:
        """e ** self."""
        return _wrap(_ops.exp(self._t))

    def log(self) -> Tensor:
        """Natural logarithm."""
        return _wrap(_ops.log(self._t))

    def log1p(self) -> Tensor:
        """log(1 + self)."""
        return _wrap(_ops.log(_ops.add_scalar(self._t, 1.0)))

    def sqrt(self) -> Tensor:
        """Square root."""
        return _wrap(_ops.sqrt(self._t))

    def rsqrt(self) -> Tensor:
        """1 / sqrt(self)."""
        return _wrap(_ops.rdivide_scalar(1.0, _ops.sqrt(self._t)))

    def square(self) -> Tensor:
        """self * self."""
        return _wrap(_ops.multiply(self._t, self._t))

    def reciprocal(self) -> Tensor:
        """1 / self."""
        return _wrap(_ops.rdivide_scalar(1.0, self._t))

    def tanh(self) -> Tensor:
        """Hyperbolic tangent."""
        return _wrap(_ops.tanh(self._t))

    def sigmoid(self) -> Tensor:
        """1 / (1 + e ** -self)."""
        return _wrap(_ops.sigmoid(self._t))

    def relu(self) -> Tensor:
        """max(self, 0)."""
        return _wrap(_ops.relu(self._t))

    def erf(self) -> Tensor:
        """The error function."""
        return _wrap(_ops.erf(self._t))

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        """self limited to [min, max] (either may be None; numbers or tensors)."""
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        result = self._t
        if min is not None:
            result = _ops.maximum(result, _number(min) if isinstance(min, Scalar) else self._operand(min))
        if max is not None:
            result = _ops.minimum(result, _number(max) if isinstance(max, Scalar) else self._operand(max))
        return _wrap(result)

    clip = clamp

    def clamp_min(self, min: Any) -> Tensor:
        """max(self, min)."""
        return self.clamp(min=min)

    def clamp_max(self, max: Any) -> Tensor:
        """min(self, max)."""
        return self.clamp(max=max)

    def maximum(self, other: Tensor) -> Tensor:
        """Element-wise maximum."""
        return _wrap(_ops.maximum(self._t, self._operand(other)))

    def minimum(self, other: Tensor) -> Tensor:
        """Element-wise minimum."""
        return _wrap(_ops.minimum(self._t, self._operand(other)))

    def masked_fill(self, mask: Tensor, value: Any) -> Tensor:
        """``value`` where ``mask`` is true, self elsewhere."""
        if mask.dtype is not _dtype.bool:
            raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {mask.dtype}")
        fill = value.item() if isinstance(value, Tensor) else value
        return _wrap(_ops.where(mask._t, _ops.astype(_core_of(fill, self._t), self._t.dtype), self._t))

    def where(self, condition: Tensor, other: Any) -> Tensor:
        """self where ``condition`` is true, ``other`` elsewhere."""
        from needle.torch._functions import where

        result: Tensor = where(condition, self, other)
        return result

    def lerp(self, end: Tensor, weight: Any) -> Tensor:
        """self + weight * (end - self)."""
        result: Tensor = self + (end - self) * weight
        return result

    # ---- comparisons and logic ----------------------------------------------------------------------------
    def _compare(self, other: Any, op: Any) -> Tensor:
        return _wrap(op(self._t, _number(other) if isinstance(other, Scalar) else self._operand(other)))

    def eq(self, other: Any) -> Tensor:
        """self == other, as bool."""
        return self._compare(other, _ops.eq)

    def ne(self, other: Any) -> Tensor:
        """self != other, as bool."""
        return self._compare(other, _ops.ne)

    def lt(self, other: Any) -> Tensor:
        """self < other, as bool."""
        return self._compare(other, _ops.lt)

    def le(self, other: Any) -> Tensor:
        """self <= other, as bool."""
        return self._compare(other, _ops.le)

    def gt(self, other: Any) -> Tensor:
        """self > other, as bool."""
        return self._compare(other, _ops.gt)

    def ge(self, other: Any) -> Tensor:
        """self >= other, as bool."""
        return self._compare(other, _ops.ge)

    __lt__, __le__, __gt__, __ge__ = lt, le, gt, ge

    def __eq__(self, other: object) -> Tensor:  # type: ignore[override]  # element-wise, as in PyTorch
        return self.eq(other)

    def __ne__(self, other: object) -> Tensor:  # type: ignore[override]  # element-wise, as in PyTorch
        return self.ne(other)

    def equal(self, other: Tensor) -> builtins.bool:
        """Whether both have the same shape and values."""
        return self.shape == other.shape and builtins.bool(np.array_equal(self._t.numpy(), other._t.numpy()))

    def _as_bool(self) -> _Core:
        return self._t if self._t.dtype == "bool" else _ops.ne(self._t, 0)

    def logical_not(self) -> Tensor:
        """not self, as bool."""
        return _wrap(_ops.eq(self._as_bool(), False))

    def logical_and(self, other: Tensor) -> Tensor:
        """self and other, as bool."""
        return _wrap(_ops.minimum(self._as_bool(), other._as_bool()))

    def logical_or(self, other: Tensor) -> Tensor:
        """self or other, as bool."""
        return _wrap(_ops.maximum(self._as_bool(), other._as_bool()))

    def __invert__(self) -> Tensor:
        if self._t.dtype != "bool":
            raise NotImplementedError("Tensor.__invert__ (~) on integer tensors is not supported by needle.torch")
        return self.logical_not()

    def __and__(self, other: Tensor) -> Tensor:
        return self.logical_and(other)

    def __or__(self, other: Tensor) -> Tensor:
        return self.logical_or(other)

    def isnan(self) -> Tensor:
        """Where self is NaN, as bool."""
        return _wrap(_ops.ne(self._t, self._t))

    def isfinite(self) -> Tensor:
        """Where self is neither infinite nor NaN, as bool."""
        return _wrap(_ops.lt(_ops.abs(self._t), float("inf")))

    def allclose(
        self, other: Tensor, rtol: builtins.float = 1e-5, atol: builtins.float = 1e-8, equal_nan: builtins.bool = False
    ) -> builtins.bool:
        """Whether |self - other| <= atol + rtol * |other| everywhere."""
        return builtins.bool(np.allclose(self._t.numpy(), other._t.numpy(), rtol, atol, equal_nan))

    # ---- reductions ---------------------------------------------------------------------------------------
    def sum(
        self,
        dim: builtins.int | Sequence[builtins.int] | None = None,
        keepdim: builtins.bool = False,
        *,
        dtype: _dtype.dtype | None = None,
    ) -> Tensor:
        """Sum over ``dim`` (None: all); integers and bools sum to int64, as in PyTorch."""
        # _core.torch_install, called below the class, puts its C++ common case (x.sum() of a floating-point
        # tensor) in front of this method, which it calls for everything else.
        source = self._t
        if dtype is not None:
            source = _ops.astype(source, dtype.name)
        elif not self.dtype.is_floating_point:
            source = _ops.astype(source, "int64")
        return _wrap(_ops.summation(source, _dims(dim, self.ndim), keepdim))

    def mean(
        self,
        dim: builtins.int | Sequence[builtins.int] | None = None,
        keepdim: builtins.bool = False,
        *,
        dtype: _dtype.dtype | None = None,
    ) -> Tensor:
        """Mean over ``dim`` (None: all); floating-point tensors only, as in PyTorch."""
        source = self._t if dtype is None else _ops.astype(self._t, dtype.name)
        if not _dtype.from_name(source.dtype).is_floating_point:
            raise RuntimeError(
                "mean(): could not infer output dtype. Input dtype must be either a floating point or complex "
                f"dtype. Got: {_dtype.from_name(source.dtype).name.capitalize()}"
            )
        return _wrap(_ops.mean(source, _dims(dim, self.ndim), keepdim))

    def _extreme(self, dim: Any, keepdim: builtins.bool, largest: builtins.bool) -> Any:
        if isinstance(dim, Tensor):
            return self.maximum(dim) if largest else self.minimum(dim)
        if dim is None:
            return _wrap((_ops.max if largest else _ops.min)(self._t, None, False))
        axis = _axis(dim, self.ndim)
        indices = _ops.argmax(self._t.detach() if largest else self._negated(), axis, True)
        values = _ops.gather(self._t, axis, indices)
        if not keepdim:
            values, indices = _ops.squeeze(values, [axis]), _ops.squeeze(indices, [axis])
        return ValuesIndices(_wrap(values), _wrap(indices))

    def max(self, dim: Any = None, keepdim: builtins.bool = False) -> Any:
        """The largest element; with ``dim``, ``(values, indices)`` along it (the gradient goes to the
        index); with a tensor, the element-wise maximum."""
        return self._extreme(dim, keepdim, largest=True)

    def min(self, dim: Any = None, keepdim: builtins.bool = False) -> Any:
        """The smallest element; with ``dim``, ``(values, indices)`` along it; with a tensor, the
        element-wise minimum."""
        return self._extreme(dim, keepdim, largest=False)

    def amax(self, dim: builtins.int | Sequence[builtins.int] | None = None, keepdim: builtins.bool = False) -> Tensor:
        """Maximum over ``dim`` (ties share the gradient)."""
        return _wrap(_ops.max(self._t, _dims(dim, self.ndim) if dim != () else None, keepdim))

    def amin(self, dim: builtins.int | Sequence[builtins.int] | None = None, keepdim: builtins.bool = False) -> Tensor:
        """Minimum over ``dim`` (ties share the gradient)."""
        return _wrap(_ops.min(self._t, _dims(dim, self.ndim) if dim != () else None, keepdim))

    def argmax(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Tensor:
        """Index of the first maximum along ``dim`` (None: of the flattened tensor), int64."""
        return _wrap(_ops.argmax(self._t.detach(), None if dim is None else _axis(dim, self.ndim), keepdim))

    def argmin(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Tensor:
        """Index of the first minimum along ``dim`` (None: of the flattened tensor), int64."""
        return _wrap(_ops.argmax(self._negated(), None if dim is None else _axis(dim, self.ndim), keepdim))

    def _negated(self) -> _Core:
        """-self outside the graph, in a dtype where negation keeps the order (the first maximum of -self is
        the first minimum of self)."""
        source = self._t.detach()
        if source.dtype in ("bool", "uint8"):
            source = _ops.astype(source, "int64")
        negated: _Core = _ops.negate(source)
        return negated

    def var(
        self,
        dim: builtins.int | Sequence[builtins.int] | None = None,
        unbiased: builtins.bool | None = None,
        keepdim: builtins.bool = False,
        *,
        correction: builtins.int | None = None,
    ) -> Tensor:
        """Variance over ``dim`` with ``correction`` (default 1: unbiased) subtracted from the count."""
        if correction is None:
            correction = 0 if unbiased is False else 1
        dims = _dims(dim, self.ndim)
        count = self.numel() if dims is None else int(np.prod([self._t.shape[d] for d in dims]))
        centered = _ops.sub(self._t, _ops.mean(self._t, dims, True))
        total = _ops.summation(_ops.multiply(centered, centered), dims, keepdim)
        return _wrap(_ops.divide_scalar(total, builtins.max(count - correction, 0)))

    def std(
        self,
        dim: builtins.int | Sequence[builtins.int] | None = None,
        unbiased: builtins.bool | None = None,
        keepdim: builtins.bool = False,
        *,
        correction: builtins.int | None = None,
    ) -> Tensor:
        """Standard deviation over ``dim`` (see ``var``)."""
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    def norm(
        self, p: Any = "fro", dim: builtins.int | Sequence[builtins.int] | None = None, keepdim: builtins.bool = False
    ) -> Tensor:
        """The p-norm over ``dim`` (2 / 'fro', 1, inf)."""
        dims = _dims(dim, self.ndim)
        if p in ("fro", 2, 2.0):
            return _wrap(_ops.sqrt(_ops.summation(_ops.multiply(self._t, self._t), dims, keepdim)))
        if p in (1, 1.0):
            return _wrap(_ops.summation(_ops.abs(self._t), dims, keepdim))
        if p == float("inf"):
            return _wrap(_ops.max(_ops.abs(self._t), dims, keepdim))
        if isinstance(p, builtins.int | builtins.float):
            powered = _ops.summation(_ops.power_scalar(_ops.abs(self._t), p), dims, keepdim)
            return _wrap(_ops.power_scalar(powered, 1.0 / p))
        raise NotImplementedError(f"Tensor.norm(p={p!r}) is not supported by needle.torch")

    def all(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Tensor:
        """Whether every element (along ``dim``) is true, as bool."""
        return _wrap(
            _ops.astype(_ops.min(_ops.astype(self._as_bool(), "uint8"), _dims(dim, self.ndim), keepdim), "bool")
        )

    def any(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Tensor:
        """Whether some element (along ``dim``) is true, as bool."""
        return _wrap(
            _ops.astype(_ops.max(_ops.astype(self._as_bool(), "uint8"), _dims(dim, self.ndim), keepdim), "bool")
        )

    def logsumexp(self, dim: builtins.int | Sequence[builtins.int], keepdim: builtins.bool = False) -> Tensor:
        """log(sum(exp(self))) over ``dim``, computed stably."""
        return _wrap(_ops.logsumexp(self._t, _dims(dim, self.ndim), keepdim))

    def softmax(self, dim: builtins.int) -> Tensor:
        """Softmax along ``dim``."""
        return _wrap(_ops.softmax(self._t, _axis(dim, self.ndim)))

    def log_softmax(self, dim: builtins.int) -> Tensor:
        """log(softmax) along ``dim``."""
        return _wrap(_ops.logsoftmax(self._t, _axis(dim, self.ndim)))

    def topk(
        self, k: builtins.int, dim: builtins.int = -1, largest: builtins.bool = True, sorted: builtins.bool = True
    ) -> ValuesIndices:
        """The ``k`` largest (or smallest) values along ``dim`` and their indices."""
        from needle.torch._functions import topk

        return topk(self, k, dim, largest, sorted)

    def sort(
        self, dim: builtins.int = -1, descending: builtins.bool = False, stable: builtins.bool = False
    ) -> ValuesIndices:
        """Values sorted along ``dim`` and the indices they came from."""
        from needle.torch._functions import sort

        return sort(self, dim, descending, stable)

    def argsort(
        self, dim: builtins.int = -1, descending: builtins.bool = False, stable: builtins.bool = False
    ) -> Tensor:
        """The indices that sort self along ``dim``."""
        return self.sort(dim, descending, stable).indices

    def triu(self, diagonal: builtins.int = 0) -> Tensor:
        """Zeros below the ``diagonal``-th diagonal of the last two dimensions."""
        from needle.torch._functions import triu

        return triu(self, diagonal)

    def tril(self, diagonal: builtins.int = 0) -> Tensor:
        """Zeros above the ``diagonal``-th diagonal of the last two dimensions."""
        from needle.torch._functions import tril

        return tril(self, diagonal)

    def gather(self, dim: builtins.int, index: Tensor) -> Tensor:
        """Values of self at ``index`` along ``dim``."""
        return _wrap(_ops.gather(self._t, _axis(dim, self.ndim), index._t))

    # ---- in-place methods ---------------------------------------------------------------------------------
    def _assign(self, result: _Core, name: str) -> Tensor:
        """Makes ``result`` this tensor's value in place, as PyTorch's ``name`` does: the storage takes the new
        values (so views see them and the storage's version goes up: a backward that saved the old values
        refuses to run); when gradients are recorded, this tensor also becomes ``result``'s node, so that
        gradients flow through the op."""
        t = self._t
        if result.dtype != t.dtype:
            if _dtype.from_name(result.dtype).is_floating_point and not self.dtype.is_floating_point:
                raise RuntimeError(
                    f"result type {_dtype.from_name(result.dtype).name.capitalize()} can't be cast to the desired "
                    f"output type {self.dtype.name.capitalize()} ({name})"
                )
            result = _ops.astype(result, t.dtype)
        if tuple(result.shape) != tuple(t.shape):
            try:
                result = _ops.broadcast_to(result, list(t.shape))
            except (ValueError, RuntimeError):
                raise RuntimeError(
                    f"output with shape {list(t.shape)} doesn't match the broadcast shape {list(result.shape)} ({name})"
                ) from None
        recording = _core.grad_enabled() and (t.requires_grad or result.requires_grad)
        if recording and t.is_leaf and t.requires_grad:
            raise RuntimeError(f"a leaf Variable that requires grad is being used in an in-place operation ({name}).")
        t.data[...] = result.detach()
        if recording:
            self._t = result
            self._computed = True
        return self

    def add_(self, other: Any, *, alpha: Scalar = 1) -> Tensor:
        """self += alpha * other, in place."""
        return self._assign(self.add(other, alpha=alpha)._t, "add_")

    def sub_(self, other: Any, *, alpha: Scalar = 1) -> Tensor:
        """self -= alpha * other, in place."""
        return self._assign(self.sub(other, alpha=alpha)._t, "sub_")

    def mul_(self, other: Any) -> Tensor:
        """self *= other, in place."""
        return self._assign(self.mul(other)._t, "mul_")

    def div_(self, other: Any) -> Tensor:
        """self /= other, in place."""
        return self._assign(self.div(other)._t, "div_")

    def pow_(self, exponent: Any) -> Tensor:
        """self **= exponent, in place."""
        return self._assign(self.pow(exponent)._t, "pow_")

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:
        """self limited to [min, max], in place."""
        return self._assign(self.clamp(min, max)._t, "clamp_")

    def relu_(self) -> Tensor:
        """max(self, 0), in place."""
        return self._assign(_ops.relu(self._t), "relu_")

    def neg_(self) -> Tensor:
        """-self, in place."""
        return self._assign(_ops.negate(self._t), "neg_")

    def sqrt_(self) -> Tensor:
        """sqrt(self), in place."""
        return self._assign(_ops.sqrt(self._t), "sqrt_")

    def exp_(self) -> Tensor:
        """exp(self), in place."""
        return self._assign(_ops.exp(self._t), "exp_")

    def addcmul_(self, tensor1: Tensor, tensor2: Tensor, *, value: Scalar = 1) -> Tensor:
        """self += value * tensor1 * tensor2, in place."""
        return self.add_(tensor1 * tensor2, alpha=value)

    def addcdiv_(self, tensor1: Tensor, tensor2: Tensor, *, value: Scalar = 1) -> Tensor:
        """self += value * tensor1 / tensor2, in place."""
        return self.add_(tensor1 / tensor2, alpha=value)

    def lerp_(self, end: Tensor, weight: Any) -> Tensor:
        """self += weight * (end - self), in place."""
        return self._assign(self.lerp(end, weight)._t, "lerp_")

    def masked_fill_(self, mask: Tensor, value: Any) -> Tensor:
        """``value`` where ``mask`` is true, in place."""
        return self._assign(self.masked_fill(mask, value)._t, "masked_fill_")

    def fill_(self, value: Any) -> Tensor:
        """Every element set to ``value``, in place."""
        fill = value.item() if isinstance(value, Tensor) else value
        return self._assign(_ops.astype(_core_of(fill, self._t), self._t.dtype), "fill_")

    def zero_(self) -> Tensor:
        """Every element set to 0, in place."""
        return self.fill_(0)

    def copy_(self, src: Any, non_blocking: builtins.bool = False) -> Tensor:
        """``src``'s values (broadcast, converted to this dtype), in place."""
        source = _core_of(src, self._t)
        if source.device != self._t.device:
            source = source.to(self._t.device)
        return self._assign(source, "copy_")

    def uniform_(self, a: builtins.float = 0.0, b: builtins.float = 1.0) -> Tensor:
        """Values drawn uniformly from [a, b), in place."""
        draw = self._t.device.rand(*self._t.shape, dtype=self._t.dtype)
        return self._assign(_Core(draw * (b - a) + a, dtype=self._t.dtype, requires_grad=False), "uniform_")

    def normal_(self, mean: builtins.float = 0.0, std: builtins.float = 1.0) -> Tensor:
        """Values drawn from N(mean, std ** 2), in place."""
        draw = self._t.device.randn(*self._t.shape, dtype=self._t.dtype)
        return self._assign(_Core(draw * std + mean, dtype=self._t.dtype, requires_grad=False), "normal_")

    def __iadd__(self, other: Any) -> Tensor:
        return self.add_(other)

    def __isub__(self, other: Any) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other: Any) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self.div_(other)

    def __getattr__(self, name: str) -> NoReturn:
        # A PyTorch method this layer does not offer: say so, rather than a bare AttributeError.
        if name.startswith("_"):
            raise AttributeError(f"'Tensor' object has no attribute '{name}'")
        raise Unsupported(f"Tensor.{name} is not supported by needle.torch")


# The class's most frequent calls, in C++ (python/src/bind_torch_layer.cpp): the common cases of the operators
# (see __add__), of sum() and of backward(), and _wrap, the PyTorch-API tensor over a Needle tensor t (no copy;
# its _computed says whether an op that records gradients made t).
_core.torch_install(Tensor)
_wrap = cast("Callable[[_Core], Tensor]", _core.torch_wrap)


def _rebuild(kind: type[Tensor], values: np.ndarray[Any, Any], requires_grad: builtins.bool) -> Tensor:
    """A tensor (or Parameter) of ``kind`` from pickled values."""
    result = _wrap(_Core(values, dtype=values.dtype.name, requires_grad=False))
    if kind is not Tensor:
        return kind(result, requires_grad)
    if requires_grad:
        result._t.requires_grad = True
    return result


class Unsupported(NotImplementedError, AttributeError):
    """A PyTorch name needle.torch does not offer. It is a NotImplementedError that is also an
    AttributeError, so that ``hasattr`` and ``getattr(x, name, default)`` still work."""


wrap = _wrap  # for the other modules of needle.torch


def core_of(value: object, like: _Core | None = None) -> _Core:
    """The Needle tensor of ``value`` (for the other modules of needle.torch)."""
    return _core_of(value, like)
