"""``RNN``, ``LSTM`` and ``GRU`` with PyTorch's parameters (``weight_ih_l0`` (gates * hidden, input),
``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``*_reverse`` for the backward direction), gate orders
(LSTM: input, forget, cell, output; GRU: reset, update, new), ``batch_first``, stacked layers with dropout
between them, bidirectional layers and unbatched input.

The input projection of every time step is one matrix product over the whole sequence; the recurrence
runs in Needle's fused sequence ops (``lstm_sequence``, ``rnn_sequence``: per step only h @ W_hh and the
cell) or, for the GRU, step by step with Needle's ops; either way the gradients are the engine's.
"""

from __future__ import annotations

import math
from typing import Any

from needle.torch._functions import cat, empty, stack, zeros
from needle.torch._ops import ops as _ops
from needle.torch._tensor import Tensor, wrap
from needle.torch.nn import functional as F
from needle.torch.nn import init
from needle.torch.nn.module import Module, Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


class RNNBase(Module):
    """The parameters, shapes and layer/direction loop shared by RNN, LSTM and GRU."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if proj_size:
            raise NotImplementedError("LSTM(proj_size=...) is not supported by needle.torch")
        if not 0 <= dropout <= 1:
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"
            )
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError("hidden_size and num_layers must be greater than 0")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        directions = 2 if bidirectional else 1
        gates = _GATES[mode] * hidden_size
        factory = {"device": device, "dtype": dtype}
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                # PyTorch's (gates, in) weights are views of (in, gates) memory, the layout x @ W reads (as in
                # Linear): no copy of them or of their gradients in a step.
                setattr(self, "weight_ih" + suffix, Parameter(empty(layer_input, gates, **factory).t()))
                setattr(self, "weight_hh" + suffix, Parameter(empty(hidden_size, gates, **factory).t()))
                if bias:
                    setattr(self, "bias_ih" + suffix, Parameter(empty(gates, **factory)))
                    setattr(self, "bias_hh" + suffix, Parameter(empty(gates, **factory)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias U(-1/sqrt(hidden), 1/sqrt(hidden)), as in PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def _layer(self, projected: Tensor, weight_hh: Tensor, bias_hh: Tensor | None, state: Any) -> tuple[Tensor, Any]:
        """One layer in one direction over the projected inputs (T, N, gates * H) from ``state``: every
        step's output (T, N, H) and the final state."""
        raise NotImplementedError

    def _run(self, input: Tensor, hx: Any) -> tuple[Tensor, list[Any]]:
        """Every layer and direction over ``input`` (L, N, H_in) from initial states ``hx`` (one per layer
        and direction); the last layer's outputs and every final state."""
        directions = 2 if self.bidirectional else 1
        finals: list[Any] = []
        layer_input = input
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                w_ih, w_hh = getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix)
                b_ih = getattr(self, "bias_ih" + suffix) if self.bias else None
                b_hh = getattr(self, "bias_hh" + suffix) if self.bias else None
                # All time steps' input projections in one product, with both biases (the fused sequence ops
                # add only h @ W_hh).
                both = b_ih + b_hh if b_ih is not None and b_hh is not None else None
                projected = F.linear(layer_input, w_ih, both if self.mode != "GRU" else b_ih)
                if direction:  # the backward direction reads the sequence from its end
                    projected = wrap(_ops.flip(projected._t, [0]))
                out, final = self._layer(projected, w_hh, b_hh, hx[layer * directions + direction])
                outputs.append(wrap(_ops.flip(out._t, [0])) if direction else out)
                finals.append(final)
            layer_input = outputs[0] if directions == 1 else cat(outputs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        return layer_input, finals

    def _prepare(self, input: Tensor) -> tuple[Tensor, bool]:
        if input.dim() not in (2, 3):
            raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {input.shape[-1]}"
            )
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        return x, batched

    def _initial(self, given: Tensor | None, batch: int, like: Tensor, batched: bool) -> list[Tensor]:
        layers = self.num_layers * (2 if self.bidirectional else 1)
        if given is None:
            h = zeros(layers, batch, self.hidden_size, dtype=like.dtype, device=like.device)
        else:
            h = given if batched else given.unsqueeze(1)
            if tuple(h.shape) != (layers, batch, self.hidden_size):
                raise RuntimeError(f"Expected hidden size {(layers, batch, self.hidden_size)}, got {list(given.shape)}")
        return [h[i] for i in range(layers)]

    def _finish(self, output: Tensor, batched: bool) -> Tensor:
        if not batched:
            return output.squeeze(1)
        return output.transpose(0, 1) if self.batch_first else output

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class RNN(RNNBase):
    """h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu)."""

    def __init__(self, *args: Any, nonlinearity: str = "tanh", **kwargs: Any) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", *args, **kwargs)

    def _layer(self, projected: Tensor, weight_hh: Tensor, bias_hh: Tensor | None, state: Any) -> tuple[Tensor, Any]:
        # Needle's fused sequence op: per step only h @ W_hh and the nonlinearity (the biases are in projected).
        out = wrap(_ops.rnn_sequence(projected._t, _ops.transpose(weight_hh._t), state._t, self.nonlinearity))
        return out, out[-1]

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, batched = self._prepare(input)
        output, finals = self._run(x, self._initial(hx, x.shape[1], x, batched))
        h_n = stack(finals)
        return self._finish(output, batched), h_n if batched else h_n.squeeze(1)


class LSTM(RNNBase):
    """PyTorch's LSTM: gates (input, forget, cell, output) from x_t W_ih^T + b_ih + h W_hh^T + b_hh;
    ``forward`` returns (output, (h_n, c_n))."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("LSTM", *args, **kwargs)

    def _layer(self, projected: Tensor, weight_hh: Tensor, bias_hh: Tensor | None, state: Any) -> tuple[Tensor, Any]:
        # Needle's fused sequence op: per step only h @ W_hh and the fused cell, forward and backward (the
        # biases are in projected).
        h0, c0 = state
        hs, cs = _ops.lstm_sequence(projected._t, _ops.transpose(weight_hh._t), h0._t, c0._t)
        out = wrap(hs)
        return out, (out[-1], wrap(cs)[-1])

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        x, batched = self._prepare(input)
        h0 = self._initial(None if hx is None else hx[0], x.shape[1], x, batched)
        c0 = self._initial(None if hx is None else hx[1], x.shape[1], x, batched)
        output, finals = self._run(x, list(zip(h0, c0, strict=True)))
        h_n, c_n = stack([h for h, _ in finals]), stack([c for _, c in finals])
        if not batched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return self._finish(output, batched), (h_n, c_n)


class GRU(RNNBase):
    """PyTorch's GRU: r, z = sigmoid(...), n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)),
    h' = (1 - z) * n + z * h."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("GRU", *args, **kwargs)

    def _layer(self, projected: Tensor, weight_hh: Tensor, bias_hh: Tensor | None, state: Any) -> tuple[Tensor, Any]:
        # Step by step with Needle's ops (there is no fused GRU op).
        steps: list[Tensor] = []
        h = state
        for t in range(projected.shape[0]):
            hidden = F.linear(h, weight_hh, bias_hh)
            x_r, x_z, x_n = projected[t].chunk(3, dim=1)
            h_r, h_z, h_n = hidden.chunk(3, dim=1)
            r = (x_r + h_r).sigmoid()
            z = (x_z + h_z).sigmoid()
            n = (x_n + r * h_n).tanh()
            h = (1 - z) * n + z * h
            steps.append(h)
        return stack(steps), h

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, batched = self._prepare(input)
        output, finals = self._run(x, self._initial(hx, x.shape[1], x, batched))
        h_n = stack(finals)
        return self._finish(output, batched), h_n if batched else h_n.squeeze(1)
