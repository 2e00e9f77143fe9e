"""The built-in layers of ``needle.nn`` (Needle's names and signatures, PyTorch's aliases).

Each layer holds its C++ layer (``needle._core``) and forwards to it: the math lives once, in C++.
``Sequential`` and ``Residual`` are plain Python, because their children may be any Module, including
user-defined Python ones.

Initial values follow Needle's course code: each parameter is drawn by ``needle.init`` from NumPy's global
random state with Needle's formula, in the layer's parameter order, so ``np.random.seed(s)`` reproduces
Needle's numbers (e.g. Linear: weight = kaiming_uniform(in, out), then bias = kaiming_uniform(out, 1)
reshaped to (1, out)). Composite layers (attention, transformers) draw for their parts in registration
order.
"""

from __future__ import annotations

import math
from typing import Any

from needle import _core, init
from needle._core import Tensor
from needle.nn.module import CppModule, DeviceLike, Module, as_device

# ---- initialization with Needle's formulas --------------------------------------------------------


def _assign(target: Tensor | None, value: Tensor) -> None:
    if target is not None:
        target.cached_data = value.cached_data.reshape(target.shape)


def _needle_init(module: _core.Module) -> None:
    """Redraws ``module``'s parameters from NumPy's global state with Needle's formulas."""
    if isinstance(module, _core.Linear):
        w, b = module.weight, module.bias
        opts: dict[str, Any] = {"device": w.device, "dtype": w.dtype}
        _assign(w, init.kaiming_uniform(module.in_features, module.out_features, **opts))
        if b is not None:
            _assign(b, init.kaiming_uniform(module.out_features, 1, **opts))
    elif isinstance(module, _core.Conv):
        w, b = module.weight, module.bias
        opts = {"device": w.device, "dtype": w.dtype}
        k, cin, cout = module.kernel_size, module.in_channels, module.out_channels
        _assign(w, init.kaiming_uniform(cin * k * k, cout * k * k, shape=(k, k, cin, cout), **opts))
        if b is not None:
            bound = 1.0 / math.sqrt(cin * k * k)
            _assign(b, init.rand(cout, low=-bound, high=bound, **opts))
    elif isinstance(module, _core.Embedding):
        w = module.weight
        _assign(w, init.randn(module.num_embeddings, module.embedding_dim, device=w.device, dtype=w.dtype))
    elif isinstance(module, _core.RNNCell | _core.LSTMCell):
        bound = math.sqrt(1.0 / module.hidden_size)
        for p in (module.W_ih, module.W_hh, module.bias_ih, module.bias_hh):
            if p is not None:
                _assign(p, init.rand(*p.shape, low=-bound, high=bound, device=p.device, dtype=p.dtype))
    else:
        for _, child in module.named_children():
            _needle_init(child)


class _Layer(CppModule):
    """A built-in layer whose parameters start from Needle's NumPy-drawn initial values."""

    def __init__(self, cpp: _core.Module) -> None:
        _needle_init(cpp)
        super().__init__(cpp)


def _dtype(dtype: str | None) -> str:
    return "float32" if dtype is None else dtype


# ---- basic layers ----------------------------------------------------------------------------------


class Identity(_Layer):
    """x -> x."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(_core.Identity())


class Linear(_Layer):
    """y = x @ weight + bias over the last axis; weight (in_features, out_features), bias (1, out_features)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        self._layer = _core.Linear(in_features, out_features, bias, as_device(device), _dtype(dtype))
        super().__init__(self._layer)
        self.in_features = in_features
        self.out_features = out_features

    @property
    def weight(self) -> Tensor:
        """(in_features, out_features)."""
        return self._layer.weight

    @property
    def bias(self) -> Tensor | None:
        """(1, out_features), or None."""
        return self._layer.bias


class Flatten(_Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    def __init__(self) -> None:
        super().__init__(_core.Flatten())


class ReLU(_Layer):
    """max(x, 0)."""

    def __init__(self) -> None:
        super().__init__(_core.ReLU())


class Tanh(_Layer):
    """tanh(x)."""

    def __init__(self) -> None:
        super().__init__(_core.Tanh())


class Sigmoid(_Layer):
    """1 / (1 + exp(-x))."""

    def __init__(self) -> None:
        super().__init__(_core.Sigmoid())


class GELU(_Layer):
    """Exact GELU, x * Phi(x)."""

    def __init__(self) -> None:
        super().__init__(_core.GELU())


class Sequential(Module):
    """Applies its modules in order (any Modules, Python or built-in); parameters are named "0.weight", ..."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        self.modules_ = tuple(modules)

    def _state_items(self) -> Any:
        for index, module in enumerate(self.modules_):
            yield str(index), module
        for name, value in super()._state_items():
            if name != "modules_":
                yield name, value

    def forward(self, x: Any) -> Any:
        for module in self.modules_:
            x = module(x)
        return x

    def __len__(self) -> int:
        return len(self.modules_)

    def __getitem__(self, index: int) -> Module:
        return self.modules_[index]

    def __iter__(self) -> Any:
        return iter(self.modules_)


class Residual(Module):
    """fn(x) + x."""

    def __init__(self, fn: Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fn(x) + x
        return out


class SoftmaxLoss(_Layer):
    """Mean cross entropy of logits (N, C) and integer labels (N,)."""

    def __init__(self) -> None:
        self._layer = _core.SoftmaxLoss()
        super().__init__(self._layer)

    def forward(self, logits: Tensor, y: Tensor) -> Tensor:
        return self._layer(logits, y)


#: PyTorch's name for SoftmaxLoss.
CrossEntropyLoss = SoftmaxLoss


class MSELoss(_Layer):
    """Mean of squared differences."""

    def __init__(self) -> None:
        self._layer = _core.MSELoss()
        super().__init__(self._layer)

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        return self._layer(prediction, target)


class Dropout(_Layer):
    """Zeroes each element with probability p in training (scaling the rest by 1 / (1 - p)); identity in
    eval mode. Draws from Needle's generator (``needle.manual_seed``)."""

    def __init__(self, p: float = 0.5) -> None:
        self._layer = _core.Dropout(p)
        super().__init__(self._layer)

    @property
    def p(self) -> float:
        """The drop probability, read from and written to the C++ layer (ValueError outside [0, 1))."""
        return self._layer.p

    @p.setter
    def p(self, value: float) -> None:
        self._layer.p = float(value)


class Embedding(_Layer):
    """Rows of weight (num_embeddings, embedding_dim) ~ N(0, 1) picked by integer indices (seq_len, batch)."""

    def __init__(
        self, num_embeddings: int, embedding_dim: int, device: DeviceLike = None, dtype: str | None = "float32"
    ) -> None:
        self._layer = _core.Embedding(num_embeddings, embedding_dim, as_device(device), _dtype(dtype))
        super().__init__(self._layer)
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim

    @property
    def weight(self) -> Tensor:
        """(num_embeddings, embedding_dim)."""
        return self._layer.weight


# ---- normalization ---------------------------------------------------------------------------------


class _BatchNorm(_Layer):
    _layer: _core.BatchNorm

    def __init__(self, layer: _core.BatchNorm) -> None:
        self._layer = layer
        super().__init__(layer)
        self.dim = layer.num_features
        self.eps = layer.eps
        self.momentum = layer.momentum

    @property
    def weight(self) -> Tensor:
        """(dim,), ones at first."""
        return self._layer.weight

    @property
    def bias(self) -> Tensor:
        """(dim,), zeros at first."""
        return self._layer.bias

    @property
    def running_mean(self) -> Tensor:
        """(dim,) buffer."""
        return self._layer.running_mean

    @property
    def running_var(self) -> Tensor:
        """(dim,) buffer."""
        return self._layer.running_var


class BatchNorm1d(_BatchNorm):
    """Batch normalization of x (N, dim) over the batch; running statistics for eval mode."""

    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(_core.BatchNorm1d(dim, eps, momentum, as_device(device), _dtype(dtype)))


class BatchNorm2d(_BatchNorm):
    """Batch normalization of x (N, C, H, W) over every axis but C."""

    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(_core.BatchNorm2d(dim, eps, momentum, as_device(device), _dtype(dtype)))


class LayerNorm1d(_Layer):
    """Normalization over the last axis of x (..., dim), then * weight + bias."""

    def __init__(self, dim: int, eps: float = 1e-5, device: DeviceLike = None, dtype: str | None = "float32") -> None:
        self._layer = _core.LayerNorm1d(dim, eps, as_device(device), _dtype(dtype))
        super().__init__(self._layer)
        self.dim = dim
        self.eps = eps

    @property
    def weight(self) -> Tensor:
        """(dim,), ones at first."""
        return self._layer.weight

    @property
    def bias(self) -> Tensor:
        """(dim,), zeros at first."""
        return self._layer.bias


#: PyTorch's name for LayerNorm1d (normalizing over the last axis only).
LayerNorm = LayerNorm1d


# ---- convolution and pooling -----------------------------------------------------------------------


class Conv(_Layer):
    """Needle's Conv: NCHW in and out, "same" padding kernel_size // 2; weight (k, k, in, out)."""

    _layer: _core.Conv

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        self._layer = _core.Conv(in_channels, out_channels, kernel_size, stride, bias, as_device(device), _dtype(dtype))
        self._init_attributes()

    def _init_attributes(self) -> None:
        super().__init__(self._layer)
        self.in_channels = self._layer.in_channels
        self.out_channels = self._layer.out_channels
        self.kernel_size = self._layer.kernel_size
        self.stride = self._layer.stride
        self.padding = self._layer.padding

    @property
    def weight(self) -> Tensor:
        """(kernel_size, kernel_size, in_channels, out_channels)."""
        return self._layer.weight

    @property
    def bias(self) -> Tensor | None:
        """(out_channels,), or None."""
        return self._layer.bias


class Conv2d(Conv):
    """Conv with PyTorch's explicit ``padding`` (default 0)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        self._layer = _core.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, bias, as_device(device), _dtype(dtype)
        )
        self._init_attributes()


class MaxPool2d(_Layer):
    """Maximum over kernel_size x kernel_size windows of x (N, C, H, W); stride defaults to kernel_size."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__(_core.MaxPool2d(kernel_size, stride, padding))


class AvgPool2d(_Layer):
    """Mean over kernel_size x kernel_size windows of x (N, C, H, W); stride defaults to kernel_size."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__(_core.AvgPool2d(kernel_size, stride, padding))


# ---- recurrent layers ------------------------------------------------------------------------------


class _Cell(_Layer):
    _layer: _core.RNNCell | _core.LSTMCell

    @property
    def W_ih(self) -> Tensor:
        """(input_size, G * hidden_size)."""
        return self._layer.W_ih

    @property
    def W_hh(self) -> Tensor:
        """(hidden_size, G * hidden_size)."""
        return self._layer.W_hh

    @property
    def bias_ih(self) -> Tensor | None:
        """(G * hidden_size,), or None."""
        return self._layer.bias_ih

    @property
    def bias_hh(self) -> Tensor | None:
        """(G * hidden_size,), or None."""
        return self._layer.bias_hh


class RNNCell(_Cell):
    """h' = nonlinearity(x @ W_ih + bias_ih + h @ W_hh + bias_hh); nonlinearity "tanh" or "relu"."""

    _layer: _core.RNNCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        self._layer = _core.RNNCell(input_size, hidden_size, bias, nonlinearity, as_device(device), _dtype(dtype))
        super().__init__(self._layer)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity

    def forward(self, X: Tensor, h: Tensor | None = None) -> Tensor:
        """X (batch, input_size), h (batch, hidden_size) or None (zeros) -> h' (batch, hidden_size)."""
        return self._layer(X, h)


class LSTMCell(_Cell):
    """Gates i, f, g, o: c' = f * c + i * g, h' = o * tanh(c')."""

    _layer: _core.LSTMCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        self._layer = _core.LSTMCell(input_size, hidden_size, bias, as_device(device), _dtype(dtype))
        super().__init__(self._layer)
        self.input_size = input_size
        self.hidden_size = hidden_size

    def forward(
        self,
        X: Tensor,
        h: tuple[Tensor | None, Tensor | None] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """X (batch, input_size), h = (h0, c0) or None -> (h', c')."""
        return self._layer(X, h)


class RNN(_Layer):
    """num_layers stacked RNNCells over X (seq_len, batch, input_size) -> (output, h_n)."""

    _layer: _core.RNN

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
        self._layer = _core.RNN(
            input_size, hidden_size, num_layers, bias, nonlinearity, as_device(device), _dtype(dtype)
        )
        super().__init__(self._layer)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers

    def forward(self, X: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """X (seq_len, batch, input_size), h0 (num_layers, batch, hidden_size) or None ->
        (output (seq_len, batch, hidden_size), h_n (num_layers, batch, hidden_size))."""
        self._sync_mode()
        return self._layer(X, h0)


class LSTM(_Layer):
    """num_layers stacked LSTMCells over X (seq_len, batch, input_size) -> (output, (h_n, c_n))."""

    _layer: _core.LSTM

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        self._layer = _core.LSTM(input_size, hidden_size, num_layers, bias, as_device(device), _dtype(dtype))
        super().__init__(self._layer)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers

    def forward(
        self,
        X: Tensor,
        h: tuple[Tensor | None, Tensor | None] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """X (seq_len, batch, input_size), h = (h0, c0) each (num_layers, batch, hidden_size), or None ->
        (output, (h_n, c_n))."""
        self._sync_mode()
        return self._layer(X, h)


# ---- attention and transformers --------------------------------------------------------------------


class MultiHeadAttention(_Layer):
    """Multi-head attention over (batch, seq, embed_dim) with q/k/v/out projections (no bias by default, as
    Needle's AttentionLayer), optional causal mask and dropout on the attention probabilities."""

    _layer: _core.MultiHeadAttention

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        causal: bool = False,
        dropout: float = 0.0,
        bias: bool = False,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        self._layer = _core.MultiHeadAttention(
            embed_dim, num_heads, causal, dropout, bias, as_device(device), _dtype(dtype)
        )
        super().__init__(self._layer)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.causal = causal

    def forward(self, q: Tensor, k: Tensor | None = None, v: Tensor | None = None) -> Tensor:
        """q (batch, L, embed_dim), k and v (batch, S, embed_dim); k defaults to q and v to k."""
        self._sync_mode()
        return self._layer(q, k, v)


class TransformerLayer(_Layer):
    """Pre-LayerNorm block: x + attn(ln1(x)), then x + mlp(ln2(x)) (Linear -> GELU -> Dropout -> Linear)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        hidden_size: int,
        dropout: float = 0.0,
        causal: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(
            _core.TransformerLayer(dim, num_heads, hidden_size, dropout, causal, as_device(device), _dtype(dtype))
        )


class Transformer(_Layer):
    """Decoder-only transformer language model: token ids (batch, seq) -> logits (batch, seq, vocab_size)."""

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        num_layers: int,
        num_heads: int,
        hidden_size: int,
        max_seq_len: int = 2048,
        dropout: float = 0.0,
        causal: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(
            _core.Transformer(
                vocab_size,
                dim,
                num_layers,
                num_heads,
                hidden_size,
                max_seq_len,
                dropout,
                causal,
                as_device(device),
                _dtype(dtype),
            )
        )
        self.vocab_size = vocab_size
