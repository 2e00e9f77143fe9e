"""The Tensor class: construction, attributes, NumPy interop, repr, data/detach, indexing, operators and the
methods that mirror ops (with PyTorch's spellings)."""

from __future__ import annotations

import numpy as np
import pytest
from tensor_helpers import check

import needle as ndl
from needle import backend_ndarray as nd

# ---- construction ---------------------------------------------------------------------------------


def test_from_numpy_keeps_dtype(device: nd.Device) -> None:
    for dtype in ["float32", "float64", "int32", "int64", "bool"]:
        x = np.arange(6).reshape(2, 3).astype(dtype)
        t = ndl.Tensor(x, device=device)
        assert t.dtype == dtype
        assert t.shape == (2, 3)
        assert t.device == device
        np.testing.assert_array_equal(t.numpy(), x)


@pytest.mark.usefixtures("course_dtypes")
def test_from_python_values() -> None:
    assert ndl.Tensor([[1.0, 2.0]]).dtype == "float32"
    assert ndl.Tensor([1, 2]).dtype == "int64"
    assert ndl.Tensor([True, False]).dtype == "bool"
    scalar = ndl.Tensor(2.5)
    assert scalar.shape == ()
    assert scalar.ndim == 0
    assert scalar.item() == 2.5
    assert ndl.Tensor([1, 2], dtype="float64").dtype == "float64"
    assert ndl.Tensor([1.0]).device == ndl.cpu()
    assert ndl.Tensor([1.0], device="ref").device == ndl.ref()


def test_requires_grad_defaults_to_true_for_floats() -> None:
    assert ndl.Tensor([1.0]).requires_grad
    assert not ndl.Tensor([1.0], requires_grad=False).requires_grad
    assert not ndl.Tensor([1, 2]).requires_grad
    with pytest.raises(TypeError, match="requires_grad"):
        ndl.Tensor([1, 2]).requires_grad = True


def test_from_ndarray_copies_and_from_tensor_shares(device: nd.Device) -> None:
    array = nd.NDArray(np.ones(3, "float32"), device=device)
    t = ndl.Tensor(array)
    assert t.device == device
    assert not t.cached_data.shares_memory(array)
    u = ndl.Tensor(t)
    assert u is not t
    assert u.cached_data.shares_memory(t.cached_data)
    assert u.is_leaf
    v = ndl.Tensor(t, dtype="float64")
    assert v.dtype == "float64"
    w = ndl.Tensor(t, device=ndl.ref() if device == ndl.cpu() else ndl.cpu())
    assert w.device != device
    np.testing.assert_array_equal(w.numpy(), [1, 1, 1])


def test_attributes(device: nd.Device) -> None:
    t = ndl.Tensor(np.zeros((2, 3, 4)), device=device)
    assert t.shape == (2, 3, 4)
    assert t.ndim == 3
    assert t.size == 24
    assert t.numel() == 24
    assert len(t) == 2
    assert t.dtype == "float64"
    assert t.op is None
    assert t.inputs == []
    assert t.is_leaf
    assert t.grad is None
    with pytest.raises(TypeError):
        len(ndl.Tensor(1.0))


def test_numpy_is_zero_copy_on_host(device: nd.Device) -> None:
    t = ndl.Tensor(np.arange(4.0), device=device)
    view = t.numpy()
    assert np.shares_memory(view, t.cached_data.numpy())
    view2 = np.asarray(t)
    np.testing.assert_array_equal(view2, [0, 1, 2, 3])
    np.testing.assert_allclose(t.realize_cached_data().numpy(), [0, 1, 2, 3])
    assert isinstance(t.cached_data, nd.NDArray)
    assert np.asarray(t, dtype="float32").dtype == np.float32


def test_item_and_conversions() -> None:
    t = ndl.Tensor([[3.5]])
    assert t.item() == 3.5
    assert float(t) == 3.5
    assert int(ndl.Tensor([7])) == 7
    assert bool(ndl.Tensor([1.0]))
    with pytest.raises(ValueError, match="one element"):
        ndl.Tensor([1.0, 2.0]).item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(ndl.Tensor([1.0, 2.0]))


@pytest.mark.usefixtures("course_dtypes")
def test_repr_shows_values_shape_dtype_device() -> None:
    t = ndl.Tensor([[1.0, 2.0]], device=ndl.ref())
    text = repr(t)
    assert text.startswith("Tensor([[1., 2.]]")
    assert "shape=(1, 2)" in text
    assert "dtype=float32" in text
    assert "device=ref()" in text
    assert "requires_grad=True" in text
    assert "op=add_scalar" in repr(t + 1)
    assert "requires_grad" not in repr(ndl.Tensor([1, 2]))
    assert str(t) == repr(t)


def test_to_and_astype(device: nd.Device) -> None:
    t = ndl.Tensor([1.0, 2.0], device=device)
    assert t.to(device) is t
    other = ndl.ref() if device == ndl.cpu() else ndl.cpu()
    moved = t.to(other)
    assert moved.device == other
    assert moved.requires_grad
    np.testing.assert_array_equal(moved.numpy(), [1, 2])
    assert t.to(other.name).device == other
    assert t.astype("float64").dtype == "float64"


def test_mixing_devices_raises_naming_the_op() -> None:
    a = ndl.Tensor([1.0, 2.0], device=ndl.cpu())
    b = ndl.Tensor([1.0, 2.0], device=ndl.ref())
    with pytest.raises(RuntimeError, match="add"):
        a + b
    with pytest.raises(RuntimeError, match=r"multiply|mul"):
        a * b
    with pytest.raises(RuntimeError, match="matmul"):
        ndl.Tensor(np.ones((2, 2))) @ ndl.Tensor(np.ones((2, 2)), device=ndl.ref())


# ---- data, detach, grad ---------------------------------------------------------------------------


def test_data_is_detached_and_shares_storage(device: nd.Device) -> None:
    w = ndl.Tensor([1.0, 2.0], device=device)
    d = w.data
    assert not d.requires_grad
    assert d.is_leaf
    assert d.cached_data.shares_memory(w.cached_data)
    y = (w * 2).data
    assert y.op is None


@pytest.mark.usefixtures("course_dtypes")
def test_data_setter_replaces_values_outside_the_graph(device: nd.Device) -> None:
    w = ndl.Tensor([1.0, 2.0], device=device)
    w.data = w.data - ndl.Tensor([0.5, 0.5], device=device)
    np.testing.assert_allclose(w.numpy(), [0.5, 1.5])
    assert w.is_leaf
    assert w.requires_grad
    w.data = nd.NDArray(np.array([3.0, 4.0], "float32"), device=device)
    np.testing.assert_allclose(w.numpy(), [3, 4])
    w.data = np.array([5.0, 6.0])
    assert w.dtype == "float32"
    np.testing.assert_allclose(w.numpy(), [5, 6])
    with pytest.raises(TypeError):
        w.cached_data = nd.NDArray(np.array([1.0, 2.0]), device=device, dtype="float64")
    with pytest.raises(TypeError, match="float64"):
        w.data = ndl.Tensor(np.array([1.0, 2.0]), device=device, dtype="float64")
    w.data = ndl.Tensor(np.zeros((2, 2), "float32"), device=device)
    assert w.shape == (2, 2)


def test_detach(device: nd.Device) -> None:
    a = ndl.Tensor([1.0, 2.0], device=device)
    b = (a * 3).detach()
    assert b.is_leaf
    assert not b.requires_grad
    c = b * a
    c.backward()
    assert a.grad is not None
    np.testing.assert_allclose(a.grad.numpy(), [3, 6])
    assert b.grad is None


def test_grad_setter(device: nd.Device) -> None:
    a = ndl.Tensor([1.0, 2.0], device=device)
    a.grad = ndl.Tensor([5.0, 6.0], device=device)
    assert a.grad is not None
    np.testing.assert_allclose(a.grad.numpy(), [5, 6])
    a.grad = None
    assert a.grad is None
    with pytest.raises(ValueError, match="shape"):
        a.grad = ndl.Tensor([1.0], device=device)


def test_requires_grad_setter() -> None:
    a = ndl.Tensor([1.0], requires_grad=False)
    assert not (a * 2).requires_grad
    a.requires_grad = True
    assert (a * 2).requires_grad
    assert a.requires_grad_(False) is a
    assert not a.requires_grad


# ---- identity, hashing, subclasses ----------------------------------------------------------------


def test_same_cpp_tensor_is_the_same_python_object() -> None:
    a = ndl.Tensor([1.0, 2.0])
    b = a + 1
    assert b.inputs[0] is a
    c = b * 2
    assert c.inputs[0] is b
    assert ndl.autograd.find_topo_sort([c])[-1] is c


def test_tensors_hash_by_identity() -> None:
    a = ndl.Tensor([1.0, 2.0])
    b = ndl.Tensor([1.0, 2.0])
    table = {a: "a", b: "b"}
    assert table[a] == "a"
    assert len({a, b, a}) == 2
    assert hash(a) == hash(a)
    assert (a == b).dtype == "bool"


def test_python_subclass_keeps_its_type_through_the_graph() -> None:
    class Parameter(ndl.Tensor):
        pass

    p = Parameter(np.ones((2, 2)))
    p.tag = "weight"
    y = (p @ p).sum()
    assert isinstance(y, ndl.Tensor)
    assert not isinstance(y, Parameter)
    node = y.inputs[0].inputs[0]
    assert node is p
    assert isinstance(node, Parameter)
    y.backward()
    assert p.grad is not None
    np.testing.assert_allclose(p.grad.numpy(), np.full((2, 2), 4.0))


# ---- indexing -------------------------------------------------------------------------------------


def test_getitem_views_and_gradients(device: nd.Device) -> None:
    x = np.arange(24.0).reshape(2, 3, 4)
    t = ndl.Tensor(x, device=device)
    for key in [0, -1, (1, 2, 3), (slice(None), 1), (Ellipsis, slice(None, None, -2)), (None, 0, slice(1, 3))]:
        check(t[key], x[key])
    t[0, :, ::2].sum().backward()
    expected = np.zeros_like(x)
    expected[0, :, ::2] = 1
    assert t.grad is not None
    np.testing.assert_array_equal(t.grad.numpy(), expected)
    with pytest.raises(IndexError):
        t[5]
    rows = list(ndl.Tensor(x[0], device=device))
    assert len(rows) == 3
    check(rows[2], x[0, 2])


def test_setitem(device: nd.Device) -> None:
    t = ndl.Tensor(np.zeros((2, 3)), device=device, requires_grad=False)
    t[0, 1] = 5.0
    t[1] = ndl.Tensor(np.array([1.0, 2.0, 3.0]), device=device)
    t[:, 2] = np.array([7.0, 8.0])
    t[0, 0] = nd.NDArray(np.array(9.0), device=device)
    np.testing.assert_array_equal(t.numpy(), [[9, 5, 7], [1, 2, 8]])
    w = ndl.Tensor(np.zeros(3), device=device)
    with pytest.raises(RuntimeError, match="requires grad"):
        w[0] = 1.0
    with ndl.no_grad():
        w[0] = 1.0
    np.testing.assert_array_equal(w.numpy(), [1, 0, 0])
    y = w * 2
    with pytest.raises(RuntimeError, match="requires grad"), ndl.no_grad():
        y[0] = 1.0


# ---- operators ------------------------------------------------------------------------------------


def test_operators_with_scalars_ndarrays_and_numpy(device: nd.Device) -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = ndl.Tensor(x, device=device)
    check(t + 1, x + 1)
    check(1 + t, 1 + x)
    check(t - 1, x - 1)
    check(2 - t, 2 - x)
    check(t * 2, x * 2)
    check(2 * t, 2 * x)
    check(t / 2, x / 2)
    check(2 / t, 2 / x)
    check(t**2, x**2)
    check(2**t, 2**x)
    check(-t, -x)
    check(t + np.ones(2), x + 1)
    check(np.ones(2) + t, x + 1)
    check(np.ones((2, 2)) @ t, np.ones((2, 2)) @ x)
    check(t * nd.NDArray(np.full(2, 3.0), device=device), x * 3)
    check(nd.NDArray(np.full(2, 3.0), device=device) - t, 3 - x)
    check(t + [1.0, 1.0], x + 1)  # noqa: RUF005 (a list operand, converted like a NumPy array)
    out = np.float64(2.0) * t
    assert isinstance(out, ndl.Tensor)
    check(out, 2 * x)


def test_comparisons_are_elementwise_and_need_no_grad() -> None:
    a = ndl.Tensor([1.0, 2.0, 3.0])
    b = ndl.Tensor([3.0, 2.0, 1.0])
    for result, expected in [
        (a == b, [False, True, False]),
        (a != b, [True, False, True]),
        (a < b, [True, False, False]),
        (a <= b, [True, True, False]),
        (a > b, [False, False, True]),
        (a >= b, [False, True, True]),
        (a == 2, [False, True, False]),
        (a > 1.5, [False, True, True]),
    ]:
        assert result.dtype == "bool"
        assert not result.requires_grad
        np.testing.assert_array_equal(result.numpy(), expected)
    assert (a == None) is False  # noqa: E711 (identity fallback for unrelated objects)
    assert a != "text"


# ---- methods mirroring ops ------------------------------------------------------------------------


def test_reduction_methods(device: nd.Device, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 4))
    t = ndl.Tensor(x, device=device)
    check(t.sum(), x.sum())
    check(t.sum(1), x.sum(1))
    check(t.sum(axes=(0, 2), keepdims=True), x.sum((0, 2), keepdims=True))
    check(t.sum(dim=1, keepdim=True), x.sum(1, keepdims=True))
    check(t.mean(dim=-1), x.mean(-1))
    check(t.max(axes=1), x.max(1))
    check(t.min(), x.min())
    check(t.logsumexp(2), np.log(np.exp(x).sum(2)))
    check(t.argmax(dim=2), x.argmax(2))
    with pytest.raises(TypeError, match="both"):
        t.sum(axes=1, dim=1)


def test_shape_methods(device: nd.Device) -> None:
    x = np.arange(24.0).reshape(2, 3, 4)
    t = ndl.Tensor(x, device=device)
    check(t.reshape((4, 6)), x.reshape(4, 6))
    check(t.reshape(4, 6), x.reshape(4, 6))
    check(t.reshape(-1), x.reshape(-1))
    check(t.view(6, 4), x.reshape(6, 4))
    check(t.transpose(), np.swapaxes(x, 1, 2))
    check(t.transpose((0, 1)), np.swapaxes(x, 0, 1))
    check(t.transpose(0, 2), np.swapaxes(x, 0, 2))
    check(t.transpose(axes=(0, 2)), np.swapaxes(x, 0, 2))
    check(t.permute((2, 0, 1)), np.transpose(x, (2, 0, 1)))
    check(t.permute(2, 0, 1), np.transpose(x, (2, 0, 1)))
    check(t.T, x.T)
    check(t.broadcast_to((5, 2, 3, 4)), np.broadcast_to(x, (5, 2, 3, 4)))
    check(t.broadcast_to(5, 2, 3, 4), np.broadcast_to(x, (5, 2, 3, 4)))
    check(t.flatten(), x.reshape(-1))
    check(t.flatten(1), x.reshape(2, 12))
    check(t.flatten(0, 1), x.reshape(6, 4))
    check(t.unsqueeze(0), x[None])
    check(t.unsqueeze(0).squeeze(), x)
    check(t.unsqueeze(3).squeeze(3), x)
    with pytest.raises(TypeError, match="once"):
        t.transpose(0, 1, axes=(0, 1))


def test_math_methods(device: nd.Device) -> None:
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    t = ndl.Tensor(x, device=device)
    check(t.exp(), np.exp(x))
    check(t.abs().log(), np.log(np.abs(x)))
    check(t.abs().sqrt(), np.sqrt(np.abs(x)))
    check(t.relu(), np.maximum(x, 0))
    check(t.tanh(), np.tanh(x))
    check(t.sigmoid(), 1 / (1 + np.exp(-x)))
    check(t.matmul(t), x @ x)
    e = np.exp(x - x.max(-1, keepdims=True))
    check(t.softmax(-1), e / e.sum(-1, keepdims=True))
    check(t.log_softmax(dim=-1), np.log(e / e.sum(-1, keepdims=True)))
