"""``torch.optim``'s Optimizer base class and its SGD, Adam and AdamW, with PyTorch's formulas, parameter
groups, per-parameter state and state dicts. The updates run under ``no_grad`` with Needle's ops and write
each parameter's storage in place."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from needle import _core
from needle.autograd import no_grad
from needle.torch._functions import tensor, zeros, zeros_like
from needle.torch._tensor import Tensor, wrap

ParamGroup = dict[str, Any]


class Optimizer:
    """Parameters in groups (each a dict of options plus 'params'), and per-parameter state."""

    def __init__(self, params: Iterable[Tensor] | Iterable[ParamGroup], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[ParamGroup] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)  # type: ignore[arg-type]

    def add_param_group(self, param_group: ParamGroup) -> None:
        """Adds a group; options it does not set take the optimizer's defaults."""
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears every parameter's gradient (to None, or to zeros)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p._t.grad = None  # what ``p.grad = None`` does, without wrapping the old gradient first
                elif p.grad is not None:
                    p.grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            from needle.autograd import enable_grad

            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._update_group(group)
        return loss

    def _update_group(self, group: ParamGroup) -> None:
        """Updates every parameter of ``group`` that has a gradient."""
        for p in group["params"]:
            # p.grad's Needle tensor, unwrapped (the updates hand it to Needle's kernels).
            grad = None if p._computed else p._t.grad
            if grad is not None:
                self._update(p, grad, group, self.state.setdefault(p, {}))

    def _update(self, param: Tensor, grad: _core.Tensor, group: ParamGroup, state: dict[str, Any]) -> None:
        """One parameter's update, given its gradient as a Needle tensor."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """{'state': {index: state}, 'param_groups': [options with 'params' as indices]}, as PyTorch saves it."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores options and state saved by ``state_dict`` (from this layer or from PyTorch)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size of optimizer's group"
                )
        by_index: dict[int, Tensor] = {}
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            for p, i in zip(group["params"], saved["params"], strict=True):
                by_index[i] = p
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {}
        for i, saved_state in state_dict["state"].items():
            p = by_index[int(i)]
            self.state[p] = {
                k: v.to(p.dtype if v.is_floating_point() and k != "step" else v.dtype).to(p.device).clone()
                if isinstance(v, Tensor)
                else v
                for k, v in saved_state.items()
            }

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join([*lines, ")"])


def _write(param: Tensor, value: Tensor) -> None:
    """``param``'s storage takes ``value`` (the optimizer's in-place update)."""
    param._t.data[...] = value._t


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's momentum (buffer = momentum * buffer + (1 - dampening) *
    grad, the first buffer being the gradient itself), nesterov and L2 weight decay."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[ParamGroup],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay}
        super().__init__(params, defaults | {"nesterov": nesterov, "maximize": maximize})

    def _update_group(self, group: ParamGroup) -> None:
        if group["momentum"] or group["maximize"]:
            super()._update_group(group)
            return
        # Plain SGD, the most common group, in one tight loop of Needle's fused kernel.
        lr, wd, state = group["lr"], group["weight_decay"], self.state
        for p in group["params"]:
            grad = None if p._computed else p._t.grad
            if grad is None:
                continue
            state.setdefault(p, {})
            try:
                _core.sgd_update(p._t.cached_data, grad.cached_data, None, lr, 0.0, wd, False)
            except ValueError:  # arrays the kernel cannot update in place (see _core.sgd_update)
                self._update(p, grad, group, state[p])

    def _update(self, param: Tensor, grad_core: _core.Tensor, group: ParamGroup, state: dict[str, Any]) -> None:
        momentum = group["momentum"]
        # Plain SGD (no momentum) took the fused kernel in _update_group already; here it is the general path.
        fusable = not group["maximize"] and not group["nesterov"] and group["dampening"] == 0 and 0 < momentum < 1
        if fusable and self._fused_update(param, grad_core, group, state):
            return
        grad = wrap(grad_core)
        d_p = -grad if group["maximize"] else grad
        if group["weight_decay"]:
            d_p = d_p + param * group["weight_decay"]
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            # PyTorch's first buffer is the gradient itself (no dampening).
            buf = d_p.clone() if buf is None else buf * momentum + d_p * (1 - group["dampening"])
            state["momentum_buffer"] = buf
            d_p = d_p + buf * momentum if group["nesterov"] else buf
        _write(param, param - d_p * group["lr"])

    def _fused_update(self, param: Tensor, grad: _core.Tensor, group: ParamGroup, state: dict[str, Any]) -> bool:
        """The same step in one pass of Needle's SGD kernel (False when the layouts do not allow it). The kernel
        keeps an average, u = m u + (1 - m) g; given g / (1 - m) and weight_decay / (1 - m) it computes PyTorch's
        buffer, u = m u + g + wd p, so the state stays PyTorch's."""
        momentum, lr, wd = group["momentum"], group["lr"], group["weight_decay"]
        p, g = param._t.cached_data, grad.cached_data
        try:
            first = "momentum_buffer" not in state
            buf = _zeros_laid_out_like(param) if first else state["momentum_buffer"]
            scale = 1.0 / (1.0 - momentum)
            _core.sgd_update(p, g * scale, buf._t.cached_data, lr, momentum, wd * scale, first)
        except ValueError:  # arrays the kernel cannot update in place (see _core.sgd_update): the general path
            return False
        state["momentum_buffer"] = buf
        return True


def _zeros_laid_out_like(param: Tensor) -> Tensor:
    """Zeros in ``param``'s shape and memory order, so that optimizer state and parameter stay fusable."""
    array = param._t.cached_data
    order = sorted(range(array.ndim), key=lambda d: (-array.strides[d], d))
    if array.is_compact() or order == list(range(array.ndim)):
        return zeros_like(param)
    stored = zeros([array.shape[d] for d in order], dtype=param.dtype, device=param.device)
    return stored.permute(*[order.index(d) for d in range(array.ndim)])


class Adam(Optimizer):
    """Adam with PyTorch's bias corrections, L2 ``weight_decay`` added to the gradient, ``amsgrad`` and
    ``maximize``; AdamW (below) decays the weights directly instead."""

    _decoupled = False

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[ParamGroup],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad}
        super().__init__(params, defaults | {"maximize": maximize})

    def _update(self, param: Tensor, grad_core: _core.Tensor, group: ParamGroup, state: dict[str, Any]) -> None:
        if not state:
            state["step"] = tensor(0.0)
            state["exp_avg"] = _zeros_laid_out_like(param)
            state["exp_avg_sq"] = _zeros_laid_out_like(param)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = zeros_like(param)
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if not group["amsgrad"] and not group["maximize"]:
            # One pass of Needle's Adam kernel (AdamW's decay included), in place.
            count = state["step"]._t.cached_data
            step = float(count.item()) + 1
            corrections = (1 - beta1**step, 1 - beta2**step)
            p, g = param._t.cached_data, grad_core.cached_data
            m, v = state["exp_avg"]._t.cached_data, state["exp_avg_sq"]._t.cached_data
            try:
                _core.adam_update(p, g, m, v, lr, beta1, beta2, group["eps"], wd, *corrections, self._decoupled)
                count.fill(step)  # in place, as PyTorch's step += 1: no new tensor per parameter per step
                return
            except ValueError:  # arrays the kernel cannot update in place (see _core.adam_update)
                pass
        grad = wrap(grad_core)
        if group["maximize"]:
            grad = -grad
        if wd:
            if self._decoupled:
                param = _decayed(param, 1 - lr * wd)
            else:
                grad = grad + param * wd
        step = float(state["step"].item()) + 1
        state["step"] = tensor(step)
        exp_avg = state["exp_avg"] * beta1 + grad * (1 - beta1)
        exp_avg_sq = state["exp_avg_sq"] * beta2 + grad * grad * (1 - beta2)
        state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = state["max_exp_avg_sq"].maximum(exp_avg_sq)
            second = state["max_exp_avg_sq"]
        else:
            second = exp_avg_sq
        step_size = lr / (1 - beta1**step)
        denom = second.sqrt() / math.sqrt(1 - beta2**step) + group["eps"]
        _write(param, param - exp_avg / denom * step_size)


def _decayed(param: Tensor, factor: float) -> Tensor:
    _write(param, param * factor)
    return param


class AdamW(Adam):
    """Adam with decoupled weight decay: each step first multiplies the weights by 1 - lr * weight_decay
    (default 0.01)."""

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[ParamGroup],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, **options)


__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]
