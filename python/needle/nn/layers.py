"""The basic built-in layers of ``needle.nn`` (Needle's names and signatures, PyTorch's aliases);
normalization, convolution, recurrent and attention layers live in ``norm``, ``conv``, ``rnn`` and
``transformer`` beside this module.

Each layer holds its C++ layer (``needle._core``) and forwards to it: the math, the initial values' formulas
and the layer's settings live once, in C++ (see ``_layer``). ``Sequential`` and ``Residual`` are plain
Python, because their children may be any Module, including user-defined Python ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from needle import _core
from needle._core import NDArray, Tensor
from needle.nn._layer import CppAttribute, Layer, placement
from needle.nn.module import DeviceLike, Module


class Identity(Layer):
    """x -> x."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(_core.Identity)


class Linear(Layer):
    """y = x @ weight + bias over the last axis; weight (in_features, out_features), bias (1, out_features)."""

    _cpp: _core.Linear

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(_core.Linear, in_features, out_features, bias, *placement(device, dtype))

    in_features = CppAttribute[int]("Size of each input sample.")
    out_features = CppAttribute[int]("Size of each output sample.")
    weight = CppAttribute[Tensor]("(in_features, out_features).")
    bias = CppAttribute[Tensor | None]("(1, out_features), or None.")


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    def __init__(self) -> None:
        super().__init__(_core.Flatten)


class ReLU(Layer):
    """max(x, 0)."""

    def __init__(self) -> None:
        super().__init__(_core.ReLU)


class Tanh(Layer):
    """tanh(x)."""

    def __init__(self) -> None:
        super().__init__(_core.Tanh)


class Sigmoid(Layer):
    """1 / (1 + exp(-x))."""

    def __init__(self) -> None:
        super().__init__(_core.Sigmoid)


class GELU(Layer):
    """Exact GELU, x * Phi(x)."""

    def __init__(self) -> None:
        super().__init__(_core.GELU)


class Sequential(Module):
    """Applies its modules in order (any Modules, Python or built-in); parameters are named "0.weight", ...

    ``modules`` is the tuple of children, as in the course (``model.modules[1].modules[0]``)."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        self.modules = tuple(modules)

    def _state_items(self) -> Any:
        # The children are named by their index ("0", "1", ...) rather than "modules.0".
        for index, module in enumerate(self.modules):
            yield str(index), module
        for name, value in super()._state_items():
            if name != "modules":
                yield name, value

    def forward(self, x: Any) -> Any:
        for module in self.modules:
            x = module(x)
        return x

    def __len__(self) -> int:
        return len(self.modules)

    def __getitem__(self, index: int) -> Module:
        return self.modules[index]

    def __iter__(self) -> Any:
        return iter(self.modules)


class Residual(Module):
    """fn(x) + x."""

    def __init__(self, fn: Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fn(x) + x
        return out


class SoftmaxLoss(Layer):
    """Mean cross entropy of logits (N, C) and integer labels (N,)."""

    def __init__(self) -> None:
        super().__init__(_core.SoftmaxLoss)

    def forward(self, logits: Tensor, y: Tensor) -> Tensor:
        out: Tensor = self._cpp(logits, y)
        return out


#: PyTorch's name for SoftmaxLoss.
CrossEntropyLoss = SoftmaxLoss


class MSELoss(Layer):
    """Mean of squared differences."""

    def __init__(self) -> None:
        super().__init__(_core.MSELoss)

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        out: Tensor = self._cpp(prediction, target)
        return out


class Dropout(Layer):
    """Zeroes each element with probability p in training (scaling the rest by 1 / (1 - p)); identity in
    eval mode.

    The mask is drawn from NumPy's global random state as in the course (``np.random.rand(*x.shape) <= 1 - p``,
    drawn on every training call, even when p == 0), so ``np.random.seed(s)`` repeats the course's numbers
    (``needle.manual_seed`` seeds that state too). C++ programs, and ``needle.ops.dropout``, draw from
    Needle's C++ generator instead."""

    _cpp: _core.Dropout

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(_core.Dropout, p)

    p = CppAttribute[float]("The drop probability, read from and written to the C++ layer (ValueError outside [0, 1)).")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        keep = 1.0 - self.p
        # One multiply by mask / keep: the same value as the course's x * mask / keep up to rounding, one node.
        scale = (np.random.rand(*x.shape) <= keep) / keep  # noqa: NPY002 (the course draws from NumPy's global state)
        return x * Tensor.make_const(NDArray(scale, device=x.device, dtype=x.dtype), requires_grad=False)


class Embedding(Layer):
    """Rows of weight (num_embeddings, embedding_dim) ~ N(0, 1) picked by integer indices (seq_len, batch)."""

    _cpp: _core.Embedding

    def __init__(
        self, num_embeddings: int, embedding_dim: int, device: DeviceLike = None, dtype: str | None = "float32"
    ) -> None:
        super().__init__(_core.Embedding, num_embeddings, embedding_dim, *placement(device, dtype))

    num_embeddings = CppAttribute[int]("Number of rows.")
    embedding_dim = CppAttribute[int]("Size of each row.")
    weight = CppAttribute[Tensor]("(num_embeddings, embedding_dim).")
