"""Recurrent layers of ``needle.nn`` (Needle's hw4): RNNCell, LSTMCell and the stacked RNN and LSTM over
sequences (seq_len, batch, input_size).

Every parameter is assignable (``cell.W_ih = Tensor(...)``, also through ``rnn.rnn_cells[k]``): the C++ layer
reads its parameters at each forward, the fused sequence kernels included, so the next call uses the new
tensor and backward gives it its gradient."""

from __future__ import annotations

from typing import TypeVar

from needle import _core
from needle._core import Tensor
from needle.nn._layer import CppAttribute, Layer, placement
from needle.nn.module import CppModule, DeviceLike

CellT = TypeVar("CellT", bound="_Cell")


class _Cell(Layer):
    _cpp: _core.RNNCell | _core.LSTMCell

    input_size = CppAttribute[int]("Features of each input.")
    hidden_size = CppAttribute[int]("Features of the hidden state.")
    W_ih = CppAttribute[Tensor]("(input_size, G * hidden_size).")
    W_hh = CppAttribute[Tensor]("(hidden_size, G * hidden_size).")
    bias_ih = CppAttribute[Tensor | None]("(G * hidden_size,), or None.")
    bias_hh = CppAttribute[Tensor | None]("(G * hidden_size,), or None.")


class RNNCell(_Cell):
    """h' = nonlinearity(x @ W_ih + bias_ih + h @ W_hh + bias_hh); nonlinearity "tanh" or "relu"."""

    _cpp: _core.RNNCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(_core.RNNCell, input_size, hidden_size, bias, nonlinearity, *placement(device, dtype))

    nonlinearity = CppAttribute[str]('"tanh" or "relu".')

    def forward(self, X: Tensor, h: Tensor | None = None) -> Tensor:
        """X (batch, input_size), h (batch, hidden_size) or None (zeros) -> h' (batch, hidden_size)."""
        return self._cpp(X, h)


class LSTMCell(_Cell):
    """Gates i, f, g, o: c' = f * c + i * g, h' = o * tanh(c')."""

    _cpp: _core.LSTMCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(_core.LSTMCell, input_size, hidden_size, bias, *placement(device, dtype))

    def forward(
        self,
        X: Tensor,
        h: tuple[Tensor | None, Tensor | None] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """X (batch, input_size), h = (h0, c0) or None -> (h', c')."""
        return self._cpp(X, h)


class _Stack(Layer):
    _cpp: _core.RNN | _core.LSTM

    input_size = CppAttribute[int]("Features of each input.")
    hidden_size = CppAttribute[int]("Features of each layer's hidden state.")
    num_layers = CppAttribute[int]("Number of stacked cells.")

    def _cells(self, cell_type: type[CellT]) -> list[CellT]:
        """The stack's cells, each a Python layer over the C++ cell the stack computes with (new wrappers
        on each call; what is assigned through them lives in the C++ cells)."""
        cells = []
        for layer in range(self.num_layers):
            cell = cell_type.__new__(cell_type)
            CppModule.__init__(cell, self._cpp.cell(layer))
            cell.training = self.training
            cells.append(cell)
        return cells


class RNN(_Stack):
    """num_layers stacked RNNCells over X (seq_len, batch, input_size) -> (output, h_n)."""

    _cpp: _core.RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(_core.RNN, input_size, hidden_size, num_layers, bias, nonlinearity, *placement(device, dtype))

    @property
    def rnn_cells(self) -> list[RNNCell]:
        """The stacked cells, first layer first (course name)."""
        return self._cells(RNNCell)

    def forward(self, X: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """X (seq_len, batch, input_size), h0 (num_layers, batch, hidden_size) or None ->
        (output (seq_len, batch, hidden_size), h_n (num_layers, batch, hidden_size))."""
        self._sync_mode()
        return self._cpp(X, h0)


class LSTM(_Stack):
    """num_layers stacked LSTMCells over X (seq_len, batch, input_size) -> (output, (h_n, c_n))."""

    _cpp: _core.LSTM

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(_core.LSTM, input_size, hidden_size, num_layers, bias, *placement(device, dtype))

    @property
    def lstm_cells(self) -> list[LSTMCell]:
        """The stacked cells, first layer first (course name)."""
        return self._cells(LSTMCell)

    def forward(
        self,
        X: Tensor,
        h: tuple[Tensor | None, Tensor | None] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """X (seq_len, batch, input_size), h = (h0, c0) each (num_layers, batch, hidden_size), or None ->
        (output, (h_n, c_n))."""
        self._sync_mode()
        return self._cpp(X, h)
