"""Optimizer and scheduler state dicts: a resumed optimizer continues bit for bit (in memory and through a
safetensors file), mismatched states raise ValueError and change nothing, and the examples' checkpoints
hold model, optimizer and schedule (older model-only checkpoints still load)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import needle as ndl
from needle import nn, optim

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"

MakeOptimizer = Callable[[Iterable[ndl.Tensor]], optim.CppOptimizer]

OPTIMIZERS: dict[str, MakeOptimizer] = {
    "SGD": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    "Adam": lambda ps: optim.Adam(ps, lr=0.05, weight_decay=0.01),
    "AdamW": lambda ps: optim.AdamW(ps, lr=0.05),
}


def make_params() -> list[nn.Parameter]:
    """Two shapes and dtypes, plus a parameter that never gets a gradient."""
    return [
        nn.Parameter(np.linspace(-0.6, 0.65, 6).reshape(2, 3).astype(np.float32), dtype="float32"),
        nn.Parameter(np.array([1.5, -2.0, 0.125, 3.0]), dtype="float64"),
        nn.Parameter(np.array([7.0]), dtype="float64"),
    ]


def copies(params: list[nn.Parameter]) -> list[nn.Parameter]:
    return [nn.Parameter(p.numpy().copy(), dtype=p.dtype) for p in params]


def set_grads(params: list[nn.Parameter], step: int) -> None:
    for j, p in enumerate(params[:-1]):
        g = np.sin(1.7 * step + 3.1 * j + 0.9 * np.arange(p.numpy().size)).reshape(p.shape)
        p.grad = ndl.Tensor(g.astype(p.numpy().dtype), dtype=p.dtype, requires_grad=False)


def train(opt: optim.Optimizer, params: list[nn.Parameter], steps: range) -> None:
    for step in steps:
        set_grads(params, step)
        opt.step()


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
def test_resumed_optimizer_continues_bit_exactly(tmp_path: Path, kind: str) -> None:
    make = OPTIMIZERS[kind]
    params = make_params()
    original = make(params)
    train(original, params, range(3))
    state = original.state_dict()
    assert state["lr"].numpy().shape == ()
    assert int(state["param_count"].numpy()) == 3
    assert not any(key.startswith("state.2.") for key in state)  # never updated, so no buffers

    ndl.save(state, tmp_path / "optim.safetensors")
    in_memory, from_file = copies(params), copies(params)
    resumed, reloaded = make(in_memory), make(from_file)
    resumed.lr = 1.0  # the state's learning rate wins
    resumed.load_state_dict(state)
    reloaded.load_state_dict(ndl.load(tmp_path / "optim.safetensors"))
    assert resumed.lr == original.lr

    for opt, ps in ((original, params), (resumed, in_memory), (reloaded, from_file)):
        train(opt, ps, range(3, 5))
    for p, a, b in zip(params, in_memory, from_file, strict=True):
        np.testing.assert_array_equal(a.numpy(), p.numpy())
        np.testing.assert_array_equal(b.numpy(), p.numpy())


def test_adam_state_names_and_step() -> None:
    params = make_params()
    adam = optim.Adam(params)
    assert sorted(adam.state_dict()) == ["lr", "param_count", "step"]
    train(adam, params, range(2))
    state = adam.state_dict()
    assert int(state["step"].numpy()) == 2
    assert {"state.0.exp_avg", "state.0.exp_avg_sq", "state.1.exp_avg", "state.1.exp_avg_sq"} <= set(state)
    assert state["state.0.exp_avg"].shape == (2, 3)


def test_mismatched_state_raises_and_changes_nothing() -> None:
    params = make_params()
    adam, sgd = optim.Adam(params, lr=0.05), optim.SGD(params, lr=0.1, momentum=0.9)
    set_grads(params, 0)
    adam.step()
    sgd.step()
    good = adam.state_dict()

    target_params = copies(params)
    target = optim.Adam(target_params, lr=0.01)
    train(target, target_params, range(5, 7))
    before = {key: value.numpy().copy() for key, value in target.state_dict().items()}

    def rejected(state: dict[str, object], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            target.load_state_dict(state)
        after = target.state_dict()
        assert sorted(after) == sorted(before)
        for key, value in before.items():
            np.testing.assert_array_equal(after[key].numpy(), value)

    rejected(dict(sgd.state_dict()), "missing key 'step'")
    rejected({**good, "state.0.momentum_buffer": good["state.0.exp_avg"]}, "unexpected key 'state.0.momentum_buffer'")
    rejected({**good, "param_count": np.array(2, dtype=np.int64)}, "the state is of 2 parameters, this optimizer has 3")
    rejected({**good, "state.1.exp_avg": np.zeros(3)}, r"has shape \(3,\), parameter 1 has shape \(4,\)")
    rejected({**good, "state.0.exp_avg": np.zeros((2, 3))}, "has dtype float64, parameter 0 has dtype float32")
    rejected({k: v for k, v in good.items() if k != "state.1.exp_avg_sq"}, "without 'state.1.exp_avg_sq'")
    rejected({**good, "step": np.array(1.0)}, "'step' must be an integer")
    # Another model's optimizer: fewer parameters.
    small = optim.Adam(make_params()[:2])
    with pytest.raises(ValueError, match="the state is of 3 parameters, this optimizer has 2"):
        small.load_state_dict(good)
    with pytest.raises(TypeError, match="'lr' is a str"):
        target.load_state_dict({**good, "lr": "fast"})

    target.load_state_dict(good)
    assert int(target.state_dict()["step"].numpy()) == 1
    assert target.lr == pytest.approx(0.05)


def test_scheduler_state_round_trip() -> None:
    opt = optim.SGD(make_params(), lr=0.4)
    scheduler = optim.CosineAnnealingLR(opt, T_max=8)
    for _ in range(3):
        scheduler.step()
    fresh_opt = optim.SGD(make_params(), lr=0.4)
    fresh = optim.CosineAnnealingLR(fresh_opt, T_max=8)
    fresh.load_state_dict(scheduler.state_dict())
    assert fresh.last_epoch == 3
    assert fresh_opt.lr == opt.lr
    with pytest.raises(ValueError, match="unexpected key 'T_max'"):
        fresh.load_state_dict({**scheduler.state_dict(), "T_max": np.array(8)})
    assert fresh.last_epoch == 3


def test_python_optimizer_without_state_says_so() -> None:
    class Plain(optim.Optimizer):
        def step(self) -> None:
            pass

    with pytest.raises(NotImplementedError, match=r"Plain\.state_dict"):
        Plain([]).state_dict()


@pytest.fixture
def training_utils(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import training_utils

    yield training_utils
    sys.modules.pop("training_utils", None)


def small_setup() -> tuple[nn.Module, optim.Adam, optim.CosineAnnealingLR]:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = optim.Adam(model.parameters(), lr=0.01)
    return model, opt, optim.CosineAnnealingLR(opt, T_max=5)


def test_example_checkpoint_holds_model_optimizer_and_schedule(tmp_path: Path, training_utils: Any) -> None:
    model, opt, scheduler = small_setup()
    for p in model.parameters():
        p.grad = ndl.Tensor(np.ones(p.shape, dtype=np.float32), requires_grad=False)
    opt.step()
    scheduler.step()
    path = tmp_path / "checkpoint.safetensors"
    training_utils.save_checkpoint(model, opt, scheduler, path, 1)
    names = set(ndl.load(path))
    assert {"optim.step", "optim.lr", "scheduler.last_epoch"} <= names
    assert any(name.startswith("model.") for name in names)

    model2, opt2, scheduler2 = small_setup()
    epoch, restored = training_utils.load_checkpoint(model2, opt2, scheduler2, path)
    assert (epoch, restored) == (1, True)
    assert scheduler2.last_epoch == 1
    assert opt2.lr == opt.lr
    for key, value in opt.state_dict().items():
        np.testing.assert_array_equal(opt2.state_dict()[key].numpy(), value.numpy())
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_example_loads_an_older_model_only_checkpoint(
    tmp_path: Path, training_utils: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _, _ = small_setup()
    path = tmp_path / "checkpoint.safetensors"
    ndl.save(model, path, metadata={"epoch": "2"})
    model2, opt2, scheduler2 = small_setup()
    epoch, restored = training_utils.load_checkpoint(model2, opt2, scheduler2, path)
    assert (epoch, restored) == (2, False)
    assert "holds the model only" in capsys.readouterr().out
    assert int(opt2.state_dict()["step"].numpy()) == 0
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
