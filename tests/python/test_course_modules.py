"""Modules, layer settings, optimizers and TENSOR_COUNTER as course code uses them: ``Sequential.modules``,
train/eval reaching every descendant, writable hyper-parameters that take effect, the optimizer state under
the course's names."""

from __future__ import annotations

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import nn, optim

# ---- Sequential.modules and train/eval ---------------------------------------------------------------


class Holder(nn.Module):
    """A user module holding modules in a dict and a list."""

    def __init__(self) -> None:
        super().__init__()
        self.parts = {"a": nn.Linear(2, 2), "b": [nn.Dropout(0.2), nn.Sequential(nn.ReLU())]}


def test_sequential_modules_is_the_tuple_of_children() -> None:
    inner = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    model = nn.Sequential(nn.Linear(2, 3), inner)
    assert isinstance(model.modules, tuple)
    assert model.modules[1] is inner
    assert isinstance(model.modules[1].modules[0], nn.Linear)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.0.weight", "1.0.bias"]
    assert model(ndl.Tensor(np.ones((1, 2), dtype=np.float32))).shape == (1, 3)


def test_train_and_eval_reach_every_descendant() -> None:
    holder = Holder()
    model = nn.Sequential(nn.BatchNorm1d(2), nn.Sequential(nn.LayerNorm1d(2), nn.Dropout(0.1)), holder)
    everything = [
        model,
        *model.modules,
        *model.modules[1].modules,
        holder.parts["a"],
        holder.parts["b"][0],
        holder.parts["b"][1],
        holder.parts["b"][1].modules[0],
    ]
    model.eval()
    assert not any(m.training for m in everything)
    model.train()
    assert all(m.training for m in everything)


def test_a_user_module_may_name_an_attribute_modules() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.modules = [nn.Linear(2, 2), nn.Dropout(0.5)]

        def forward(self, x: ndl.Tensor) -> ndl.Tensor:
            for m in self.modules:
                x = m(x)
            return x

    block = Block()
    block.eval()
    assert not block.modules[1].training
    assert len(block.parameters()) == 2


# ---- layer settings ------------------------------------------------------------------------------


def test_batchnorm_momentum_and_eps_written_after_construction_take_effect(device: nd.Device) -> None:
    x_np = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    x = ndl.Tensor(x_np, device=device)
    written = nn.BatchNorm1d(3, device=device)
    written.momentum = 0.6
    written.eps = 0.5
    built = nn.BatchNorm1d(3, eps=0.5, momentum=0.6, device=device)
    np.testing.assert_allclose(written(x).numpy(), built(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(written.running_mean.numpy(), 0.6 * x_np.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(written.running_var.numpy(), built.running_var.numpy(), rtol=1e-6)
    expected = (x_np - x_np.mean(0)) / np.sqrt(x_np.var(0) + 0.5)
    np.testing.assert_allclose(written(x).numpy(), expected, rtol=1e-5, atol=1e-6)


# ---- optimizers ----------------------------------------------------------------------------------


def train(make_optimizer: object, written: dict[str, float], device: nd.Device, steps: int = 3) -> np.ndarray:
    """The weight after ``steps`` steps of a small least-squares fit, with ``written`` set after construction."""
    rng = np.random.default_rng(5)
    w = ndl.Tensor(rng.standard_normal((4, 2)).astype(np.float32), device=device, requires_grad=True)
    x = ndl.Tensor(rng.standard_normal((6, 4)).astype(np.float32), device=device)
    opt = make_optimizer([w])  # type: ignore[operator]
    for name, value in written.items():
        setattr(opt, name, value)
    for _ in range(steps):
        opt.reset_grad()
        ((x @ w) ** 2).sum().backward()
        opt.step()
    return w.numpy()


SGD_SETTINGS = {"lr": 0.05, "momentum": 0.7, "weight_decay": 0.1}
ADAM_SETTINGS = {"lr": 0.02, "beta1": 0.5, "beta2": 0.9, "eps": 0.1, "weight_decay": 0.2}
WRITABLE = [(optim.SGD, name, value) for name, value in SGD_SETTINGS.items()] + [
    (optim.Adam, name, value) for name, value in ADAM_SETTINGS.items()
]


@pytest.mark.parametrize(("kind", "name", "value"), WRITABLE, ids=[f"{k.__name__}-{n}" for k, n, _ in WRITABLE])
def test_optimizer_hyper_parameters_written_after_construction_take_effect(
    device: nd.Device, kind: type, name: str, value: float
) -> None:
    after = train(kind, {name: value}, device)
    built = train(lambda params: kind(params, **{name: value}), {}, device)
    default = train(kind, {}, device)
    np.testing.assert_allclose(after, built, rtol=1e-6)
    assert not np.allclose(after, default)


def test_sgd_u_is_the_velocity_keyed_by_parameter(device: nd.Device) -> None:
    w = ndl.Tensor(np.ones((2, 2), dtype=np.float32), device=device, requires_grad=True)
    b = ndl.Tensor(np.ones((2,), dtype=np.float32), device=device, requires_grad=True)
    opt = optim.SGD([w, b], lr=0.1, momentum=0.5)
    assert len(opt.u) == 0
    assert w not in opt.u
    (w * 3).sum().backward()
    opt.step()
    assert list(opt.u) == [w]  # b has no gradient: not updated, no velocity
    np.testing.assert_allclose(opt.u[w].numpy(), np.full((2, 2), 0.5 * 3), rtol=1e-6)
    assert opt.u[w].device == device
    # Writing u is what the next step uses: u <- 0.5 u + 0.5 g, w <- w - 0.1 u.
    opt.u[w] = np.full((2, 2), 10.0, dtype=np.float32)
    before = w.numpy().copy()
    opt.step()
    np.testing.assert_allclose(w.numpy(), before - 0.1 * (0.5 * 10 + 0.5 * 3), rtol=1e-6)
    with pytest.raises(KeyError):
        opt.u[ndl.Tensor(np.ones((2, 2), dtype=np.float32))]
    with pytest.raises(TypeError, match="deleted"):
        del opt.u[w]


def test_adam_m_v_t_are_the_moments_and_the_step_count(device: nd.Device) -> None:
    w = ndl.Tensor(np.zeros((3,), dtype=np.float32), device=device, requires_grad=True)
    opt = optim.Adam([w], lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8)
    assert opt.t == 0
    with pytest.raises(ValueError, match="first step"):
        opt.m[w] = np.zeros((3,), dtype=np.float32)
    grad = np.array([1.0, -2.0, 3.0], dtype=np.float32)
    (w * ndl.Tensor(grad, device=device)).sum().backward()
    opt.step()
    assert opt.t == 1
    np.testing.assert_allclose(opt.m[w].numpy(), 0.1 * grad, rtol=1e-6)
    np.testing.assert_allclose(opt.v[w].numpy(), 0.01 * grad**2, rtol=1e-5)
    # Written state is what the next step reads (same gradient).
    m, v, t = np.array([0.5, 0.5, 0.5], dtype=np.float32), np.array([4.0, 4.0, 4.0], dtype=np.float32), 5
    opt.m[w], opt.v[w], opt.t = m, v, t
    before = w.numpy().copy()
    opt.step()
    m = 0.9 * m + 0.1 * grad
    v = 0.99 * v + 0.01 * grad**2
    expected = before - 0.1 * (m / (1 - 0.9**6)) / (np.sqrt(v / (1 - 0.99**6)) + 1e-8)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5)
    assert opt.t == 6


def test_optimizer_clip_grad_norm_method() -> None:
    w = ndl.Tensor(np.zeros((2,), dtype=np.float32), requires_grad=True)
    (w * ndl.Tensor(np.array([3.0, 4.0], dtype=np.float32))).sum().backward()
    opt = optim.SGD([w])
    assert opt.clip_grad_norm(1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(w.grad.numpy(), [0.6, 0.8], rtol=1e-5)


# ---- TENSOR_COUNTER ------------------------------------------------------------------------------


def test_tensor_counter_counts_live_tensors() -> None:
    before = ndl.autograd.TENSOR_COUNTER
    tensors = [ndl.Tensor(np.ones(2, dtype=np.float32)) for _ in range(5)]
    assert before + 5 == ndl.autograd.TENSOR_COUNTER
    del tensors
    assert before == ndl.autograd.TENSOR_COUNTER
    from needle.autograd import TENSOR_COUNTER

    assert before == TENSOR_COUNTER
