"""Learning-rate schedulers (PyTorch's protocol): call ``scheduler.step()`` after ``optimizer.step()``; the
schedule is a closed form of the number of ``step()`` calls, computed in C++."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from needle import _core
from needle._core import NDArray
from needle.optim.optimizer import CppOptimizer, Optimizer, _state_array


def _cpp_optimizer(optimizer: Optimizer) -> _core.Optimizer:
    if not isinstance(optimizer, CppOptimizer):
        raise TypeError(
            f"learning-rate schedulers drive the built-in optimizers (SGD, Adam, AdamW), got {type(optimizer).__name__}"
        )
    return optimizer._cpp


class LRScheduler:
    """Base class: ``step()``, ``get_last_lr()``, ``last_epoch``."""

    _cpp: _core.LRScheduler

    def __init__(self, optimizer: Optimizer, cpp: _core.LRScheduler) -> None:
        self.optimizer = optimizer
        self._cpp = cpp

    def step(self) -> None:
        """Advances the schedule by one and sets the optimizer's learning rate."""
        self._cpp.step()

    def get_last_lr(self) -> list[float]:
        """The learning rate now in use (a one-element list, as PyTorch's)."""
        return [self._cpp.get_lr()]

    def lr_at(self, epoch: int) -> float:
        """The learning rate ``epoch`` steps after construction."""
        return self._cpp.lr_at(epoch)

    def state_dict(self) -> dict[str, NDArray]:
        """``last_epoch`` and ``base_lr`` as 0-d NDArrays (with the constructor's arguments they decide every
        later learning rate)."""
        return dict(self._cpp.state_dict())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores a ``state_dict()`` and sets the optimizer's learning rate to that step's; ValueError,
        changing nothing, when an entry is missing, unknown or malformed."""
        self._cpp.load_state_dict(
            {str(key): _state_array("LRScheduler", str(key), value) for key, value in state.items()}
        )

    @property
    def last_epoch(self) -> int:
        """Number of step() calls so far."""
        return self._cpp.last_epoch

    @property
    def base_lr(self) -> float:
        """The optimizer's learning rate when the scheduler was created."""
        return self._cpp.base_lr


class StepLR(LRScheduler):
    """base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer, _core.StepLR(_cpp_optimizer(optimizer), step_size, gamma))


class CosineAnnealingLR(LRScheduler):
    """eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer, _core.CosineAnnealingLR(_cpp_optimizer(optimizer), T_max, eta_min))


class LinearWarmup(LRScheduler):
    """Linear warm-up from start_factor * base_lr to base_lr over warmup_steps steps; afterwards base_lr, or
    the schedule ``then`` (built on the same optimizer), which starts counting when the warm-up ends."""

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        start_factor: float = 1.0 / 3.0,
        then: LRScheduler | None = None,
    ) -> None:
        cpp_then = None if then is None else then._cpp
        super().__init__(optimizer, _core.LinearWarmup(_cpp_optimizer(optimizer), warmup_steps, start_factor, cpp_then))
        self.then = then
