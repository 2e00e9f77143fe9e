"""Autograd: ``Tensor``, ops (built-in and defined in Python), grad mode and the graph's topological order.

The graph, the backward pass and every built-in op live in Needle's C++ core; this module gives them
Needle's Python names. ``TensorOp`` is the base class of ops written in Python: subclass it, implement
``compute(self, *arrays)`` (NDArrays in, an NDArray out) and ``gradient(self, out_grad, node)`` (Tensors in,
a Tensor or a tuple of Tensors/None out), and calling an instance creates a tensor that joins the C++
graph like the output of any built-in op.
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import overload

from needle import _core
from needle import backend_ndarray as array_api
from needle._core import NDArray, Op, Tensor
from needle.backend_ndarray import all_devices, cpu, default_device

#: Needle's name for the graph node class (every value in the graph is a Tensor here).
Value = Tensor

#: The course's switch for lazy evaluation: Needle always computes eagerly, so it is always False.
LAZY_MODE = False


class TensorOp(Op):
    """Base class of ops defined in Python.

    Subclasses implement ``compute`` and ``gradient``; they may define ``__init__`` to store parameters
    (calling ``super().__init__()`` is optional). ``name`` defaults to the class name.
    """

    def __init__(self) -> None:
        """Nothing to initialize: the op's state is whatever the subclass stores."""

    def __call__(self, *args: Tensor) -> Tensor:
        """The output of this op on ``args``, recorded in the graph when grad mode is on."""
        return Tensor.make_from_op(self, args)

    @property
    def name(self) -> str:
        """The op's name in errors and reprs: the class name."""
        return type(self).__name__

    def compute(self, *args: NDArray) -> NDArray:
        """The forward computation on the inputs' arrays."""
        raise NotImplementedError(f"{type(self).__name__}.compute is not implemented")

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor | tuple[Tensor | None, ...] | None:
        """The gradient of each input (a Tensor for a one-input op, else a tuple; None: no gradient)."""
        raise NotImplementedError(f"{type(self).__name__}.gradient is not implemented")

    def gradient_as_tuple(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor | None, ...]:
        """``gradient`` as a tuple with one entry per input."""
        output = self.gradient(out_grad, node)
        if isinstance(output, Tensor):
            return (output,)
        if output is None:
            return (None,) * len(node.inputs)
        return tuple(output)

    def __repr__(self) -> str:
        return f"<needle op '{self.name}'>"


class TensorTupleOp(Op):
    """Base class of ops whose result is a TensorTuple (the course's ``Split``, ``MakeTensorTuple``,
    ``FusedAddScalars``). Needle's graph holds Tensors only, so a tuple op is built from Tensor ops: the
    built-in ones (``needle.ops``) implement ``__call__`` that way; a subclass must do the same."""

    def __init__(self) -> None:
        """Nothing to initialize: the op's state is whatever the subclass stores."""

    def __call__(self, *args: Tensor) -> TensorTuple:  # type: ignore[override]  # a tuple, not a Tensor
        """The TensorTuple this op gives for ``args``."""
        raise NotImplementedError(
            f"{type(self).__name__}.__call__ is not implemented: Needle's graph holds Tensors, so a tuple op "
            "returns a TensorTuple of Tensor ops' outputs (see needle.ops.Split)"
        )

    @property
    def name(self) -> str:
        """The op's name in errors and reprs: the class name."""
        return type(self).__name__


class TensorTuple(Sequence[Tensor]):
    """A fixed sequence of Tensors (Needle's tuple value): the result of ``split`` and ``make_tuple``.

    Its elements are ordinary Tensors, so gradients flow through each of them.
    """

    __slots__ = ("_tensors",)

    def __init__(self, tensors: Iterable[Tensor] = ()) -> None:
        self._tensors = tuple(tensors)
        for t in self._tensors:
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorTuple: expected Tensors, got {type(t).__name__}")

    def __len__(self) -> int:
        return len(self._tensors)

    @overload
    def __getitem__(self, index: int) -> Tensor: ...

    @overload
    def __getitem__(self, index: slice) -> TensorTuple: ...

    def __getitem__(self, index: int | slice) -> Tensor | TensorTuple:
        if isinstance(index, slice):
            return TensorTuple(self._tensors[index])
        return self._tensors[index]

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self._tensors)

    def tuple(self) -> tuple[Tensor, ...]:
        """The elements as a Python tuple."""
        return self._tensors

    def __add__(self, other: TensorTuple) -> TensorTuple:
        """Element-wise sum with another TensorTuple of the same length (Needle's ``+``)."""
        if not isinstance(other, TensorTuple):
            return NotImplemented
        if len(other) != len(self):
            raise ValueError(f"TensorTuple +: lengths differ ({len(self)} and {len(other)})")
        return TensorTuple(a + b for a, b in zip(self._tensors, other._tensors, strict=True))

    def detach(self) -> TensorTuple:
        """The elements detached from the graph."""
        return TensorTuple(t.detach() for t in self._tensors)

    def __repr__(self) -> str:
        return "TensorTuple(" + ", ".join(repr(t) for t in self._tensors) + ")"


def find_topo_sort(node_list: Iterable[Tensor]) -> list[Tensor]:
    """Every tensor reachable from ``node_list`` through op inputs, each after all of its inputs."""
    return _core.topological_order(list(node_list))


def topo_sort_dfs(node: Tensor, visited: set[Tensor], topo_order: list[Tensor]) -> None:
    """The course's helper of ``find_topo_sort``: appends to ``topo_order`` every tensor reachable from
    ``node`` that is not in ``visited`` yet, each after its inputs (post-order), and adds them to ``visited``.
    Iterative, so deep graphs do not reach Python's recursion limit."""
    if node in visited:
        return
    visited.add(node)
    stack: list[tuple[Tensor, Iterator[Tensor]]] = [(node, iter(node.inputs))]
    while stack:
        current, inputs = stack[-1]
        child = next(inputs, None)
        if child is None:
            stack.pop()
            topo_order.append(current)
        elif child not in visited:
            visited.add(child)
            stack.append((child, iter(child.inputs)))


def sum_node_list(node_list: Iterable[Tensor]) -> Tensor:
    """The sum of the tensors, as a chain of additions (the course's helper)."""
    return functools.reduce(operator.add, node_list)


def live_tensor_count() -> int:
    """Number of tensors alive right now (what Needle's ``TENSOR_COUNTER`` tracks)."""
    return _core.live_tensor_count()


def __getattr__(name: str) -> int:
    # Needle exposes the live-tensor count as a module attribute; keep it current on every read.
    if name == "TENSOR_COUNTER":
        return live_tensor_count()
    raise AttributeError(f"module 'needle.autograd' has no attribute {name!r}")


def compute_gradient_of_variables(output_tensor: Tensor, out_grad: Tensor | None = None) -> None:
    """Needle's entry point of the backward pass: ``output_tensor.backward(out_grad)``."""
    output_tensor.backward(out_grad)


def is_grad_enabled() -> bool:
    """True unless graph recording is disabled on this thread."""
    return _core.grad_enabled()


class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode for a ``with`` block (or a decorated function), restoring the previous mode after."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        self._previous.append(_core.grad_enabled())
        _core.set_grad_enabled(self._enabled)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _core.set_grad_enabled(self._previous.pop())


class no_grad(_GradMode):
    """Disables graph recording in its scope: ops compute values only (``with needle.no_grad(): ...``)."""

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(_GradMode):
    """Enables graph recording in its scope (inside a ``no_grad`` block)."""

    def __init__(self) -> None:
        super().__init__(True)


class set_grad_enabled(contextlib.ContextDecorator):
    """Sets grad mode now; used as a context manager, restores the previous mode on exit."""

    def __init__(self, mode: bool) -> None:
        self._previous = _core.grad_enabled()
        _core.set_grad_enabled(bool(mode))

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _core.set_grad_enabled(self._previous)


__all__ = [
    "LAZY_MODE",
    "NDArray",
    "Op",
    "Tensor",
    "TensorOp",
    "TensorTuple",
    "TensorTupleOp",
    "Value",
    "all_devices",
    "array_api",
    "compute_gradient_of_variables",
    "cpu",
    "default_device",
    "enable_grad",
    "find_topo_sort",
    "is_grad_enabled",
    "live_tensor_count",
    "no_grad",
    "set_grad_enabled",
    "sum_node_list",
    "topo_sort_dfs",
]
