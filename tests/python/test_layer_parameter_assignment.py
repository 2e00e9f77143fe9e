"""Every parameter of a built-in layer is assignable, as course code does (``cell.W_ih = Tensor(...)``,
``linear.weight = ...``, ``rnn.rnn_cells[k].W_hh = ...``): the next forward computes with the assigned tensor
itself, fused kernels included, and backward gives that tensor its gradient. Each layer is checked against a
twin that received the same values through ``load_state_dict``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import nn


def _fresh_values(layer: nn.Module, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {name: rng.standard_normal(p.shape).astype(np.float32) * 0.5 for name, p in layer.named_parameters()}


def _assign(layer: nn.Module, values: dict[str, np.ndarray], device: nd.Device) -> dict[str, ndl.Tensor]:
    """Assigns a new tensor to each parameter through the attribute path of its dotted name."""
    assigned = {}
    for name, value in values.items():
        *path, attribute = name.split(".")
        owner: object = layer
        for part in path:
            owner = owner[int(part)] if part.isdigit() else getattr(owner, part)  # type: ignore[index]
        tensor = ndl.Tensor(value, device=device, requires_grad=True)
        setattr(owner, attribute, tensor)
        assert getattr(owner, attribute) is tensor
        assigned[name] = tensor
    return assigned


def _sum_outputs(out: object) -> ndl.Tensor:
    if isinstance(out, tuple):
        parts = [_sum_outputs(o) for o in out]
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        return total
    return out.sum()  # type: ignore[union-attr]


LAYERS: dict[str, tuple[Callable[[nd.Device], nn.Module], tuple[int, ...]]] = {
    "Linear": (lambda d: nn.Linear(5, 3, device=d), (4, 5)),
    "Conv": (lambda d: nn.Conv(2, 3, 3, device=d), (2, 2, 6, 6)),
    "BatchNorm1d": (lambda d: nn.BatchNorm1d(5, device=d), (4, 5)),
    "LayerNorm1d": (lambda d: nn.LayerNorm1d(5, device=d), (4, 5)),
    "RNNCell": (lambda d: nn.RNNCell(5, 3, device=d), (4, 5)),
    "LSTMCell": (lambda d: nn.LSTMCell(5, 3, device=d), (4, 5)),
    "RNN": (lambda d: nn.RNN(5, 3, num_layers=2, device=d), (6, 4, 5)),
    "LSTM": (lambda d: nn.LSTM(5, 3, num_layers=2, device=d), (6, 4, 5)),
}


@pytest.mark.parametrize("kind", LAYERS)
def test_assigned_parameters_are_used_and_get_gradients(device: nd.Device, kind: str) -> None:
    rng = np.random.default_rng(7)
    make, input_shape = LAYERS[kind]
    layer, twin = make(device), make(device)
    values = _fresh_values(layer, rng)
    assigned = _assign(layer, values, device)
    twin.load_state_dict({name: nd.array(v, device=device) for name, v in values.items()}, strict=False)
    x = rng.standard_normal(input_shape).astype(np.float32)
    # Cells get a state, so that W_hh enters the computation.
    h = rng.standard_normal((input_shape[0], 3)).astype(np.float32)
    state = {"RNNCell": (h,), "LSTMCell": ((h, h * 0.5),)}.get(kind, ())

    def call(module: nn.Module) -> ndl.Tensor:
        args = [ndl.Tensor(x, device=device)]
        for s in state:
            args.append(
                tuple(ndl.Tensor(v, device=device) for v in s) if isinstance(s, tuple) else ndl.Tensor(s, device=device)
            )
        return _sum_outputs(module(*args))

    loss, twin_loss = call(layer), call(twin)
    np.testing.assert_allclose(loss.numpy(), twin_loss.numpy(), rtol=1e-6)
    loss.backward()
    twin_loss.backward()
    twin_parameters = dict(twin.named_parameters())
    for name, tensor in assigned.items():
        assert tensor.grad is not None, name
        np.testing.assert_allclose(tensor.grad.numpy(), twin_parameters[name].grad.numpy(), rtol=1e-5, atol=1e-6)
    # The module lists the assigned tensors as its parameters.
    assert {id(p) for p in layer.parameters()} == {id(t) for t in assigned.values()}


def test_stack_cells_are_the_cells_the_stack_computes_with() -> None:
    lstm = nn.LSTM(4, 3, num_layers=3)
    cells = lstm.lstm_cells
    assert len(cells) == 3
    assert all(isinstance(c, nn.LSTMCell) for c in cells)
    assert [c.input_size for c in cells] == [4, 3, 3]
    w = ndl.Tensor(np.zeros((3, 12), dtype=np.float32))
    lstm.lstm_cells[2].W_hh = w
    assert lstm.lstm_cells[2].W_hh is w
    assert dict(lstm.named_parameters())["lstm_cells.2.W_hh"] is w
    assert len(nn.RNN(2, 2, num_layers=2).rnn_cells) == 2


def test_assignment_checks_shape_dtype_and_device() -> None:
    linear = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"Linear: parameter 'weight' is \(3, 2\) float32 on cpu, so it cannot be set"):
        linear.weight = ndl.Tensor(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="float64"):
        linear.weight = ndl.Tensor(np.ones((3, 2)), dtype="float64")
    with pytest.raises(ValueError, match="on ref"):
        linear.weight = ndl.Tensor(np.ones((3, 2), dtype=np.float32), device=nd.ref())
    with pytest.raises(TypeError):
        linear.weight = None  # type: ignore[assignment]
    without_bias = nn.RNNCell(2, 2, bias=False)
    assert without_bias.bias_ih is None
    with pytest.raises(ValueError, match="RNNCell: no parameter named 'bias_ih'"):
        without_bias.bias_ih = ndl.Tensor(np.ones(2, dtype=np.float32))


@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_cell_gradient_of_a_summed_output_matches_finite_differences(device: nd.Device, with_state: bool) -> None:
    # sum() hands the cell a broadcast gradient (stride 0): the fused backward must read it as an input.
    rng = np.random.default_rng(3)
    cell = nn.LSTMCell(3, 2, device=device, dtype="float64")
    x = rng.standard_normal((4, 3))
    h0, c0 = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))

    def loss(w_ih: np.ndarray) -> float:
        cell.W_ih = ndl.Tensor(w_ih, device=device, dtype="float64")
        state = (ndl.Tensor(h0, device=device, dtype="float64"), ndl.Tensor(c0, device=device, dtype="float64"))
        h, c = cell(ndl.Tensor(x, device=device, dtype="float64"), state if with_state else None)
        return float((h.sum() + c.sum()).numpy())

    w = rng.standard_normal((3, 8))
    cell.W_ih = ndl.Tensor(w, device=device, dtype="float64")
    state = (ndl.Tensor(h0, device=device, dtype="float64"), ndl.Tensor(c0, device=device, dtype="float64"))
    h, c = cell(ndl.Tensor(x, device=device, dtype="float64"), state if with_state else None)
    assigned = cell.W_ih
    (h.sum() + c.sum()).backward()
    eps = 1e-6
    numeric = np.zeros_like(w)
    for i in np.ndindex(*w.shape):
        up, down = w.copy(), w.copy()
        up[i] += eps
        down[i] -= eps
        numeric[i] = (loss(up) - loss(down)) / (2 * eps)
    np.testing.assert_allclose(assigned.grad.numpy(), numeric, rtol=1e-6, atol=1e-8)
