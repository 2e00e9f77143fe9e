"""int8 post-training quantization (``needle.quantization``): a trained float model made smaller and faster for
inference, with int8 weights and int8 products.

    quantization.quantize_dynamic(model)                 # Linear and LSTM layers -> int8, in place
    quantization.quantize_static(model, batches)         # and Conv layers, with calibrated input scales

Weights get one symmetric scale per output channel (``max |w| / 127``); activations are quantized per row at
run time (dynamic) or with one scale per layer measured on calibration batches by an observer (static:
``MinMaxObserver``, or ``PercentileObserver`` to clip rare outliers). The int8 products are exact (int32)
and scaled back to float in the same pass. Quantized layers hold their int8 weight, scales and bias as
buffers: ``state_dict``/``save``/``load`` work as for any model, and ``needle.debug.trace()`` shows their
``quantized_linear``/``quantized_conv`` ops and kernels. They have no gradient: they are for inference.

The layers are swapped in place (Needle's layers hold C++ state that is not copied): keep the float
checkpoint to get the float model back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from needle import _core, nn
from needle._core import Tensor
from needle.autograd import no_grad
from needle.nn._layer import CppAttribute
from needle.nn.module import CppModule, DeviceLike, Module, as_device

__all__ = [
    "MinMaxObserver",
    "PercentileObserver",
    "QuantizedConv",
    "QuantizedLSTM",
    "QuantizedLinear",
    "calibrate",
    "quantize_dynamic",
    "quantize_static",
]


def _wrap(cls: type[CppModule], cpp: _core.Module) -> Any:
    """A Python layer of class ``cls`` around an existing C++ layer."""
    layer = cls.__new__(cls)
    CppModule.__init__(layer, cpp)
    return layer


class QuantizedLinear(CppModule):
    """``nn.Linear`` with an int8 weight (out, in), per-output-channel scales and a float bias; activations are
    quantized per row at run time (``input_scale`` 0) or with a calibrated ``input_scale``."""

    _cpp: _core.QuantizedLinear

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: DeviceLike = None) -> None:
        super().__init__(_core.QuantizedLinear(in_features, out_features, bias, as_device(device)))

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> QuantizedLinear:
        """The int8 version of a trained ``nn.Linear``."""
        layer: QuantizedLinear = _wrap(cls, _core.QuantizedLinear.from_linear(linear._cpp))
        return layer

    in_features = CppAttribute[int]("Input features.")
    out_features = CppAttribute[int]("Output features.")
    input_scale = CppAttribute[float]("0: per-row dynamic activation scales; > 0: the static scale.")


class QuantizedConv(CppModule):
    """``nn.Conv`` with an int8 weight and per-output-channel scales; its input is quantized with the
    ``input_scale`` that calibration measured (0: per-row dynamic scales)."""

    _cpp: _core.QuantizedConv

    @classmethod
    def from_conv(cls, conv: nn.Conv, input_scale: float = 0.0) -> QuantizedConv:
        """The int8 version of a trained ``nn.Conv`` with a static input scale."""
        layer: QuantizedConv = _wrap(cls, _core.QuantizedConv.from_conv(conv._cpp, input_scale))
        return layer

    in_channels = CppAttribute[int]("Input channels.")
    out_channels = CppAttribute[int]("Output channels.")
    input_scale = CppAttribute[float]("The static activation scale (0: per-row dynamic scales).")


class QuantizedLSTM(CppModule):
    """``nn.LSTM`` whose input and hidden projections are int8 (dynamic activation scales); called like it."""

    _cpp: _core.QuantizedLSTM

    @classmethod
    def from_lstm(cls, lstm: nn.LSTM) -> QuantizedLSTM:
        """The int8 version of a trained ``nn.LSTM``."""
        layer: QuantizedLSTM = _wrap(cls, _core.QuantizedLSTM.from_lstm(lstm._cpp))
        return layer

    def forward(self, X: Tensor, h: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """X (seq_len, batch, input_size), h = (h0, c0) or None -> (output, (h_n, c_n)), as ``nn.LSTM``."""
        self._sync_mode()
        out: tuple[Tensor, tuple[Tensor, Tensor]] = self._cpp(X, h)
        return out


# ---- observers -------------------------------------------------------------------------------------------


class MinMaxObserver:
    """Records the largest magnitude of everything it sees: scale = max |x| / 127 (nothing is clipped)."""

    def __init__(self) -> None:
        self.amax = 0.0

    def observe(self, x: np.ndarray) -> None:
        if x.size:
            self.amax = max(self.amax, float(np.max(np.abs(x))))

    def scale(self) -> float:
        """The symmetric int8 scale (1 when only zeros were seen)."""
        return self.amax / 127.0 if self.amax > 0 else 1.0


class PercentileObserver:
    """Keeps a sample of |x| and takes its ``percentile``-th percentile as the range, so that a few outliers
    do not stretch the scale for everything else (they are clipped to ±127)."""

    def __init__(self, percentile: float = 99.99, samples_per_batch: int = 200_000, seed: int = 0) -> None:
        if not 0.0 < percentile <= 100.0:
            raise ValueError(f"PercentileObserver: percentile must lie in (0, 100], got {percentile}")
        self.percentile = percentile
        self.samples_per_batch = samples_per_batch
        self._rng = np.random.default_rng(seed)
        self._samples: list[np.ndarray] = []

    def observe(self, x: np.ndarray) -> None:
        values = np.abs(np.asarray(x, dtype=np.float32).ravel())
        if values.size > self.samples_per_batch:
            values = self._rng.choice(values, self.samples_per_batch, replace=False)
        self._samples.append(values)

    def scale(self) -> float:
        """The symmetric int8 scale (1 when only zeros, or nothing, were seen)."""
        if not self._samples:
            return 1.0
        amax = float(np.percentile(np.concatenate(self._samples), self.percentile))
        return amax / 127.0 if amax > 0 else 1.0


Observer = MinMaxObserver | PercentileObserver


# ---- swapping layers -------------------------------------------------------------------------------------


def _swapped(value: Any, replace: Callable[[Module], Module | None]) -> Any:
    """``value`` with every Module inside it (directly, or in lists, tuples and dicts, at any depth) passed to
    ``replace``: its result takes the module's place, or, when None, the module's own attributes are searched."""
    if isinstance(value, Module):
        replacement = replace(value)
        if replacement is not None:
            return replacement
        for name, item in list(vars(value).items()):
            if name in ("_cpp", "_cpp_parameters"):
                continue
            new = _swapped(item, replace)
            if new is not item:
                setattr(value, name, new)
        return value
    if isinstance(value, list):
        value[:] = [_swapped(item, replace) for item in value]
        return value
    if isinstance(value, tuple):
        items = tuple(_swapped(item, replace) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else type(value)(items)
    if isinstance(value, dict):
        for key, item in list(value.items()):
            value[key] = _swapped(item, replace)
        return value
    return value


def _dynamic_replacement(module: Module) -> Module | None:
    if isinstance(module, nn.Linear):
        return QuantizedLinear.from_linear(module)
    if isinstance(module, nn.LSTM):
        return QuantizedLSTM.from_lstm(module)
    if isinstance(module, CppModule) and not isinstance(module, QuantizedLinear | QuantizedConv | QuantizedLSTM):
        # A built-in composite (Transformer, MultiHeadAttention, ...): its Linear layers live in C++.
        _core.quantize_dynamic(module._cpp)
    return None


def quantize_dynamic(model: Module) -> Module:
    """Replaces every ``nn.Linear`` and ``nn.LSTM`` in ``model`` (also inside built-in layers such as
    ``nn.Transformer``) by its int8 version with dynamic activation scales, in place, and returns the model
    (or the replacement, when ``model`` itself is a Linear or an LSTM)."""
    result: Module = _swapped(model, _dynamic_replacement)
    return result


def _convolutions(model: Module) -> list[nn.Conv]:
    found: list[nn.Conv] = []

    def visit(module: Module) -> Module | None:
        if isinstance(module, nn.Conv):
            found.append(module)
            return module  # keeps it (and stops the search below it)
        return None

    _swapped(model, visit)
    return found


def calibrate(
    model: Module,
    batches: Iterable[Any],
    make_observer: Callable[[], Observer] = MinMaxObserver,
) -> dict[int, Observer]:
    """Runs ``model`` (evaluation mode, no gradients) on each calibration batch and records the input of
    every ``nn.Conv`` with an observer of its own; returns them by ``id`` of the layer. A batch is what the
    model is called with (a Tensor, or a tuple of arguments)."""
    observers: dict[int, Observer] = {}
    convolutions = _convolutions(model)
    for conv in convolutions:
        observer = make_observer()
        observers[id(conv)] = observer
        original = conv.forward

        def observed(x: Tensor, _forward: Callable[..., Any] = original, _observer: Observer = observer) -> Any:
            _observer.observe(x.numpy())
            return _forward(x)

        conv.forward = observed  # type: ignore[method-assign]
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for batch in batches:
                model(*batch) if isinstance(batch, tuple) else model(batch)
    finally:
        for conv in convolutions:
            del conv.forward
        model.train(was_training)
    return observers


def quantize_static(
    model: Module,
    calibration_batches: Iterable[Any],
    observer: str = "minmax",
    percentile: float = 99.99,
) -> Module:
    """Static quantization: calibrates the input scale of every ``nn.Conv`` on ``calibration_batches``
    (``observer`` "minmax" or "percentile"), replaces each by a ``QuantizedConv`` with that scale, then
    applies ``quantize_dynamic`` to the Linear and LSTM layers. In place; returns the model."""
    if observer == "minmax":
        make: Callable[[], Observer] = MinMaxObserver
    elif observer == "percentile":

        def make() -> Observer:
            return PercentileObserver(percentile)

    else:
        raise ValueError(f"quantize_static: observer must be 'minmax' or 'percentile', got {observer!r}")
    observers = calibrate(model, calibration_batches, make)

    def replace(module: Module) -> Module | None:
        if isinstance(module, nn.Conv) and id(module) in observers:
            return QuantizedConv.from_conv(module, observers[id(module)].scale())
        return None

    return quantize_dynamic(_swapped(model, replace))
