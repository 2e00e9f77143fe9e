"""Gradients of every differentiable op against central finite differences in float64, on both devices, and
second derivatives of a few (create_graph)."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import pytest
from tensor_helpers import gradient_check, numerical_gradient, relative_error

import needle as ndl
from needle import backend_ndarray as nd
from needle import ops

Case = tuple[Callable[..., ndl.Tensor], list[tuple[int, ...]], str]


def positive(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


def away_from_zero(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Values with |x| >= 0.2 (kinks of relu/abs are far from the finite-difference steps)."""
    return rng.uniform(0.2, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Well-separated values (no ties, so max/min/maximum are differentiable there)."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.37 - n * 0.15).reshape(shape)


def normal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(shape)


CASES: dict[str, tuple[Callable[..., ndl.Tensor], list[tuple[int, ...]], Callable[..., np.ndarray]]] = {
    # element-wise (binary ones broadcast, so the gradient is summed back)
    "add": (ops.add, [(2, 3), (3,)], normal),
    "sub": (ops.sub, [(2, 1), (1, 3)], normal),
    "multiply": (ops.multiply, [(2, 3), (2, 1)], normal),
    "divide": (ops.divide, [(2, 3), (3,)], positive),
    "power": (ops.power, [(2, 3), (2, 3)], positive),
    "maximum": (ops.maximum, [(2, 3), (3,)], distinct),
    "minimum": (ops.minimum, [(3,), (2, 3)], distinct),
    "add_scalar": (lambda a: ops.add_scalar(a, 2.0), [(2, 3)], normal),
    "mul_scalar": (lambda a: ops.mul_scalar(a, -1.5), [(2, 3)], normal),
    "divide_scalar": (lambda a: ops.divide_scalar(a, 3.0), [(2, 3)], normal),
    "power_scalar": (lambda a: ops.power_scalar(a, 3), [(2, 3)], normal),
    "rpower_scalar": (lambda a: ops.rpower_scalar(1.7, a), [(2, 3)], normal),
    "rdivide_scalar": (lambda a: ops.rdivide_scalar(2.0, a), [(2, 3)], positive),
    "negate": (ops.negate, [(2, 3)], normal),
    "exp": (ops.exp, [(2, 3)], normal),
    "log": (ops.log, [(2, 3)], positive),
    "sqrt": (ops.sqrt, [(2, 3)], positive),
    "abs": (ops.abs, [(2, 3)], away_from_zero),
    "relu": (ops.relu, [(2, 3)], away_from_zero),
    "leaky_relu": (lambda a: ops.leaky_relu(a, 0.2), [(2, 3)], away_from_zero),
    "tanh": (ops.tanh, [(2, 3)], normal),
    "sigmoid": (ops.sigmoid, [(2, 3)], normal),
    "gelu": (ops.gelu, [(2, 3)], normal),
    "gelu_grad": (ops.gelu_grad, [(2, 3)], normal),
    "erf": (ops.erf, [(2, 3)], normal),
    "silu": (ops.silu, [(2, 3)], normal),
    "where": (lambda a, b: ops.where(ops.gt(a, 0.0), a, b), [(2, 3), (3,)], away_from_zero),
    # shapes
    "reshape": (lambda a: ops.reshape(a, (3, 2)), [(2, 3)], normal),
    "broadcast_to": (lambda a: ops.broadcast_to(a, (2, 3, 4)), [(3, 1)], normal),
    "sum_to_shape": (lambda a: ops.sum_to_shape(a, (1, 3)), [(2, 3)], normal),
    "transpose": (ops.transpose, [(2, 3, 4)], normal),
    "transpose_axes": (lambda a: ops.transpose(a, (0, 2)), [(2, 3, 4)], normal),
    "permute": (lambda a: ops.permute(a, (2, 0, 1)), [(2, 3, 2)], normal),
    "squeeze": (lambda a: ops.squeeze(a, 1), [(2, 1, 3)], normal),
    "unsqueeze": (lambda a: ops.unsqueeze(a, 1), [(2, 3)], normal),
    "flip": (lambda a: ops.flip(a, (0, 1)), [(2, 3)], normal),
    "pad": (lambda a: ops.pad(a, [(1, 0), (0, 2)], 1.5), [(2, 3)], normal),
    "getitem": (lambda a: ops.getitem(a, (slice(None, None, -2), None, slice(1, 3))), [(3, 4)], normal),
    "getitem_int": (lambda a: a[1, ::2], [(3, 4)], normal),
    "concat": (lambda a, b: ops.concat([a, b], 1), [(2, 1), (2, 3)], normal),
    "stack": (lambda a, b: ops.stack([a, b], 1), [(2, 3), (2, 3)], normal),
    "split": (lambda a: ops.split(a, 1)[0] * ops.split(a, 1)[2], [(2, 3)], normal),
    "split_every_piece": (lambda a: ops.stack(list(reversed(ops.split(a, 2))), 0) * a[..., 0], [(2, 3, 4)], normal),
    "dilate": (lambda a: ops.dilate(a, (0, 1), 1), [(2, 3)], normal),
    "undilate": (lambda a: ops.undilate(a, (1,), 1), [(2, 5)], normal),
    # reductions
    "summation": (lambda a: ops.summation(a, 1), [(2, 3, 2)], normal),
    "summation_all": (ops.summation, [(2, 3)], normal),
    "summation_keepdims": (lambda a: ops.summation(a, (0, 2), keepdims=True), [(2, 3, 2)], normal),
    "mean": (lambda a: ops.mean(a, (0, 2)), [(2, 3, 2)], normal),
    "max": (lambda a: ops.max(a, 1), [(2, 4)], distinct),
    "max_all": (ops.max, [(2, 4)], distinct),
    "min": (lambda a: ops.min(a, 0, keepdims=True), [(3, 2)], distinct),
    "logsumexp": (lambda a: ops.logsumexp(a, 1), [(2, 4)], normal),
    "logsumexp_all": (ops.logsumexp, [(2, 3)], normal),
    "logsumexp_axes": (lambda a: ops.logsumexp(a, (0, 2), keepdims=True), [(2, 2, 3)], normal),
    # linear algebra
    "matmul": (ops.matmul, [(2, 3), (3, 2)], normal),
    "matmul_batched": (ops.matmul, [(2, 2, 3), (3, 2)], normal),
    "matmul_broadcast_batch": (ops.matmul, [(1, 2, 3), (2, 3, 2)], normal),
    "matmul_vector": (ops.matmul, [(3,), (3, 2)], normal),
    "matmul_sequence": (ops.matmul, [(2, 3, 2, 3), (3, 4)], normal),
    "matmul_sequence_vector": (ops.matmul, [(2, 2, 3), (3,)], normal),
    # indexing
    "gather": (
        lambda a: ops.gather(a, 1, ndl.Tensor(np.array([[0, 2, 2], [1, 0, 1]]), device=a.device)),
        [(2, 3)],
        normal,
    ),
    "embedding": (
        lambda w: ops.embedding(ndl.Tensor(np.array([[0, 2], [2, 1]]), device=w.device), w),
        [(3, 2)],
        normal,
    ),
    # neural-network functions
    "logsoftmax": (ops.logsoftmax, [(2, 4)], normal),
    "logsoftmax_axis0": (lambda a: ops.logsoftmax(a, 0), [(3, 2)], normal),
    "softmax": (ops.softmax, [(2, 4)], normal),
    "cross_entropy": (
        lambda a: ops.cross_entropy(a, ndl.Tensor(np.array([1, 0, 3]), device=a.device)),
        [(3, 4)],
        normal,
    ),
    "mse_loss": (ops.mse_loss, [(2, 3), (2, 3)], normal),
    "layer_norm": (ops.layer_norm, [(2, 4), (4,), (4,)], normal),
    "linear": (ops.linear, [(3, 4), (4, 2), (2,)], normal),
    "linear_sequence": (ops.linear, [(2, 3, 4), (4, 2), (1, 2)], normal),
    "layer_norm_plain": (ops.layer_norm, [(3, 4)], normal),
    "rms_norm": (lambda x, w: ops.rms_norm(x, w, 1e-3), [(2, 4), (4,)], normal),
    "rms_norm_plain": (ops.rms_norm, [(3, 5)], normal),
    "batch_norm": (lambda x, w, b: ops.batch_norm(x, w, b, training=True), [(4, 2, 2), (2,), (2,)], normal),
    "attention": (ops.scaled_dot_product_attention, [(2, 3, 2), (2, 3, 2), (2, 3, 2)], normal),
    "attention_causal": (
        lambda q, k, v: ops.scaled_dot_product_attention(q, k, v, causal=True),
        [(3, 2), (3, 2), (3, 2)],
        normal,
    ),
    "max_pool2d": (lambda a: ops.max_pool2d(a, 2), [(1, 2, 4, 4)], distinct),
    "max_pool2d_padded": (lambda a: ops.max_pool2d(a, 3, 2, 1), [(1, 1, 5, 4)], distinct),
    "avg_pool2d": (lambda a: ops.avg_pool2d(a, 3, 1, 1), [(1, 2, 3, 4)], normal),
    "conv": (ops.conv, [(1, 4, 4, 2), (3, 3, 2, 2)], normal),
    "conv_stride_padding": (lambda a, b: ops.conv(a, b, stride=2, padding=1), [(1, 5, 4, 1), (3, 3, 1, 2)], normal),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient(name: str, device: nd.Device) -> None:
    fn, shapes, draw = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    arrays = [draw(shape, rng) for shape in shapes]
    gradient_check(fn, *arrays, device=device, rng=rng)


@pytest.mark.parametrize(
    "name",
    [
        "add",
        "multiply",
        "tanh",
        "matmul_batched",
        "matmul_sequence",
        "permute",
        "logsumexp",
        "getitem",
        "split_every_piece",
    ],
)
def test_gradient_of_non_contiguous_inputs(name: str, device: nd.Device) -> None:
    fn, shapes, draw = CASES[name]
    rng = np.random.default_rng(7)
    arrays = [draw(shape, rng) for shape in shapes]
    gradient_check(fn, *arrays, device=device, rng=rng, layout="permuted")
    gradient_check(fn, *arrays, device=device, rng=rng, layout="strided")


def test_astype_gradient_goes_back_to_the_input_dtype(device: nd.Device) -> None:
    x = ndl.Tensor(np.array([1.0, 2.0], "float32"), device=device)
    y = ops.astype(x, "float64") * ndl.Tensor(np.array([3.0, 4.0]), device=device)
    assert y.dtype == "float64"
    y.backward()
    assert x.grad is not None
    assert x.grad.dtype == "float32"
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])


def test_dropout_gradient_is_the_mask(device: nd.Device) -> None:
    a = ndl.Tensor(np.ones((20, 30)), device=device)
    ndl.manual_seed(11)
    out = ops.dropout(a, 0.4)
    out.backward()
    assert a.grad is not None
    np.testing.assert_allclose(a.grad.numpy(), out.numpy())


# ---- second derivatives ---------------------------------------------------------------------------


def double_backward_check(
    f: Callable[..., ndl.Tensor], arrays: list[np.ndarray], device: nd.Device, rng: np.random.Generator
) -> None:
    """The gradient of g(x) = sum(d sum(f(x) * w) / dx * v) (built with create_graph) against finite
    differences of g."""
    weights = rng.standard_normal(f(*[ndl.Tensor(a, device=device) for a in arrays]).shape)
    directions = [rng.standard_normal(a.shape) for a in arrays]

    def g(*tensors: ndl.Tensor) -> ndl.Tensor:
        out = f(*tensors)
        out.backward(ndl.Tensor(weights, device=device, requires_grad=False), create_graph=True)
        total = None
        for t, v in zip(tensors, directions, strict=True):
            assert t.grad is not None
            term = ops.summation(t.grad * ndl.Tensor(v, device=device, requires_grad=False))
            total = term if total is None else total + term
        assert total is not None
        return total

    tensors = [ndl.Tensor(a, device=device) for a in arrays]
    value = g(*tensors)
    assert value.requires_grad
    for t in tensors:
        t.grad = None
    value.backward()
    analytic = [t.grad.numpy() for t in tensors if t.grad is not None]
    assert len(analytic) == len(tensors)

    def g_value(*values: ndl.Tensor) -> ndl.Tensor:
        with ndl.enable_grad():
            leaves = [ndl.Tensor(v.numpy(), device=device) for v in values]
            return g(*leaves).detach()

    numeric = numerical_gradient(g_value, arrays, np.ones(()), device, 1e-5)
    for got, expected in zip(analytic, numeric, strict=True):
        assert relative_error(got, expected) < 1e-6, (got, expected)


@pytest.mark.parametrize(
    ("name", "fn", "shapes"),
    [
        ("tanh", ops.tanh, [(2, 3)]),
        ("sigmoid", ops.sigmoid, [(2, 3)]),
        ("erf", ops.erf, [(2, 3)]),
        ("gelu", ops.gelu, [(2, 3)]),
        ("silu", ops.silu, [(2, 3)]),
        ("rms_norm", lambda a: ops.rms_norm(a, None, 1e-3), [(2, 3)]),
        ("matmul", ops.matmul, [(2, 3), (3, 2)]),
        ("matmul_sequence", ops.matmul, [(2, 2, 3), (3, 2)]),
        ("linear", lambda x, w, b: ops.linear(x * x, w, b * b), [(2, 2, 3), (3, 2), (2,)]),
        ("layer_norm", lambda x, w, b: ops.layer_norm(x, w, b * b, 1e-3), [(2, 3), (3,), (3,)]),
        ("split", lambda a: ops.split(a, 0)[1] * ops.split(a, 0)[1], [(2, 3)]),
        ("logsumexp", lambda a: ops.logsumexp(a, 1), [(2, 3)]),
        ("sigmoid_times", lambda a, b: ops.sigmoid(a) * b, [(2, 2), (2, 2)]),
        ("logsoftmax", ops.logsoftmax, [(2, 3)]),
    ],
)
def test_double_backward(
    name: str, fn: Callable[..., ndl.Tensor], shapes: list[tuple[int, ...]], device: nd.Device
) -> None:
    rng = np.random.default_rng(5)
    double_backward_check(fn, [rng.standard_normal(s) for s in shapes], device, rng)


def test_second_derivative_of_tanh_by_hand(device: nd.Device) -> None:
    x = ndl.Tensor(np.array([0.3, -0.7]), device=device)
    y = ops.tanh(x)
    y.backward(create_graph=True)
    assert x.grad is not None
    first = x.grad
    np.testing.assert_allclose(first.numpy(), 1 - np.tanh([0.3, -0.7]) ** 2)
    x.grad = None
    first.backward()
    t = np.tanh([0.3, -0.7])
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), -2 * t * (1 - t**2))
