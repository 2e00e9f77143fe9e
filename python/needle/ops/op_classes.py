"""The course's op classes (``ops.EWiseAdd()(a, b)``, ``ops.PowerScalar(3)(x)``, ``ops.Summation(axes)(x)``...).

Each class is a table entry: the function of ``needle.ops`` that runs the op and the names (and defaults) of
its constructor parameters, which are passed after the tensor inputs. Calling an instance calls that
function, so an op class and its function form record the same C++ op in the graph; nothing is computed
here. The constructor signatures and attribute names are the course's (``PowerScalar(3).scalar``,
``Summation(axes).axes``, ``Conv(stride, padding)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from needle import autograd
from needle._core import NDArray, Tensor
from needle._core import ops as _core_ops
from needle.autograd import TensorOp, TensorTuple, TensorTupleOp
from needle.ops import adapters

#: Marks a constructor parameter without a default.
_REQUIRED: Any = object()


class _BuiltinOp:
    """What the op classes share: binding the constructor's arguments, calling the function, ``compute``
    and ``gradient`` through the built-in op."""

    #: The function of ``needle.ops`` that runs this op: ``function(*inputs, *parameters)``.
    function: ClassVar[Callable[..., Any]]
    #: (name, default) of each constructor parameter, in the course's order; _REQUIRED when it has none.
    parameters: ClassVar[tuple[tuple[str, Any], ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = [name for name, _ in self.parameters]
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes {len(names)} arguments ({len(args)} given)")
        unknown = set(kwargs) - set(names)
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected argument {sorted(unknown)[0]!r}")
        for position, (name, default) in enumerate(self.parameters):
            value = args[position] if position < len(args) else kwargs.get(name, default)
            if value is _REQUIRED:
                raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
            setattr(self, name, value)

    def _arguments(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name, _ in self.parameters)

    def __call__(self, *inputs: Any) -> Any:
        """The op on ``inputs`` (Tensors), recorded in the graph like its function form."""
        return type(self).function(*inputs, *self._arguments())

    def compute(self, *args: NDArray) -> Any:
        """The forward value on arrays (the op run on constant tensors)."""
        with autograd.no_grad():
            out = self(*(Tensor.make_const(a, requires_grad=False) for a in args))
        if isinstance(out, TensorTuple):
            return tuple(t.cached_data for t in out)
        return out.cached_data

    def gradient(self, out_grad: Tensor, node: Tensor) -> Any:
        """The gradients of ``node``'s inputs: those of the built-in op that produced ``node``."""
        if node.op is None:
            raise ValueError(f"{type(self).__name__}.gradient: node is a leaf tensor, not the output of an op")
        return node.op.gradient(out_grad, node)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in self.parameters)
        return f"{type(self).__name__}({arguments})"


# _BuiltinOp comes first in the bases, so its __init__, __call__, compute and gradient are the ones used.
class _Op(_BuiltinOp, TensorOp):
    """An op class whose result is a Tensor."""


class _TupleOp(_BuiltinOp, TensorTupleOp):
    """An op class whose result is a TensorTuple."""


# ---- element-wise ---------------------------------------------------------------------------------


class EWiseAdd(_Op):
    """a + b (``add``)."""

    function = _core_ops.add


class AddScalar(_Op):
    """a + scalar (``add_scalar``)."""

    function = _core_ops.add_scalar
    parameters = (("scalar", _REQUIRED),)


class EWiseMul(_Op):
    """a * b (``multiply``)."""

    function = _core_ops.multiply


class MulScalar(_Op):
    """a * scalar (``mul_scalar``)."""

    function = _core_ops.mul_scalar
    parameters = (("scalar", _REQUIRED),)


class EWisePow(_Op):
    """a ** b (``power``)."""

    function = _core_ops.power


class PowerScalar(_Op):
    """a ** scalar (``power_scalar``)."""

    function = _core_ops.power_scalar
    parameters = (("scalar", _REQUIRED),)


class EWiseDiv(_Op):
    """a / b (``divide``)."""

    function = _core_ops.divide


class DivScalar(_Op):
    """a / scalar (``divide_scalar``)."""

    function = _core_ops.divide_scalar
    parameters = (("scalar", _REQUIRED),)


class Negate(_Op):
    """-a (``negate``)."""

    function = _core_ops.negate


class Log(_Op):
    """Natural logarithm (``log``)."""

    function = _core_ops.log


class Exp(_Op):
    """e ** a (``exp``)."""

    function = _core_ops.exp


class ReLU(_Op):
    """max(a, 0) (``relu``)."""

    function = _core_ops.relu


class Tanh(_Op):
    """tanh(a) (``tanh``)."""

    function = _core_ops.tanh


# ---- shapes ---------------------------------------------------------------------------------------


class Transpose(_Op):
    """Swaps two axes, the last two by default (``transpose``)."""

    function = _core_ops.transpose
    parameters = (("axes", None),)


class Reshape(_Op):
    """a reshaped to ``shape`` (``reshape``)."""

    function = _core_ops.reshape
    parameters = (("shape", _REQUIRED),)


class BroadcastTo(_Op):
    """a broadcast to ``shape`` (``broadcast_to``)."""

    function = _core_ops.broadcast_to
    parameters = (("shape", _REQUIRED),)


class Summation(_Op):
    """Sum over ``axes`` (an int, a tuple, or None for all) (``summation``)."""

    function = _core_ops.summation
    parameters = (("axes", None),)


class MatMul(_Op):
    """a @ b (``matmul``)."""

    function = _core_ops.matmul


class Stack(_Op):
    """The tensors of a TensorTuple (or of several arguments) stacked along a new axis (``stack``)."""

    function = _core_ops.stack
    parameters = (("axis", _REQUIRED),)
    axis: int

    def __call__(self, *inputs: Any) -> Tensor:
        # The course calls Stack(axis)(make_tuple(*tensors)); several tensors are accepted too.
        tensors = inputs[0] if len(inputs) == 1 and not isinstance(inputs[0], Tensor) else inputs
        return _core_ops.stack(tensors, self.axis)


class Split(_TupleOp):
    """The slices of a tensor along ``axis``, that axis removed, as a TensorTuple (``split``)."""

    function = adapters.split
    parameters = (("axis", _REQUIRED),)


class Flip(_Op):
    """a reversed along ``axes`` (``flip``)."""

    function = _core_ops.flip
    parameters = (("axes", None),)


class Dilate(_Op):
    """``dilation`` zeros inserted after each element along ``axes`` (``dilate``)."""

    function = _core_ops.dilate
    parameters = (("axes", _REQUIRED), ("dilation", _REQUIRED))


class UnDilate(_Op):
    """The inverse of Dilate: every (dilation + 1)-th element along ``axes`` (``undilate``)."""

    function = _core_ops.undilate
    parameters = (("axes", _REQUIRED), ("dilation", _REQUIRED))


# ---- neural-network functions ---------------------------------------------------------------------


class Conv(_Op):
    """Convolution of an NHWC input with (K, K, C_in, C_out) weights (``conv``)."""

    function = _core_ops.conv
    parameters = (("stride", 1), ("padding", 0))


class LogSoftmax(_Op):
    """log(softmax(a)) over the last axis (``logsoftmax``)."""

    function = _core_ops.logsoftmax


class LogSumExp(_Op):
    """log(sum(exp(a))) over ``axes``, computed stably (``logsumexp``)."""

    function = _core_ops.logsumexp
    parameters = (("axes", None),)


# ---- tuples ---------------------------------------------------------------------------------------


class MakeTensorTuple(_TupleOp):
    """A TensorTuple of the arguments (``make_tuple``)."""

    function = adapters.make_tuple


class TupleGetItem(_Op):
    """Element ``index`` of a TensorTuple (``tuple_get_item``)."""

    function = adapters.tuple_get_item
    parameters = (("index", _REQUIRED),)


class FusedAddScalars(_TupleOp):
    """(a + c0, a + c1) (``fused_add_scalars``)."""

    function = adapters.fused_add_scalars
    parameters = (("c0", _REQUIRED), ("c1", _REQUIRED))


__all__ = [
    "AddScalar",
    "BroadcastTo",
    "Conv",
    "Dilate",
    "DivScalar",
    "EWiseAdd",
    "EWiseDiv",
    "EWiseMul",
    "EWisePow",
    "Exp",
    "Flip",
    "FusedAddScalars",
    "Log",
    "LogSoftmax",
    "LogSumExp",
    "MakeTensorTuple",
    "MatMul",
    "MulScalar",
    "Negate",
    "PowerScalar",
    "ReLU",
    "Reshape",
    "Split",
    "Stack",
    "Summation",
    "Tanh",
    "Transpose",
    "TupleGetItem",
    "UnDilate",
]
