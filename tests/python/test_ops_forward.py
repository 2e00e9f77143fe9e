"""needle.ops forward results against NumPy on both devices: broadcasting, non-contiguous inputs, batches."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from tensor_helpers import as_tensor, check, random_tensor

import needle as ndl
from needle import backend_ndarray as nd
from needle import ops

LAYOUTS = ["contiguous", "permuted", "strided"]
erf = np.vectorize(math.erf)


def np_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_logsumexp(x: np.ndarray, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    out = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


# ---- element-wise ---------------------------------------------------------------------------------

UNARY: dict[str, tuple[Callable[[ndl.Tensor], ndl.Tensor], Callable[[np.ndarray], np.ndarray], str]] = {
    "negate": (ops.negate, np.negative, "any"),
    "exp": (ops.exp, np.exp, "any"),
    "log": (ops.log, np.log, "positive"),
    "sqrt": (ops.sqrt, np.sqrt, "positive"),
    "abs": (ops.abs, np.abs, "any"),
    "relu": (ops.relu, lambda x: np.maximum(x, 0), "any"),
    "tanh": (ops.tanh, np.tanh, "any"),
    "sigmoid": (ops.sigmoid, lambda x: 1 / (1 + np.exp(-x)), "any"),
    "gelu": (ops.gelu, lambda x: x * 0.5 * (1 + erf(x / np.sqrt(2))), "any"),
    "gelu_grad": (
        ops.gelu_grad,
        lambda x: 0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi),
        "any",
    ),
    "erf": (ops.erf, erf, "any"),
    "silu": (ops.silu, lambda x: x / (1 + np.exp(-x)), "any"),
    "leaky_relu": (lambda a: ops.leaky_relu(a, 0.1), lambda x: np.where(x > 0, x, 0.1 * x), "any"),
    "add_scalar": (lambda a: ops.add_scalar(a, 1.5), lambda x: x + 1.5, "any"),
    "mul_scalar": (lambda a: ops.mul_scalar(a, -2.5), lambda x: x * -2.5, "any"),
    "divide_scalar": (lambda a: ops.divide_scalar(a, 4.0), lambda x: x / 4.0, "any"),
    "power_scalar": (lambda a: ops.power_scalar(a, 3), lambda x: x**3, "any"),
    "power_scalar_frac": (lambda a: ops.power_scalar(a, 0.5), lambda x: x**0.5, "positive"),
    "rpower_scalar": (lambda a: ops.rpower_scalar(2.0, a), lambda x: 2.0**x, "any"),
    "rdivide_scalar": (lambda a: ops.rdivide_scalar(3.0, a), lambda x: 3.0 / x, "positive"),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name: str, layout: str, device: nd.Device, rng: np.random.Generator) -> None:
    fn, ref, kind = UNARY[name]
    for dtype in ["float32", "float64"]:
        x, t = random_tensor((3, 4, 2), rng, device, dtype, layout, kind)
        check(fn(t), ref(x).astype(dtype), rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)


BINARY: dict[str, tuple[Callable[[ndl.Tensor, ndl.Tensor], ndl.Tensor], Callable[..., np.ndarray], str]] = {
    "add": (ops.add, np.add, "any"),
    "sub": (ops.sub, np.subtract, "any"),
    "multiply": (ops.multiply, np.multiply, "any"),
    "divide": (ops.divide, np.divide, "positive"),
    "power": (ops.power, np.power, "positive"),
    "maximum": (ops.maximum, np.maximum, "any"),
    "minimum": (ops.minimum, np.minimum, "any"),
}
BROADCAST_SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((2, 1, 4), (3, 1)), ((), (2, 3))]


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcasting(
    name: str, shapes: tuple[tuple[int, ...], tuple[int, ...]], device: nd.Device, rng: np.random.Generator
) -> None:
    fn, ref, kind = BINARY[name]
    x, a = random_tensor(shapes[0], rng, device, "float64", "permuted", kind)
    y, b = random_tensor(shapes[1], rng, device, "float64", "strided", kind)
    check(fn(a, b), ref(x, y))


def test_operators_match_ops(device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor((2, 3), rng, device, "float64", kind="positive")
    y, b = random_tensor((3,), rng, device, "float64", kind="positive")
    check(a + b, x + y)
    check(a - b, x - y)
    check(a * b, x * y)
    check(a / b, x / y)
    check(a**b, x**y)
    check(-a, -x)
    check(a + 2, x + 2)
    check(2 + a, 2 + x)
    check(a - 2, x - 2)
    check(2 - a, 2 - x)
    check(a * 3, x * 3)
    check(3 * a, 3 * x)
    check(a / 4, x / 4)
    check(4 / a, 4 / x)
    check(a**2, x**2)
    check(2**a, 2**x)
    check(a @ b, x @ y)
    check(abs(-a), x)


@pytest.mark.parametrize(
    ("name", "ref"),
    [
        ("eq", np.equal),
        ("ne", np.not_equal),
        ("lt", np.less),
        ("le", np.less_equal),
        ("gt", np.greater),
        ("ge", np.greater_equal),
    ],
)
def test_comparisons(name: str, ref: Callable[..., np.ndarray], device: nd.Device, rng: np.random.Generator) -> None:
    x = rng.integers(0, 3, (3, 4)).astype("float32")
    y = rng.integers(0, 3, (4,)).astype("float32")
    a = ndl.Tensor(x, device=device)
    b = ndl.Tensor(y, device=device)
    fn = getattr(ops, name)
    out = fn(a, b)
    check(out, ref(x, y))
    assert not out.requires_grad
    check(fn(a, 1.0), ref(x, 1.0))
    check(fn(1, b), ref(1, y))
    dunder = {"eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__", "ge": "__ge__"}[name]
    check(getattr(a, dunder)(b), ref(x, y))
    check(getattr(a, dunder)(1), ref(x, 1))


def test_where_and_scalars(device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor((3, 4), rng, device, "float64")
    y, b = random_tensor((4,), rng, device, "float64")
    cond = ndl.Tensor(x > 0, device=device)
    check(ops.where(cond, a, b), np.where(x > 0, x, y))
    check(ops.where(cond, a, 0.0), np.where(x > 0, x, 0.0))
    check(ops.where(cond, -1.0, b), np.where(x > 0, -1.0, y))
    check(ops.maximum(a, 0.0), np.maximum(x, 0.0))
    check(ops.minimum(0.5, a), np.minimum(0.5, x))


def test_int_inputs_are_promoted(device: nd.Device) -> None:
    t = ndl.Tensor([1, 2, 4], device=device)
    assert t.dtype == "int64"
    check(ops.log(t), np.log([1.0, 2.0, 4.0]).astype("float32"))
    check(ops.sqrt(t), np.sqrt([1.0, 2.0, 4.0]).astype("float32"))
    check(t / 2, np.array([0.5, 1.0, 2.0], "float32"))
    check(t + 1, np.array([2, 3, 5]))
    check(ops.astype(t, "float64"), np.array([1.0, 2.0, 4.0]))


# ---- shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_shape_ops(layout: str, device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor((2, 3, 4), rng, device, "float32", layout)
    check(ops.reshape(a, (4, 6)), x.reshape(4, 6))
    check(ops.reshape(a, (-1, 2)), x.reshape(-1, 2))
    check(ops.transpose(a), np.swapaxes(x, 1, 2))
    check(ops.transpose(a, (0, 2)), np.swapaxes(x, 0, 2))
    check(ops.permute(a, (2, 0, 1)), np.transpose(x, (2, 0, 1)))
    check(ops.broadcast_to(ops.reshape(a, (2, 1, 3, 4)), (2, 5, 3, 4)), np.broadcast_to(x[:, None], (2, 5, 3, 4)))
    check(ops.unsqueeze(a, 1), x[:, None])
    check(ops.squeeze(ops.unsqueeze(a, 0)), x)
    check(ops.squeeze(ops.reshape(a, (2, 1, 3, 4)), 1), x)
    check(ops.flip(a, (0, 2)), np.flip(x, (0, 2)))
    check(ops.flip(a), np.flip(x))
    check(ops.pad(a, [(0, 0), (1, 2), (0, 1)]), np.pad(x, [(0, 0), (1, 2), (0, 1)]))
    check(ops.pad(a, [(1, 0), (0, 0), (0, 0)], value=2.0), np.pad(x, [(1, 0), (0, 0), (0, 0)], constant_values=2.0))
    check(ops.sum_to_shape(a, (3, 1)), x.sum(axis=(0, 2)).reshape(3, 1))


def test_getitem(device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor((4, 5, 6), rng, device, "float32", "permuted")
    for key in [
        1,
        -1,
        (1, 2),
        slice(1, 3),
        (slice(None), slice(None, None, 2)),
        (Ellipsis, 1),
        (None, 2),
        (slice(None, None, -1), 0, slice(1, 5, 3)),
        (0, None, slice(2, None), Ellipsis),
    ]:
        check(ops.getitem(a, key), x[key])
        check(a[key], x[key])


def test_concat_stack_split(device: nd.Device, rng: np.random.Generator) -> None:
    xs = [rng.standard_normal((2, k, 3)).astype("float32") for k in (1, 2, 3)]
    ts = [as_tensor(x, device, "permuted") for x in xs]
    check(ops.concat(ts, axis=1), np.concatenate(xs, axis=1))
    check(ops.cat(ts, dim=1), np.concatenate(xs, axis=1))
    ys = [rng.standard_normal((2, 3)).astype("float32") for _ in range(4)]
    us = [ndl.Tensor(y, device=device) for y in ys]
    check(ops.stack(us, axis=0), np.stack(ys, axis=0))
    check(ops.stack(us, axis=2), np.stack(ys, axis=2))
    check(ops.stack(ops.make_tuple(*us), axis=1), np.stack(ys, axis=1))
    parts = ops.split(ops.stack(us, axis=1), axis=1)
    assert isinstance(parts, ndl.TensorTuple)
    assert len(parts) == 4
    for part, y in zip(parts, ys, strict=True):
        check(part, y)
    check(ops.tuple_get_item(parts, 2), ys[2])


def test_dilate_undilate(device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor((2, 3), rng, device, "float32")
    expected = np.zeros((2, 9), "float32")
    expected[:, ::3] = x
    check(ops.dilate(a, (1,), 2), expected)
    expected = np.zeros((4, 6), "float32")
    expected[::2, ::2] = x
    check(ops.dilate(a, (0, 1), 1), expected)
    check(ops.undilate(ops.dilate(a, (0, 1), 1), (0, 1), 1), x)


# ---- reductions -----------------------------------------------------------------------------------

AXES = [None, 0, 1, (0, 2), (-1,), ()]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axes", AXES, ids=str)
def test_reductions(
    axes: int | tuple[int, ...] | None, keepdims: bool, device: nd.Device, rng: np.random.Generator
) -> None:
    x, a = random_tensor((3, 4, 5), rng, device, "float64", "strided")
    check(ops.summation(a, axes, keepdims), np.sum(x, axis=axes, keepdims=keepdims))
    check(ops.mean(a, axes, keepdims), np.mean(x, axis=axes, keepdims=keepdims))
    check(ops.max(a, axes, keepdims), np.max(x, axis=axes, keepdims=keepdims))
    check(ops.min(a, axes, keepdims), np.min(x, axis=axes, keepdims=keepdims))
    if axes != ():
        check(ops.logsumexp(a, axes, keepdims), np_logsumexp(x, axes, keepdims))
    check(a.sum(axes, keepdims), np.sum(x, axis=axes, keepdims=keepdims))
    check(a.sum(dim=axes, keepdim=keepdims), np.sum(x, axis=axes, keepdims=keepdims))


def test_logsumexp_is_stable(device: nd.Device) -> None:
    a = ndl.Tensor([[1000.0, 1000.0], [-1000.0, -1000.0]], device=device, dtype="float64")
    check(ops.logsumexp(a, axes=1), np.array([1000 + np.log(2), -1000 + np.log(2)]))


def test_argmax(device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor((3, 5), rng, device, "float32", "permuted")
    check(ops.argmax(a), np.argmax(x))
    check(ops.argmax(a, axis=1), np.argmax(x, axis=1))
    check(ops.argmax(a, axis=0, keepdims=True), np.argmax(x, axis=0, keepdims=True))
    check(a.argmax(dim=1), np.argmax(x, axis=1))
    assert not ops.argmax(ndl.Tensor(x, device=device, requires_grad=True)).requires_grad


# ---- linear algebra -------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 2)),
    ((1, 3, 4), (5, 4, 2)),
    ((4,), (4, 3)),
    ((3, 4), (4,)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(shapes: tuple[tuple[int, ...], tuple[int, ...]], device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor(shapes[0], rng, device, "float64", "permuted")
    y, b = random_tensor(shapes[1], rng, device, "float64", "strided")
    check(ops.matmul(a, b), x @ y)
    check(a @ b, x @ y)
    check(a.matmul(b), x @ y)


@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4), (4,), (0, 4)], ids=str)
@pytest.mark.parametrize("bias_shape", [(3,), (1, 3), None], ids=str)
def test_linear(
    x_shape: tuple[int, ...], bias_shape: tuple[int, ...] | None, device: nd.Device, rng: np.random.Generator
) -> None:
    x, a = random_tensor(x_shape, rng, device, "float32", "permuted")
    w, weight = random_tensor((4, 3), rng, device, "float32", "strided")
    if bias_shape is None:
        check(ops.linear(a, weight), x @ w)
        return
    b, bias = random_tensor(bias_shape, rng, device, "float32", "contiguous")
    check(ops.linear(a, weight, bias), x @ w + b)


# ---- indexing -------------------------------------------------------------------------------------


def test_gather_embedding_one_hot(device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor((3, 5), rng, device, "float32", "permuted")
    idx = rng.integers(0, 5, (3, 2))
    index = ndl.Tensor(idx, device=device)
    check(ops.gather(a, 1, index), np.take_along_axis(x, idx, axis=1))
    check(ops.take_along_axis(a, index, 1), np.take_along_axis(x, idx, axis=1))
    w, weight = random_tensor((6, 4), rng, device, "float32")
    ids = rng.integers(0, 6, (2, 3))
    check(ops.embedding(ndl.Tensor(ids, device=device), weight), w[ids])
    labels = np.array([0, 2, 1, 2])
    check(ops.one_hot(ndl.Tensor(labels, device=device), 3), np.eye(3, dtype="float32")[labels])
    check(ops.one_hot(ndl.Tensor(labels, device=device), 4, dtype="float64"), np.eye(4)[labels])


# ---- neural-network functions ---------------------------------------------------------------------


def test_softmax_family(device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor((3, 5), rng, device, "float64", "permuted")
    check(ops.softmax(a), np_softmax(x))
    check(ops.softmax(a, axis=0), np_softmax(x, axis=0))
    check(ops.logsoftmax(a), np.log(np_softmax(x)))
    check(ops.log_softmax(a, dim=0), np.log(np_softmax(x, axis=0)))
    check(a.softmax(0), np_softmax(x, axis=0))
    check(a.log_softmax(-1), np.log(np_softmax(x)))
    big = ndl.Tensor([[1000.0, 0.0]], device=device, dtype="float64")
    check(ops.logsoftmax(big), np.array([[0.0, -1000.0]]))


def test_losses(device: nd.Device, rng: np.random.Generator) -> None:
    x, logits = random_tensor((4, 3), rng, device, "float64", "strided")
    y = np.array([0, 2, 1, 2])
    expected = -np.mean(np.log(np_softmax(x))[np.arange(4), y])
    check(ops.cross_entropy(logits, ndl.Tensor(y, device=device)), np.array(expected))
    p, pred = random_tensor((4, 3), rng, device, "float64")
    check(ops.mse_loss(pred, logits), np.array(np.mean((p - x) ** 2)))


def test_layer_norm(device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor((2, 3, 5), rng, device, "float64", "permuted")
    w, weight = random_tensor((5,), rng, device, "float64")
    b, bias = random_tensor((5,), rng, device, "float64")
    normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    check(ops.layer_norm(a), normed)
    check(ops.layer_norm(a, weight, bias), normed * w + b)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_rms_norm(layout: str, device: nd.Device, rng: np.random.Generator) -> None:
    for dtype in ["float32", "float64"]:
        x, t = random_tensor((3, 4, 6), rng, device, dtype, layout, "any")
        w = rng.standard_normal(6).astype(dtype)
        eps = float(np.finfo(dtype).eps)  # PyTorch's default
        normed = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
        tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-12}
        check(ops.rms_norm(t), normed, **tol)
        check(
            ops.rms_norm(t, ndl.Tensor(w, device=device), eps=1e-2),
            x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-2) * w,
            **tol,
        )


def test_batch_norm(device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor((4, 3, 2), rng, device, "float64")
    w, weight = random_tensor((3,), rng, device, "float64")
    b, bias = random_tensor((3,), rng, device, "float64")
    running_mean = ndl.Tensor(np.zeros(3), device=device, requires_grad=False)
    running_var = ndl.Tensor(np.ones(3), device=device, requires_grad=False)
    mean = x.mean(axis=(0, 2))
    var = x.var(axis=(0, 2))
    normed = (x - mean[None, :, None]) / np.sqrt(var[None, :, None] + 1e-5)
    out = ops.batch_norm(a, weight, bias, running_mean, running_var, training=True, momentum=0.1)
    check(out, normed * w[None, :, None] + b[None, :, None])
    check(running_mean, 0.1 * mean)
    check(running_var, 0.9 + 0.1 * x.var(axis=(0, 2), ddof=1))
    out = ops.batch_norm(a, None, None, running_mean, running_var, training=False)
    expected = (x - running_mean.numpy()[None, :, None]) / np.sqrt(running_var.numpy()[None, :, None] + 1e-5)
    check(out, expected)


def test_dropout(device: nd.Device) -> None:
    a = ndl.Tensor(np.ones((40, 50)), device=device)
    ndl.manual_seed(3)
    out = ops.dropout(a, 0.25).numpy()
    kept = out != 0
    assert 0.65 < kept.mean() < 0.85
    np.testing.assert_allclose(out[kept], 1 / 0.75)
    ndl.manual_seed(3)
    np.testing.assert_array_equal(ops.dropout(a, 0.25).numpy(), out)
    check(ops.dropout(a, 0.25, training=False), np.ones((40, 50)))


@pytest.mark.parametrize("causal", [False, True])
def test_attention(causal: bool, device: nd.Device, rng: np.random.Generator) -> None:
    q_, q = random_tensor((2, 4, 3), rng, device, "float64")
    k_, k = random_tensor((2, 4, 3), rng, device, "float64", "permuted")
    v_, v = random_tensor((2, 4, 5), rng, device, "float64")
    scores = q_ @ np.swapaxes(k_, -1, -2) / np.sqrt(3)
    if causal:
        scores = np.where(np.tril(np.ones((4, 4), bool)), scores, -np.inf)
    check(ops.scaled_dot_product_attention(q, k, v, causal=causal), np_softmax(scores) @ v_)


def np_conv(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    x = np.pad(x, [(0, 0), (padding, padding), (padding, padding), (0, 0)])
    n, h, wd, _ = x.shape
    k = w.shape[0]
    oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    out = np.zeros((n, oh, ow, w.shape[3]))
    for i in range(oh):
        for j in range(ow):
            window = x[:, i * stride : i * stride + k, j * stride : j * stride + k, :]
            out[:, i, j, :] = np.einsum("nhwc,hwco->no", window, w)
    return out


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (1, 1), (2, 1), (2, 0)])
def test_conv(stride: int, padding: int, device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor((2, 5, 6, 3), rng, device, "float64", "permuted")
    w, b = random_tensor((3, 3, 3, 4), rng, device, "float64")
    check(ops.conv(a, b, stride=stride, padding=padding), np_conv(x, w, stride, padding))


def np_pool(x: np.ndarray, k: int, stride: int, padding: int, kind: str) -> np.ndarray:
    fill = -np.inf if kind == "max" else 0.0
    x = np.pad(x, [(0, 0), (0, 0), (padding, padding), (padding, padding)], constant_values=fill)
    oh = (x.shape[2] - k) // stride + 1
    ow = (x.shape[3] - k) // stride + 1
    out = np.zeros((*x.shape[:2], oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = x[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, :, i, j] = window.max(axis=(2, 3)) if kind == "max" else window.mean(axis=(2, 3))
    return out


@pytest.mark.parametrize(("k", "stride", "padding"), [(2, None, 0), (3, 1, 1), (3, 2, 1), (2, 1, 0)])
def test_pooling(k: int, stride: int | None, padding: int, device: nd.Device, rng: np.random.Generator) -> None:
    x, a = random_tensor((2, 3, 5, 6), rng, device, "float64", "permuted")
    s = k if stride is None else stride
    check(ops.max_pool2d(a, k, stride, padding), np_pool(x, k, s, padding, "max"))
    check(ops.avg_pool2d(a, k, stride, padding), np_pool(x, k, s, padding, "avg"))
