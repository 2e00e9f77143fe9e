"""needle.quantization: int8 layers against a NumPy emulation of the scheme, quantize_dynamic on Python and
built-in models (nested containers, Transformer, LSTM), static calibration of Conv layers with both
observers, saving and loading quantized models, tracing, no gradient, and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import needle as ndl
from needle import nn, quantization


def quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NumPy's reading of the scheme: per row, scale = max|x| / 127, values = round-half-even(x * 127 / max)."""
    x = x.astype(np.float32)
    amax = np.abs(x).max(axis=-1, keepdims=True)
    safe = np.where(amax == 0, np.float32(1), amax)
    values = np.clip(np.rint(x * (np.float32(127) / safe)), -127, 127)
    scale = np.where(amax == 0, np.float32(1), amax / np.float32(127))
    return values, scale[..., 0]


def emulate_linear(x: np.ndarray, weight_out_in: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    qx, sx = quantize_rows(x)
    qw, sw = quantize_rows(weight_out_in)
    acc = (qx.astype(np.int64) @ qw.astype(np.int64).T).astype(np.float32)
    out = acc * (sx[:, None] * sw[None, :]).astype(np.float32)
    return out if bias is None else out + bias.reshape(1, -1)


class Net(nn.Module):
    """A user model whose layers sit in a list and a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = [nn.Linear(10, 16), nn.ReLU()]
        self.heads = {"out": nn.Linear(16, 4)}

    def forward(self, x: ndl.Tensor) -> ndl.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.heads["out"](x)


def test_quantized_linear_matches_the_numpy_emulation() -> None:
    ndl.manual_seed(0)
    linear = nn.Linear(33, 9)
    x = np.random.default_rng(0).normal(size=(6, 33)).astype(np.float32)
    layer = quantization.QuantizedLinear.from_linear(linear)
    weight = linear.weight.numpy().T
    expected = emulate_linear(x, weight, linear.bias.numpy())
    np.testing.assert_allclose(layer(ndl.Tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert (layer.in_features, layer.out_features, layer.input_scale) == (33, 9, 0.0)
    values, scales = ndl._core.quantize_rows(ndl.NDArray(x))
    np.testing.assert_array_equal(values.numpy(), quantize_rows(x)[0])
    np.testing.assert_allclose(scales.numpy(), quantize_rows(x)[1], rtol=0)


def test_quantize_dynamic_replaces_layers_in_containers_and_stays_close() -> None:
    ndl.manual_seed(1)
    model = Net()
    x = ndl.Tensor(np.random.default_rng(1).normal(size=(5, 10)).astype(np.float32))
    before = model(x).numpy()
    assert quantization.quantize_dynamic(model) is model
    assert isinstance(model.blocks[0], quantization.QuantizedLinear)
    assert isinstance(model.heads["out"], quantization.QuantizedLinear)
    after = model(x).numpy()
    assert np.abs(after - before).max() < 0.02 * np.abs(before).max()
    state = model.state_dict()
    assert state["blocks.0.weight"].dtype == "int8"
    assert state["blocks.0.weight"].shape == (16, 10)
    assert state["heads.out.weight_scale"].shape == (4,)


def test_saved_int8_model_loads_into_a_freshly_quantized_one(tmp_path: Path) -> None:
    ndl.manual_seed(2)
    model = quantization.quantize_dynamic(nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)))
    model.save(tmp_path / "int8.safetensors")
    other = quantization.quantize_dynamic(nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)))
    x = ndl.Tensor(np.random.default_rng(2).normal(size=(4, 12)).astype(np.float32))
    assert not np.array_equal(other(x).numpy(), model(x).numpy())
    other.load(tmp_path / "int8.safetensors")
    np.testing.assert_array_equal(other(x).numpy(), model(x).numpy())


def test_transformer_and_lstm_quantize_and_still_generate() -> None:
    ndl.manual_seed(3)
    model = nn.Transformer(11, 16, 1, 2, 32, max_seq_len=16)
    ids = np.random.default_rng(3).integers(0, 11, size=(1, 6))
    before = model(ndl.Tensor(ids, dtype="int64")).numpy()
    quantization.quantize_dynamic(model)
    after = model(ndl.Tensor(ids, dtype="int64")).numpy()
    assert np.abs(after - before).max() < 0.05 * np.abs(before).max()
    greedy = model.generate(ids, 5, temperature=0).numpy()
    np.testing.assert_array_equal(model.generate(ids, 5, temperature=0, use_cache=False).numpy(), greedy)
    with ndl.debug.trace() as trace:
        model(ndl.Tensor(ids, dtype="int64"))
    names = {event["name"] for event in trace.events}
    assert {"quantized_linear", "quantized_matmul", "quantize_rows"} <= names

    lstm = nn.LSTM(5, 7, num_layers=2)
    x = ndl.Tensor(np.random.default_rng(4).normal(size=(4, 2, 5)).astype(np.float32))
    out, (h, c) = lstm(x)
    quantized = quantization.quantize_dynamic(lstm)
    assert isinstance(quantized, quantization.QuantizedLSTM)
    qout, (qh, qc) = quantized(x)
    assert np.abs(qout.numpy() - out.numpy()).max() < 0.03 * np.abs(out.numpy()).max()
    assert qh.shape == h.shape
    assert qc.shape == c.shape


@pytest.mark.parametrize("observer", ["minmax", "percentile"])
def test_quantize_static_calibrates_every_conv(observer: str) -> None:
    ndl.manual_seed(5)
    model = nn.Sequential(nn.Conv(2, 6, 3), nn.ReLU(), nn.Conv(6, 3, 3, stride=2), nn.Flatten(), nn.Linear(48, 4))
    rng = np.random.default_rng(5)
    batches = [ndl.Tensor(rng.normal(size=(3, 2, 8, 8)).astype(np.float32)) for _ in range(4)]
    before = model(batches[0]).numpy()
    quantization.quantize_static(model, batches, observer=observer)
    first, second = model.modules[0], model.modules[2]
    assert isinstance(first, quantization.QuantizedConv)
    assert isinstance(second, quantization.QuantizedConv)
    assert isinstance(model.modules[4], quantization.QuantizedLinear)
    amax = max(float(np.abs(b.numpy()).max()) for b in batches)
    if observer == "minmax":
        assert first.input_scale == pytest.approx(amax / 127, rel=1e-6)
    else:
        assert 0 < first.input_scale < amax / 127
    assert second.input_scale > 0
    after = model(batches[0]).numpy()
    assert np.abs(after - before).max() < 0.05 * np.abs(before).max()
    assert model.training  # calibration restores the mode


def test_observers() -> None:
    minmax = quantization.MinMaxObserver()
    assert minmax.scale() == 1.0
    minmax.observe(np.array([0.5, -2.54]))
    assert minmax.scale() == pytest.approx(2.54 / 127)
    percentile = quantization.PercentileObserver(50.0)
    percentile.observe(np.array([1.0, 2.0, 3.0, -100.0]))
    assert percentile.scale() == pytest.approx(2.5 / 127)
    with pytest.raises(ValueError, match="percentile must lie in"):
        quantization.PercentileObserver(0.0)


def test_no_gradient_and_clear_errors() -> None:
    layer = quantization.QuantizedLinear.from_linear(nn.Linear(4, 2))
    x = ndl.Tensor(np.ones((3, 4), dtype=np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match="int8 layers are for inference"):
        layer(x).sum().backward()
    with pytest.raises(ValueError, match="expected input with last dimension 4"):
        layer(ndl.Tensor(np.ones((3, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match="observer must be"):
        quantization.quantize_static(nn.Sequential(nn.Linear(2, 2)), [], observer="median")
    with pytest.raises(ValueError, match="input_scale must be finite"):
        layer.input_scale = -1.0
