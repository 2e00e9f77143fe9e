"""Optimizers (``needle.optim``): Needle's ``Optimizer`` base class and SGD, Adam and AdamW, whose updates
run in C++ kernels on the parameters' values, in place (the Tensor objects stay the same)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, overload

import numpy as np

from needle import _core
from needle._core import NDArray, Tensor


def _state_array(owner: str, name: str, value: Any) -> NDArray:
    if isinstance(value, Tensor):
        return value.cached_data
    if isinstance(value, NDArray):
        return value
    if isinstance(value, np.ndarray | np.generic | int | float):
        return _core.array(np.asarray(value))
    raise TypeError(f"{owner}.load_state_dict: '{name}' is a {type(value).__name__}, expected an NDArray or an array")


class Optimizer:
    """Base class, as in Needle: holds ``params``; subclasses implement ``step()``.

    A Python subclass may implement ``step`` itself (reading ``p.grad`` and assigning ``p.data``); the
    built-in optimizers delegate to C++.
    """

    def __init__(self, params: Iterable[Tensor]) -> None:
        self.params = list(params)
        self._lr = 0.0

    def step(self) -> None:
        """One update of every parameter."""
        raise NotImplementedError(f"{type(self).__name__}.step is not implemented")

    def reset_grad(self) -> None:
        """Drops every parameter's gradient (Needle's name)."""
        for p in self.params:
            p.grad = None

    def zero_grad(self) -> None:
        """PyTorch's name for ``reset_grad`` (gradients become None)."""
        self.reset_grad()

    def clip_grad_norm(self, max_norm: float = 0.25) -> float:
        """The course's method: ``clip_grad_norm(self.params, max_norm)`` (returns the norm before clipping)."""
        return clip_grad_norm(self.params, max_norm)

    @property
    def lr(self) -> float:
        """The learning rate."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = float(value)

    def state_dict(self) -> dict[str, NDArray]:
        """The state a resumed run needs, as NDArrays by name (a Python subclass with state implements it)."""
        raise NotImplementedError(f"{type(self).__name__}.state_dict is not implemented")

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores a ``state_dict()`` (a Python subclass with state implements it)."""
        raise NotImplementedError(f"{type(self).__name__}.load_state_dict is not implemented")


class CppOptimizer(Optimizer):
    """An optimizer whose update runs in C++ (``_cpp``); the learning-rate schedulers drive these."""

    _cpp: _core.Optimizer

    def __init__(self, params: Iterable[Tensor], cpp: _core.Optimizer) -> None:
        self.params = list(params)
        self._cpp = cpp

    def step(self) -> None:
        """One update of every parameter that has a gradient (parameters without one are skipped)."""
        self._cpp.step()

    def reset_grad(self) -> None:
        self._cpp.reset_grad()

    def state_dict(self) -> dict[str, NDArray]:
        """Everything a resumed run needs to continue exactly where this one stopped, as NDArrays by name
        (so it fits a safetensors file, e.g. ``needle.save(opt.state_dict(), path)``): ``lr`` and
        ``param_count``, the per-parameter buffers ``state.<index>.<field>`` (SGD's ``momentum_buffer``,
        Adam's ``exp_avg`` and ``exp_avg_sq``, for the parameters updated so far) and Adam's ``step``.
        The arrays are never changed in place by later steps."""
        return dict(self._cpp.state_dict())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores a ``state_dict()`` of the same kind of optimizer over parameters of the same count,
        shapes and dtypes (values may be NDArrays, Tensors or NumPy arrays, e.g. from ``needle.load``).
        Raises ValueError, leaving the optimizer unchanged, when the state does not match."""
        name = type(self).__name__
        self._cpp.load_state_dict({str(key): _state_array(name, str(key), value) for key, value in state.items()})

    @property
    def lr(self) -> float:
        """The learning rate (schedulers set it; ValueError when negative)."""
        return self._cpp.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._cpp.lr = float(value)


class _CppHyperParameter:
    """A hyper-parameter that lives in the C++ optimizer only: reading and writing it go to ``_cpp``, which
    validates (ValueError), so there is no Python copy that could disagree with what ``step()`` uses."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _CppHyperParameter: ...
    @overload
    def __get__(self, obj: CppOptimizer, objtype: type | None = None) -> float: ...
    def __get__(self, obj: CppOptimizer | None, objtype: type | None = None) -> float | _CppHyperParameter:
        if obj is None:
            return self
        return float(getattr(obj._cpp, self._name))

    def __set__(self, obj: CppOptimizer, value: float) -> None:
        setattr(obj._cpp, self._name, float(value))


class _StateView(MutableMapping[Tensor, Tensor]):
    """One per-parameter buffer of a C++ optimizer under the course's name (SGD's ``u``, Adam's ``m`` and ``v``),
        keyed by the parameter Tensor itself.

        Reading gives the buffer's current value as a Tensor that does not require a gradient (a snapshot: later
        steps do not change it); assigning (``opt.u[p] = value``, a Tensor, NDArray or NumPy array of ``p``'s shape
        and dtype) writes the C++ state, so the next ``step()`` uses it. A parameter has an entry once a step has
        updated it (or once one is assigned). Adam's ``m`` and ``v`` go in pairs: assigning one where the other has
        no entry yet gives that one zeros, the value a fresh Adam starts from; they can be assigned once a step has
    been taken (before it the C++ optimizer holds no moments). Entries cannot be deleted."""

    def __init__(self, optimizer: CppOptimizer, name: str, field: str, partners: tuple[str, ...] = ()) -> None:
        self._optimizer = optimizer
        self._name = name  # the course's name
        self._field = field  # the C++ state's name
        self._partners = partners
        # Parameters are matched by identity: Tensor's == is element-wise.
        self._index = {id(p): i for i, p in enumerate(optimizer.params)}

    def _key(self, param: object) -> str:
        index = self._index.get(id(param))
        if index is None:
            raise KeyError("not a parameter of this optimizer")
        return f"state.{index}.{self._field}"

    def __getitem__(self, param: Tensor) -> Tensor:
        array = self._optimizer._cpp.state_dict().get(self._key(param))
        if array is None:
            raise KeyError("this parameter has no optimizer state yet (no step has updated it)")
        return Tensor.make_const(array, requires_grad=False)

    def __setitem__(self, param: Tensor, value: Any) -> None:
        key = self._key(param)
        name = type(self._optimizer).__name__
        state = dict(self._optimizer._cpp.state_dict())
        if self._partners and int(state["step"].item()) == 0:
            raise ValueError(f"{name}.{self._name}: the moments can be assigned after the first step() only")
        state[key] = _state_array(name, key, value)
        for partner in self._partners:
            partner_key = key.rsplit(".", 1)[0] + "." + partner
            if partner_key not in state:
                state[partner_key] = _core.zeros(list(param.shape), dtype=param.dtype, device=param.device)
        self._optimizer._cpp.load_state_dict(state)

    def __delitem__(self, param: Tensor) -> None:
        raise TypeError(f"{type(self._optimizer).__name__}: optimizer state cannot be deleted (assign zeros instead)")

    def __iter__(self) -> Iterator[Tensor]:
        state = self._optimizer._cpp.state_dict()
        return iter([p for i, p in enumerate(self._optimizer.params) if f"state.{i}.{self._field}" in state])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"<{type(self._optimizer).__name__}.{self._name}: state of {len(self)} parameters>"


class SGD(CppOptimizer):
    """Needle's SGD: with g = grad + weight_decay * p, u <- momentum * u + (1 - momentum) * g, p <- p - lr * u
    (the velocity is an average of gradients, as in Needle's course code; PyTorch's differs when
    momentum > 0)."""

    def __init__(
        self, params: Iterable[Tensor], lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        params = list(params)
        super().__init__(params, _core.SGD(params, lr, momentum, weight_decay))

    momentum = _CppHyperParameter()
    weight_decay = _CppHyperParameter()

    @property
    def u(self) -> _StateView:
        """The velocity of each parameter (the course's ``u``; kept only when momentum > 0), keyed by parameter:
        see ``_StateView``."""
        return _StateView(self, "u", "momentum_buffer")


class Adam(CppOptimizer):
    """Needle's Adam with bias correction; weight_decay adds weight_decay * p to the gradient."""

    _cpp: _core.Adam

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        params = list(params)
        super().__init__(params, _core.Adam(params, lr, beta1, beta2, eps, weight_decay))

    beta1 = _CppHyperParameter()
    beta2 = _CppHyperParameter()
    eps = _CppHyperParameter()
    weight_decay = _CppHyperParameter()

    @property
    def m(self) -> _StateView:
        """The first-moment estimate of each parameter (the course's ``m``), keyed by parameter: see
        ``_StateView``."""
        return _StateView(self, "m", "exp_avg", partners=("exp_avg_sq",))

    @property
    def v(self) -> _StateView:
        """The second-moment estimate of each parameter (the course's ``v``), keyed by parameter: see
        ``_StateView``."""
        return _StateView(self, "v", "exp_avg_sq", partners=("exp_avg",))

    @property
    def t(self) -> int:
        """Steps taken so far (the course's ``t``; the bias corrections use it). Writable: the next step is
        step ``t + 1``."""
        return int(self._cpp.steps)

    @t.setter
    def t(self, value: int) -> None:
        state = dict(self._cpp.state_dict())
        state["step"] = _core.array(np.asarray(int(value), dtype=np.int64))
        self._cpp.load_state_dict(state)


class AdamW(Adam):
    """Adam with decoupled weight decay (PyTorch's AdamW): p <- p - lr * weight_decay * p, then Adam's
    update with the raw gradient. Its hyper-parameters are Adam's."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        params = list(params)
        CppOptimizer.__init__(self, params, _core.AdamW(params, lr, beta1, beta2, eps, weight_decay))


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> float:
    """Scales the gradients so that their global 2-norm is at most ``max_norm`` (factor
    max_norm / (norm + 1e-6), as PyTorch's clip_grad_norm_); returns the norm before clipping."""
    return _core.clip_grad_norm(list(params), max_norm)


#: PyTorch's name.
clip_grad_norm_ = clip_grad_norm
