"""The course's op classes (``ops.EWiseAdd()(a, b)``...), ``needle.backend_selection`` and the course's names in
``needle.autograd``: each op class runs the same C++ op as its function form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import ops


def tensors(device: nd.Device, *shapes: tuple[int, ...]) -> list[ndl.Tensor]:
    rng = np.random.default_rng(sum(sum(s) for s in shapes))
    return [
        ndl.Tensor(np.abs(rng.standard_normal(s)).astype(np.float32) + 0.5, device=device, requires_grad=True)
        for s in shapes
    ]


# (op class instance, the function form with the same arguments, input shapes)
CASES: list[tuple[str, Callable[[], Any], Callable[..., Any], list[tuple[int, ...]]]] = [
    ("EWiseAdd", lambda: ops.EWiseAdd(), ops.add, [(2, 3), (2, 3)]),
    ("AddScalar", lambda: ops.AddScalar(1.5), lambda a: ops.add_scalar(a, 1.5), [(2, 3)]),
    ("EWiseMul", lambda: ops.EWiseMul(), ops.multiply, [(2, 3), (2, 3)]),
    ("MulScalar", lambda: ops.MulScalar(scalar=-2), lambda a: ops.mul_scalar(a, -2), [(2, 3)]),
    ("EWisePow", lambda: ops.EWisePow(), ops.power, [(2, 3), (2, 3)]),
    ("PowerScalar", lambda: ops.PowerScalar(3), lambda a: ops.power_scalar(a, 3), [(2, 3)]),
    ("EWiseDiv", lambda: ops.EWiseDiv(), ops.divide, [(2, 3), (2, 3)]),
    ("DivScalar", lambda: ops.DivScalar(4.0), lambda a: ops.divide_scalar(a, 4.0), [(2, 3)]),
    ("Transpose", lambda: ops.Transpose(), ops.transpose, [(2, 3, 4)]),
    ("Transpose-axes", lambda: ops.Transpose((0, 2)), lambda a: ops.transpose(a, (0, 2)), [(2, 3, 4)]),
    ("Reshape", lambda: ops.Reshape((3, 2)), lambda a: ops.reshape(a, (3, 2)), [(2, 3)]),
    ("BroadcastTo", lambda: ops.BroadcastTo((4, 2, 3)), lambda a: ops.broadcast_to(a, (4, 2, 3)), [(2, 3)]),
    ("Summation", lambda: ops.Summation(), ops.summation, [(2, 3)]),
    ("Summation-axes", lambda: ops.Summation((0, 2)), lambda a: ops.summation(a, (0, 2)), [(2, 3, 4)]),
    ("Summation-int", lambda: ops.Summation(1), lambda a: ops.summation(a, 1), [(2, 3)]),
    ("MatMul", lambda: ops.MatMul(), ops.matmul, [(2, 3), (3, 4)]),
    ("Negate", lambda: ops.Negate(), ops.negate, [(2, 3)]),
    ("Log", lambda: ops.Log(), ops.log, [(2, 3)]),
    ("Exp", lambda: ops.Exp(), ops.exp, [(2, 3)]),
    ("ReLU", lambda: ops.ReLU(), ops.relu, [(2, 3)]),
    ("Tanh", lambda: ops.Tanh(), ops.tanh, [(2, 3)]),
    ("Flip", lambda: ops.Flip((0, 1)), lambda a: ops.flip(a, (0, 1)), [(2, 3)]),
    ("Dilate", lambda: ops.Dilate((1,), 2), lambda a: ops.dilate(a, (1,), 2), [(2, 3)]),
    ("UnDilate", lambda: ops.UnDilate((0,), 1), lambda a: ops.undilate(a, (0,), 1), [(4, 3)]),
    ("Conv", lambda: ops.Conv(2, 1), lambda a, b: ops.conv(a, b, stride=2, padding=1), [(1, 5, 5, 2), (3, 3, 2, 4)]),
    ("LogSoftmax", lambda: ops.LogSoftmax(), ops.logsoftmax, [(2, 3)]),
    ("LogSumExp", lambda: ops.LogSumExp(), ops.logsumexp, [(2, 3)]),
    ("LogSumExp-axes", lambda: ops.LogSumExp(axes=(1,)), lambda a: ops.logsumexp(a, (1,)), [(2, 3)]),
]


@pytest.mark.parametrize(("make", "function", "shapes"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_op_class_runs_the_function_form(
    device: nd.Device, make: Callable[[], Any], function: Callable[..., Any], shapes: list[tuple[int, ...]]
) -> None:
    op = make()
    assert isinstance(op, ndl.TensorOp)
    inputs = tensors(device, *shapes)
    out = op(*inputs)
    expected = function(*inputs)
    assert out.op.name == expected.op.name  # the same C++ op is recorded
    assert out.device == device
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    # compute() runs the op on arrays; gradient() is the recorded op's.
    np.testing.assert_array_equal(op.compute(*(t.cached_data for t in inputs)).numpy(), expected.numpy())
    ones = ndl.Tensor(np.ones(out.shape, dtype=np.float32), device=device)
    for got, want in zip(op.gradient_as_tuple(ones, out), expected.op.gradient_as_tuple(ones, expected), strict=True):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    out.sum().backward()
    grads = [t.grad.numpy() for t in inputs]
    for t in inputs:
        t.grad = None
    expected.sum().backward()
    for got, t in zip(grads, inputs, strict=True):
        np.testing.assert_array_equal(got, t.grad.numpy())


def test_op_classes_keep_the_course_attribute_names() -> None:
    assert ops.PowerScalar(3).scalar == 3
    assert ops.Summation(axes=(0,)).axes == (0,)
    assert ops.Transpose().axes is None
    assert ops.Reshape((2, 2)).shape == (2, 2)
    conv = ops.Conv()
    assert (conv.stride, conv.padding) == (1, 0)
    dilate = ops.Dilate((0, 1), 2)
    assert (dilate.axes, dilate.dilation) == ((0, 1), 2)
    assert ops.Stack(2).axis == 2
    assert ops.TupleGetItem(1).index == 1
    add = ops.FusedAddScalars(1.0, 2.0)
    assert (add.c0, add.c1) == (1.0, 2.0)
    assert repr(ops.PowerScalar(2)) == "PowerScalar(scalar=2)"
    # Attributes written after construction are the ones used.
    power = ops.PowerScalar(2)
    power.scalar = 3
    np.testing.assert_array_equal(power(ndl.Tensor([2.0])).numpy(), [8.0])


def test_op_class_constructor_errors_name_the_class() -> None:
    with pytest.raises(TypeError, match=r"PowerScalar.*scalar"):
        ops.PowerScalar()
    with pytest.raises(TypeError, match="EWiseAdd"):
        ops.EWiseAdd(1)
    with pytest.raises(TypeError, match=r"Summation.*keepdim"):
        ops.Summation(keepdim=True)


def test_tuple_op_classes(device: nd.Device) -> None:
    a, b = tensors(device, (2, 3), (2, 3))
    pair = ops.MakeTensorTuple()(a, b)
    assert isinstance(pair, ndl.TensorTuple)
    assert isinstance(ops.MakeTensorTuple(), ndl.TensorTupleOp)
    assert ops.TupleGetItem(1)(pair) is b
    stacked = ops.Stack(1)(pair)
    np.testing.assert_array_equal(stacked.numpy(), np.stack([a.numpy(), b.numpy()], axis=1))
    np.testing.assert_array_equal(ops.Stack(1)(a, b).numpy(), stacked.numpy())
    parts = ops.Split(1)(stacked)
    assert isinstance(parts, ndl.TensorTuple)
    assert len(parts) == 2
    np.testing.assert_array_equal(parts[1].numpy(), b.numpy())
    sums = ops.FusedAddScalars(1.0, -1.0)(a)
    np.testing.assert_allclose(sums[0].numpy(), a.numpy() + 1, rtol=1e-6)
    np.testing.assert_allclose(sums[1].numpy(), a.numpy() - 1, rtol=1e-6)
    (sums[0] * sums[1]).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 2 * a.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ops.fused_add_scalars(a, 1.0, -1.0)[0].numpy(), sums[0].numpy())
    with pytest.raises(NotImplementedError, match="TensorTuple"):
        ndl.TensorTupleOp()(a)


def test_op_classes_are_exported_like_the_course() -> None:
    assert ndl.ops.EWiseAdd is ndl.EWiseAdd
    assert "PowerScalar" in ndl.ops.__all__


def test_backend_selection() -> None:
    from needle import backend_selection

    assert backend_selection.BACKEND == "nd"
    assert backend_selection.array_api is nd
    assert backend_selection.NDArray is nd.NDArray
    assert backend_selection.Device is nd.Device
    assert backend_selection.default_device() == ndl.default_device()
    assert backend_selection.cpu() == ndl.cpu()
    assert isinstance(backend_selection.array_api.array(np.ones(2)), backend_selection.NDArray)


def test_autograd_names_of_the_course() -> None:
    assert ndl.autograd.LAZY_MODE is False
    assert ndl.autograd.array_api is nd
    assert ndl.autograd.Value is ndl.Tensor
    a = ndl.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    b = ops.exp(a)
    c = a * b + b
    order: list[ndl.Tensor] = []
    visited: set[ndl.Tensor] = set()
    ndl.autograd.topo_sort_dfs(c, visited, order)
    ids = [id(t) for t in order]  # by identity: Tensor's == is element-wise
    assert ids == [id(t) for t in ndl.autograd.find_topo_sort([c])]
    assert order[-1] is c
    assert ids.index(id(a)) < ids.index(id(b))
    assert len(visited) == len(order)
    total = ndl.autograd.sum_node_list([a, b, c])
    np.testing.assert_allclose(total.numpy(), a.numpy() + b.numpy() + c.numpy(), rtol=1e-6)
