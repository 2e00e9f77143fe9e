"""needle.optim: optimizers and schedulers against hand-computed steps, gradient clipping, the Python base
class."""

# ruff: noqa: NPY002 (Needle draws from NumPy's global random state: these tests seed it)

from __future__ import annotations

import math

import numpy as np
import pytest

import needle as ndl
from needle import nn, optim


def param(values: list[float]) -> nn.Parameter:
    return nn.Parameter(np.array(values, dtype=np.float64), dtype="float64")


def set_grad(p: ndl.Tensor, values: np.ndarray) -> None:
    p.grad = ndl.Tensor(values, dtype="float64", requires_grad=False)


GRADS = [np.array([0.5, -1.0]), np.array([0.25, 2.0]), np.array([-1.5, 0.5])]


def test_sgd_momentum_and_weight_decay_follow_needle() -> None:
    p = param([1.0, -2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    expected = p.numpy().copy()
    u = np.zeros(2)
    for g in GRADS:
        set_grad(p, g)
        opt.step()
        u = 0.9 * u + 0.1 * (g + 0.01 * expected)
        expected = expected - 0.1 * u
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-12)
    assert opt.lr == pytest.approx(0.1)


def test_sgd_updates_in_place_and_skips_parameters_without_gradient() -> None:
    p, q = param([1.0, 2.0]), param([3.0, 4.0])
    opt = optim.SGD([p, q], lr=0.5)
    set_grad(p, np.array([1.0, 1.0]))
    opt.step()
    np.testing.assert_allclose(p.numpy(), [0.5, 1.5])
    np.testing.assert_allclose(q.numpy(), [3.0, 4.0])
    opt.reset_grad()
    assert p.grad is None
    set_grad(p, np.ones(2))
    opt.zero_grad()
    assert p.grad is None


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_and_adamw_follow_hand_computation(decoupled: bool) -> None:
    p = param([1.0, -2.0])
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
    opt: optim.Optimizer
    if decoupled:
        opt = optim.AdamW([p], lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd)
    else:
        opt = optim.Adam([p], lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd)
    expected = p.numpy().copy()
    m = np.zeros(2)
    v = np.zeros(2)
    for t, g in enumerate(GRADS, start=1):
        set_grad(p, g)
        opt.step()
        if decoupled:
            grad = g
            expected = expected - lr * wd * expected
        else:
            grad = g + wd * expected
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad**2
        expected = expected - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-10)


def test_hyper_parameters_set_between_steps_change_the_next_step() -> None:
    # The hyper-parameters live in the C++ optimizer only: setting one from Python changes what step() uses.
    p = param([1.0, -2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.0)
    assert opt.momentum == 0.0
    opt.momentum = 0.5
    opt.weight_decay = 0.1
    assert (opt.momentum, opt.weight_decay) == (0.5, pytest.approx(0.1))
    set_grad(p, GRADS[0])
    opt.step()
    # First step with momentum: u = (1 - 0.5) * (g + 0.1 p), p -= lr * u.
    np.testing.assert_allclose(p.numpy(), [1.0, -2.0] - 0.1 * 0.5 * (GRADS[0] + 0.1 * np.array([1.0, -2.0])))
    q = param([1.0, -2.0])
    adam = optim.Adam([q], lr=0.1)
    adam.beta1, adam.beta2, adam.eps = 0.5, 0.75, 0.25
    set_grad(q, GRADS[0])
    adam.step()
    m_hat = GRADS[0]  # (1 - b1) g / (1 - b1)
    v_hat = GRADS[0] ** 2
    np.testing.assert_allclose(q.numpy(), [1.0, -2.0] - 0.1 * m_hat / (np.sqrt(v_hat) + 0.25), rtol=1e-12)
    with pytest.raises(ValueError, match="momentum"):
        opt.momentum = 1.0
    with pytest.raises(ValueError, match="beta2"):
        adam.beta2 = -0.1
    assert opt.momentum == 0.5  # a refused value changes nothing


def test_optimizer_errors() -> None:
    with pytest.raises(ValueError, match="SGD"):
        optim.SGD([param([1.0])], lr=-1.0)
    with pytest.raises(TypeError):
        optim.Adam([ndl.Tensor(np.array([1, 2]))])


def test_python_optimizer_subclass() -> None:
    class SignSGD(optim.Optimizer):
        def __init__(self, params: list[ndl.Tensor], lr: float) -> None:
            super().__init__(params)
            self.lr = lr

        def step(self) -> None:
            for p in self.params:
                if p.grad is not None:
                    p.data = p.data - self.lr * np.sign(p.grad.numpy())

    p = param([1.0, 1.0])
    opt = SignSGD([p], lr=0.25)
    set_grad(p, np.array([2.0, -3.0]))
    opt.step()
    np.testing.assert_allclose(p.numpy(), [0.75, 1.25])
    opt.reset_grad()
    assert p.grad is None
    with pytest.raises(TypeError, match="built-in optimizers"):
        optim.StepLR(opt, 2)


def run_schedule(scheduler: optim.LRScheduler, opt: optim.Optimizer, steps: int) -> list[float]:
    lrs = [opt.lr]
    for _ in range(steps):
        opt.step()
        scheduler.step()
        lrs.append(opt.lr)
        assert scheduler.get_last_lr() == [pytest.approx(opt.lr)]
    return lrs


def test_step_lr() -> None:
    opt = optim.SGD([param([1.0])], lr=1.0)
    lrs = run_schedule(optim.StepLR(opt, step_size=2, gamma=0.5), opt, 5)
    np.testing.assert_allclose(lrs, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25])


def test_cosine_annealing_lr() -> None:
    opt = optim.Adam([param([1.0])], lr=1.0)
    sched = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    lrs = run_schedule(sched, opt, 4)
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(5)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert sched.last_epoch == 4


def test_linear_warmup_alone_and_composed() -> None:
    opt = optim.SGD([param([1.0])], lr=0.8)
    lrs = run_schedule(optim.LinearWarmup(opt, warmup_steps=4, start_factor=0.25), opt, 6)
    np.testing.assert_allclose(lrs, [0.8 * (0.25 + 0.75 * k / 4) for k in range(4)] + [0.8] * 3, rtol=1e-12)

    opt2 = optim.SGD([param([1.0])], lr=1.0)
    then = optim.StepLR(opt2, step_size=2, gamma=0.1)
    warm = optim.LinearWarmup(opt2, warmup_steps=2, start_factor=0.5, then=then)
    lrs = run_schedule(warm, opt2, 5)
    np.testing.assert_allclose(lrs, [0.5, 0.75, 1.0, 1.0, 0.1, 0.1], rtol=1e-12)


def test_clip_grad_norm() -> None:
    p, q = param([3.0]), param([0.0, 0.0])
    set_grad(p, np.array([3.0]))
    set_grad(q, np.array([0.0, 4.0]))
    norm = optim.clip_grad_norm([p, q], max_norm=1.0)
    assert norm == pytest.approx(5.0)
    assert p.grad is not None
    assert q.grad is not None
    np.testing.assert_allclose(p.grad.numpy(), [3.0 / (5.0 + 1e-6)], rtol=1e-12)
    np.testing.assert_allclose(q.grad.numpy(), [0.0, 4.0 / (5.0 + 1e-6)], rtol=1e-12)
    set_grad(p, np.array([0.5]))
    assert optim.clip_grad_norm([p], max_norm=10.0) == pytest.approx(0.5)
    np.testing.assert_allclose(p.grad.numpy(), [0.5])


def test_training_a_linear_model_with_adam_and_a_scheduler() -> None:
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)).astype(np.float32)
    xt, yt = ndl.Tensor(x, requires_grad=False), ndl.Tensor(y, requires_grad=False)
    opt = optim.Adam(model.parameters(), lr=0.05)
    sched = optim.CosineAnnealingLR(opt, T_max=30)
    losses = []
    for _ in range(30):
        opt.reset_grad()
        loss = nn.MSELoss()(model(xt), yt)
        loss.backward()
        optim.clip_grad_norm(model.parameters(), 10.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
