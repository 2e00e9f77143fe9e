"""Gradient clipping with PyTorch's formulas (the total norm over every gradient, scaled by
max_norm / (total + 1e-6) when above ``max_norm``)."""

from __future__ import annotations

from collections.abc import Iterable

from needle.autograd import no_grad
from needle.torch._functions import stack, tensor
from needle.torch._tensor import Tensor


def _with_grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """Scales the gradients in place so that their total ``norm_type``-norm is at most ``max_norm``;
    returns the total norm before scaling."""
    params = _with_grads(parameters)
    if not params:
        return tensor(0.0)
    with no_grad():
        grads = [p.grad for p in params if p.grad is not None]
        norms = stack([g.norm(norm_type) for g in grads])
        total = norms.max() if norm_type == float("inf") else norms.norm(norm_type)
        if error_if_nonfinite and not bool(total.isfinite().item()):
            raise RuntimeError(
                f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot "
                "be clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
                "`error_if_nonfinite=False`"
            )
        coefficient = (total + 1e-6).reciprocal() * max_norm
        clamped = coefficient.clamp(max=1.0)
        for g in grads:
            g.mul_(clamped.to(g.dtype))
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float, foreach: bool | None = None) -> None:
    """Limits every gradient element to [-clip_value, clip_value], in place."""
    with no_grad():
        for p in _with_grads(parameters):
            grad = p.grad
            if grad is not None:
                grad.clamp_(-clip_value, clip_value)
