"""Ops defined in Python (needle.autograd.TensorOp) join the C++ graph; built-in ops expose Needle's Op API."""

from __future__ import annotations

import numpy as np
import pytest
from tensor_helpers import gradient_check

import needle as ndl
from needle import backend_ndarray as nd
from needle.autograd import TensorOp


class ScaledSquare(TensorOp):
    """scale * a**2, written the course's way: parameters set in __init__ without calling super()."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def compute(self, a: nd.NDArray) -> nd.NDArray:  # type: ignore[override]
        return a * a * self.scale

    def gradient(self, out_grad: ndl.Tensor, node: ndl.Tensor) -> ndl.Tensor:
        (a,) = node.inputs
        return out_grad * a * (2 * self.scale)


class MulAdd(TensorOp):
    """a * b + c, with a gradient for each input and None for c when asked."""

    def __init__(self, skip_c: bool = False) -> None:
        super().__init__()
        self.skip_c = skip_c

    def compute(self, a: nd.NDArray, b: nd.NDArray, c: nd.NDArray) -> nd.NDArray:  # type: ignore[override]
        return a * b + c

    def gradient(self, out_grad: ndl.Tensor, node: ndl.Tensor) -> tuple[ndl.Tensor | None, ...]:
        a, b, _ = node.inputs
        return out_grad * b, out_grad * a, None if self.skip_c else out_grad


def scaled_square(a: ndl.Tensor) -> ndl.Tensor:
    return ScaledSquare(1.5)(a)


def test_python_op_joins_the_graph(device: nd.Device) -> None:
    x = ndl.Tensor(np.array([1.0, -2.0, 3.0]), device=device)
    op = ScaledSquare(2.0)
    y = op(x)
    assert isinstance(y, ndl.Tensor)
    assert y.op is op
    assert y.inputs[0] is x
    assert y.requires_grad
    assert y.op.name == "ScaledSquare"
    assert "ScaledSquare" in repr(y)
    np.testing.assert_allclose(y.numpy(), 2 * x.numpy() ** 2)
    z = ndl.ops.exp(y * 0.1).sum()
    z.backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), np.exp(0.2 * x.numpy() ** 2) * 0.1 * 4 * x.numpy())


def test_python_op_gradient_against_finite_differences(device: nd.Device) -> None:
    rng = np.random.default_rng(0)
    gradient_check(scaled_square, rng.standard_normal((2, 3)), device=device)
    gradient_check(
        lambda a, b, c: MulAdd()(a, b, c) * a,
        rng.standard_normal((2, 3)),
        rng.standard_normal((2, 3)),
        rng.standard_normal((2, 3)),
        device=device,
    )


def test_gradient_check_catches_a_wrong_gradient(device: nd.Device) -> None:
    class Wrong(ScaledSquare):
        def gradient(self, out_grad: ndl.Tensor, node: ndl.Tensor) -> ndl.Tensor:
            return out_grad * node.inputs[0] * (2.01 * self.scale)

    with pytest.raises(AssertionError, match="relative error"):
        gradient_check(lambda a: Wrong(1.0)(a), np.array([1.0, 2.0]), device=device)


def test_none_gradient_means_no_gradient() -> None:
    a, b, c = (ndl.Tensor(np.full(2, v)) for v in (2.0, 3.0, 4.0))
    MulAdd(skip_c=True)(a, b, c).backward()
    assert a.grad is not None
    assert b.grad is not None
    np.testing.assert_allclose(a.grad.numpy(), [3, 3])
    np.testing.assert_allclose(b.grad.numpy(), [2, 2])
    assert c.grad is None


def test_gradient_as_tuple() -> None:
    x = ndl.Tensor(np.array([1.0, 2.0]))
    y = MulAdd()(x, x, x)
    grads = y.op.gradient_as_tuple(ndl.Tensor(np.ones(2)), y) if y.op is not None else ()
    assert len(grads) == 3
    s = ScaledSquare(1.0)(x)
    assert s.op is not None
    (g,) = s.op.gradient_as_tuple(ndl.Tensor(np.ones(2)), s)
    assert g is not None
    np.testing.assert_allclose(g.numpy(), [2, 4])


def test_builtin_ops_expose_needle_op_api(device: nd.Device) -> None:
    a = ndl.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), device=device)
    b = ndl.Tensor(np.array([[0.5, -1.0], [2.0, 1.0]]), device=device)
    out = a @ b
    op = out.op
    assert isinstance(op, ndl.autograd.Op)
    assert not isinstance(op, TensorOp)
    assert op.name == "matmul"
    assert "matmul" in repr(op)
    grads = op.gradient_as_tuple(ndl.Tensor(np.ones(out.shape), device=device), out)
    assert len(grads) == 2
    ga, gb = grads
    assert ga is not None
    assert gb is not None
    np.testing.assert_allclose(ga.numpy(), np.ones((2, 2)) @ b.numpy().T)
    np.testing.assert_allclose(gb.numpy(), a.numpy().T @ np.ones((2, 2)))
    single = (a * 2).op
    assert single is not None
    g = single.gradient(ndl.Tensor(np.ones((2, 2)), device=device), a * 2)
    assert isinstance(g, ndl.Tensor)
    np.testing.assert_allclose(g.numpy(), np.full((2, 2), 2.0))
    np.testing.assert_allclose(op.compute(a.cached_data, b.cached_data).numpy(), a.numpy() @ b.numpy())
    again = op(b, a)
    np.testing.assert_allclose(again.numpy(), b.numpy() @ a.numpy())
    assert again.op is not None
    assert again.op.name == "matmul"


def test_make_from_op_and_make_const() -> None:
    x = ndl.Tensor(np.array([1.0, 2.0]))
    y = ndl.Tensor.make_from_op(ScaledSquare(1.0), [x])
    np.testing.assert_allclose(y.numpy(), [1, 4])
    assert y.requires_grad
    with ndl.no_grad():
        z = ndl.Tensor.make_from_op(ScaledSquare(1.0), [x])
    assert not z.requires_grad
    assert z.op is None
    c = ndl.Tensor.make_const(x)
    assert not c.requires_grad
    assert c.cached_data.shares_memory(x.cached_data)
    with pytest.raises(TypeError, match="compute"):
        ndl.Tensor.make_from_op(object(), [x])  # type: ignore[arg-type]


def test_compute_may_return_numpy() -> None:
    class Twice(TensorOp):
        def compute(self, a: nd.NDArray) -> nd.NDArray:  # type: ignore[override]
            return a.numpy() * 2  # type: ignore[return-value]

        def gradient(self, out_grad: ndl.Tensor, node: ndl.Tensor) -> ndl.Tensor:
            return out_grad * 2

    x = ndl.Tensor(np.array([1.0, 2.0]), device=ndl.ref())
    y = Twice()(x)
    assert y.device == ndl.ref()
    np.testing.assert_allclose(y.numpy(), [2, 4])


def test_bad_gradients_raise() -> None:
    class TooMany(ScaledSquare):
        def gradient(self, out_grad: ndl.Tensor, node: ndl.Tensor) -> tuple[ndl.Tensor, ...]:  # type: ignore[override]
            return out_grad, out_grad

    class NotATensor(ScaledSquare):
        def gradient(self, out_grad: ndl.Tensor, node: ndl.Tensor) -> ndl.Tensor:
            return 3  # type: ignore[return-value]

    class WrongShape(ScaledSquare):
        def gradient(self, out_grad: ndl.Tensor, node: ndl.Tensor) -> ndl.Tensor:
            return out_grad.sum()

    class Raises(ScaledSquare):
        def gradient(self, out_grad: ndl.Tensor, node: ndl.Tensor) -> ndl.Tensor:
            raise KeyError("from python")

    x = ndl.Tensor(np.array([1.0, 2.0]))
    with pytest.raises(RuntimeError, match=r"TooMany.*2 gradients for 1 input"):
        TooMany(1.0)(x).backward()
    with pytest.raises(TypeError, match="NotATensor"):
        NotATensor(1.0)(x).backward()
    with pytest.raises(RuntimeError, match=r"WrongShape.*shape"):
        WrongShape(1.0)(x).backward()
    with pytest.raises(KeyError, match="from python"):
        Raises(1.0)(x).backward()


def test_unimplemented_methods_raise() -> None:
    class ForwardOnly(TensorOp):
        def compute(self, a: nd.NDArray) -> nd.NDArray:  # type: ignore[override]
            return a

    y = ForwardOnly()(ndl.Tensor(np.ones(2)))
    with pytest.raises(NotImplementedError, match=r"ForwardOnly\.gradient"):
        y.backward()
    with pytest.raises(NotImplementedError, match="compute"):
        TensorOp()(ndl.Tensor(np.ones(2)))


def test_double_backward_through_a_python_op() -> None:
    x = ndl.Tensor(np.array([1.0, 3.0]))
    y = ScaledSquare(1.0)(x).sum()
    y.backward(create_graph=True)
    assert x.grad is not None
    g = x.grad
    x.grad = None
    g.sum().backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), [2, 2])
    x.grad = None
