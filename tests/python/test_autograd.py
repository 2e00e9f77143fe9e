"""The backward pass from Python: seeds, errors, graph release, grad mode, accumulation, topological order."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import ops


def test_backward_without_out_grad_uses_ones(device: nd.Device) -> None:
    x = ndl.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), device=device)
    y = x * x  # not a scalar: Needle seeds with ones
    y.backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


def test_backward_with_out_grad(device: nd.Device) -> None:
    x = ndl.Tensor(np.array([1.0, 2.0]), device=device)
    y = x * 3
    y.backward(ndl.Tensor(np.array([1.0, -1.0]), device=device))
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), [3, -3])
    z = ndl.Tensor(np.array([1.0, 2.0]), device=device)
    (z * 2).backward(np.array([0.5, 1.0]))
    assert z.grad is not None
    np.testing.assert_allclose(z.grad.numpy(), [1, 2])


def test_out_grad_of_the_wrong_shape_raises(device: nd.Device) -> None:
    x = ndl.Tensor(np.ones((2, 3)), device=device)
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(ndl.Tensor(np.ones((3, 2)), device=device))


def test_backward_twice_mentions_retain_graph() -> None:
    x = ndl.Tensor([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_pass_that_accumulates() -> None:
    x = ndl.Tensor([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), [4, 8])


def test_backward_of_a_tensor_without_graph_raises() -> None:
    with pytest.raises(RuntimeError, match="does not require grad"):
        ndl.Tensor([1.0], requires_grad=False).backward()


def test_requires_grad_propagation() -> None:
    a = ndl.Tensor([1.0, 2.0])
    b = ndl.Tensor([3.0, 4.0], requires_grad=False)
    assert (a + b).requires_grad
    assert not (b * 2).requires_grad
    assert (b * 2).is_leaf
    c = a * b
    assert c.op is not None
    assert c.op.name == "multiply"
    assert c.inputs[0] is a
    assert c.inputs[1] is b
    assert not c.is_leaf
    assert not (a > b).requires_grad
    assert not ops.argmax(a).requires_grad


def test_no_grad_and_enable_grad() -> None:
    a = ndl.Tensor([1.0, 2.0])
    assert ndl.is_grad_enabled()
    with ndl.no_grad():
        assert not ndl.is_grad_enabled()
        b = a * 2
        with ndl.enable_grad():
            c = a * 2
        assert not ndl.is_grad_enabled()
    assert ndl.is_grad_enabled()
    assert not b.requires_grad
    assert b.is_leaf
    assert c.requires_grad

    @ndl.no_grad()
    def f(x: ndl.Tensor) -> ndl.Tensor:
        return x * 3

    assert not f(a).requires_grad
    assert ndl.is_grad_enabled()


def test_set_grad_enabled() -> None:
    a = ndl.Tensor([1.0])
    with ndl.set_grad_enabled(False):
        assert not (a * 2).requires_grad
    assert (a * 2).requires_grad
    ndl.set_grad_enabled(False)
    assert not ndl.is_grad_enabled()
    ndl.set_grad_enabled(True)
    assert ndl.is_grad_enabled()


def test_no_grad_restores_the_mode_after_an_exception() -> None:
    with pytest.raises(ZeroDivisionError), ndl.no_grad():
        raise ZeroDivisionError
    assert ndl.is_grad_enabled()


def test_grad_mode_is_per_thread() -> None:
    seen: list[bool] = []
    with ndl.no_grad():
        thread = threading.Thread(target=lambda: seen.append(ndl.is_grad_enabled()))
        thread.start()
        thread.join()
    assert seen == [True]


def test_gradient_of_a_reused_tensor_accumulates(device: nd.Device) -> None:
    x = ndl.Tensor(np.array([1.0, 2.0, 3.0]), device=device)
    y = x * x + x * 2 + ops.exp(x)
    y.backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 2 + np.exp(x.numpy()))


def test_gradients_accumulate_across_backward_calls() -> None:
    x = ndl.Tensor([1.0, 2.0])
    (x * 2).backward()
    (x * 3).backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), [5, 5])
    x.grad = None
    (x * 4).backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), [4, 4])


def test_gradient_of_broadcast_inputs_is_summed_back(device: nd.Device) -> None:
    a = ndl.Tensor(np.ones((2, 3)), device=device)
    b = ndl.Tensor(np.array([1.0, 2.0, 3.0]), device=device)
    c = ndl.Tensor(np.array([[2.0], [5.0]]), device=device)
    ((a * b) + c).backward()
    assert a.grad is not None
    assert b.grad is not None
    assert c.grad is not None
    np.testing.assert_allclose(a.grad.numpy(), np.broadcast_to([1.0, 2.0, 3.0], (2, 3)))
    np.testing.assert_allclose(b.grad.numpy(), [2, 2, 2])
    np.testing.assert_allclose(c.grad.numpy(), [[3], [3]])


def test_gradients_through_slices(device: nd.Device) -> None:
    x = ndl.Tensor(np.arange(12.0).reshape(3, 4), device=device)
    y = x[1:, ::2] * 2 + x[0].reshape((1, 4))[:, 1:3] + x[-1, -1]
    y.sum().backward()
    expected = np.zeros((3, 4))
    expected[1:, ::2] += 2
    expected[0, 1:3] += 2
    expected[-1, -1] += 4
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), expected)


def test_gradient_flows_through_split_and_stack(device: nd.Device) -> None:
    x = ndl.Tensor(np.arange(6.0).reshape(2, 3), device=device)
    parts = ops.split(x, 1)
    y = ops.stack([parts[2], parts[0]], 0) * ndl.Tensor(np.array([[1.0], [10.0]]), device=device)
    y.backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), [[10, 0, 1], [10, 0, 1]])
    t = ndl.TensorTuple([x, x])
    s = (t + t)[0]
    np.testing.assert_allclose(s.numpy(), 2 * x.numpy())


def test_split_gradient_is_laid_out_like_its_input(device: nd.Device) -> None:
    # q, k, v = qkv.permute(...): the stacked gradient of the pieces keeps the input's memory order, so the
    # permute and reshape that made the input take it back as views.
    values = np.arange(60.0).reshape(4, 5, 3)
    x = ndl.Tensor.make_const(nd.NDArray(values, device=device).permute((2, 0, 1)), requires_grad=True)
    first, second, third = ops.split(x, 0)
    (first * 1 + second * 2 + third * 3 + first * second).sum().backward()
    assert x.grad is not None
    assert x.grad.cached_data.strides == x.cached_data.strides
    v = np.transpose(values, (2, 0, 1))
    expected = np.stack([1 + v[1], 2 + v[0], np.full((4, 5), 3.0)])
    np.testing.assert_allclose(x.grad.numpy(), expected)


def test_int_inputs_get_no_gradient(device: nd.Device) -> None:
    w = ndl.Tensor(np.ones((3, 2)), device=device)
    idx = ndl.Tensor(np.array([0, 2, 2]), device=device)
    ops.embedding(idx, w).backward()
    assert idx.grad is None
    assert w.grad is not None
    np.testing.assert_allclose(w.grad.numpy(), [[1, 1], [0, 0], [2, 2]])


def test_graph_is_released_after_backward() -> None:
    x = ndl.Tensor([1.0])
    y = x * 2
    z = y + 1
    assert z.op is not None
    z.backward()
    assert z.op is None
    assert z.inputs == []
    assert x.grad is not None


def test_find_topo_sort_orders_inputs_first() -> None:
    a = ndl.Tensor([1.0])
    b = ndl.Tensor([2.0])
    c = a * b
    d = c + a
    e = ops.exp(d) * c
    order = ndl.autograd.find_topo_sort([e])
    position = {id(t): i for i, t in enumerate(order)}
    assert len(order) == 6
    assert order[-1] is e
    for node in order:
        for inp in node.inputs:
            assert position[id(inp)] < position[id(node)]
    assert {id(a), id(b), id(c), id(d), id(e)} <= set(position)
    leaf_order = ndl.autograd.find_topo_sort([a])
    assert len(leaf_order) == 1
    assert leaf_order[0] is a


def test_create_graph_gives_differentiable_gradients() -> None:
    x = ndl.Tensor(np.array([1.0, 2.0]))
    y = (x**3).sum()
    y.backward(create_graph=True)
    assert x.grad is not None
    g = x.grad
    assert g.requires_grad
    np.testing.assert_allclose(g.numpy(), [3, 12])
    x.grad = None
    g.sum().backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), [6, 12])
    x.grad = None  # breaks the reference cycle x -> x.grad -> graph -> x


def test_compute_gradient_of_variables() -> None:
    x = ndl.Tensor([1.0, 2.0])
    ndl.autograd.compute_gradient_of_variables((x * x).sum(), ndl.Tensor(2.0))
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), [4, 8])


def test_value_is_tensor() -> None:
    assert ndl.autograd.Value is ndl.Tensor
    assert ndl.autograd.Tensor is ndl.Tensor


def test_mlp_gradient_matches_finite_differences(device: nd.Device) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3))
    w1 = rng.standard_normal((3, 5))
    w2 = rng.standard_normal((5, 2))
    labels = np.array([0, 1, 1, 0])

    def loss(w1v: np.ndarray, w2v: np.ndarray) -> tuple[float, ndl.Tensor, ndl.Tensor]:
        a = ndl.Tensor(w1v, device=device)
        b = ndl.Tensor(w2v, device=device)
        h = ops.relu(ndl.Tensor(x, device=device, requires_grad=False) @ a)
        out = ops.cross_entropy(h @ b, ndl.Tensor(labels, device=device))
        out.backward()
        return out.item(), a, b

    _, a, _ = loss(w1, w2)
    assert a.grad is not None
    eps = 1e-6
    bump = np.zeros_like(w1)
    bump[1, 2] = eps
    numeric = (loss(w1 + bump, w2)[0] - loss(w1 - bump, w2)[0]) / (2 * eps)
    np.testing.assert_allclose(a.grad.numpy()[1, 2], numeric, rtol=1e-6, atol=1e-9)


def test_live_tensor_count_returns_to_its_start() -> None:
    import gc

    gc.collect()
    before = ndl.autograd.TENSOR_COUNTER
    x = ndl.Tensor(np.ones((3, 3)), requires_grad=True)
    (x * x).sum().backward()
    assert ndl.autograd.live_tensor_count() > before
    del x
    gc.collect()
    assert before == ndl.autograd.TENSOR_COUNTER


def test_to_moves_a_computed_tensor_differentiably() -> None:
    x = ndl.Tensor(np.array([1.0, 2.0]), device=ndl.cpu(), requires_grad=True)
    y = (x * x).to(ndl.ref())
    assert y.device == ndl.ref()
    y.sum().backward()
    assert x.grad is not None
    assert x.grad.device == ndl.cpu()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
