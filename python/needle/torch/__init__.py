"""PyTorch's API over Needle's engine: ``import needle.torch as torch``.

A PyTorch training script runs on Needle with that one changed import and gives PyTorch's numbers: the
names, argument conventions, layouts (``Linear`` weights (out, in), ``Conv2d`` NCHW/OIHW), defaults and
formulas (SGD momentum, Adam, BatchNorm's unbiased running variance) are PyTorch's, while every op, the
graph and the kernels are Needle's, so ``needle.trace()`` shows the script down to each kernel. The
course's API (``import needle``) is unchanged beside it. docs/torch.md lists what is covered and what
differs. A PyTorch name this layer does not offer raises ``NotImplementedError`` naming it.
"""

from __future__ import annotations

import builtins
import contextlib
import types
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from needle import _core
from needle.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from needle.torch import _functions
from needle.torch._dtype import (
    Size,
    bool,
    device,
    dtype,
    float32,
    float64,
    get_default_dtype,
    int8,
    int32,
    int64,
    set_default_dtype,
    uint8,
)
from needle.torch._functions import (
    arange,
    argsort,
    as_tensor,
    broadcast_shapes,
    cat,
    chunk,
    concat,
    concatenate,
    einsum,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    gather,
    is_floating_point,
    is_tensor,
    linspace,
    nonzero,
    numel,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    sort,
    split,
    stack,
    tensor,
    topk,
    tril,
    triu,
    unbind,
    where,
    zeros,
    zeros_like,
)
from needle.torch._tensor import Tensor, Unsupported

# PyTorch's other names of the dtypes.
float = float32
double = float64
long = int64
int = int32

globals().update(_functions.FUNCTIONS)  # torch.exp, torch.sum, torch.max, ... : the Tensor methods as functions

_F = TypeVar("_F", bound=Callable[..., Any])


def manual_seed(seed: builtins.int) -> None:
    """Seeds Needle's generator, which ``rand``, ``randn``, ``randperm``, dropout and ``nn.init`` draw from.
    The streams are Needle's, not PyTorch's: the same seed gives other numbers than in PyTorch."""
    _core.manual_seed(seed)


seed = manual_seed


class inference_mode(contextlib.ContextDecorator):
    """``no_grad`` (Needle has one mode for both): a context manager and a decorator."""

    def __init__(self, mode: builtins.bool = True) -> None:
        self._mode = set_grad_enabled(not mode)

    def __enter__(self) -> None:
        self._mode.__enter__()

    def __exit__(self, *args: Any) -> None:
        self._mode.__exit__(*args)


def is_inference_mode_enabled() -> builtins.bool:
    """Whether gradients are off (Needle's inference mode is no_grad)."""
    return not is_grad_enabled()


def compile(model: _F, *args: Any, **kwargs: Any) -> _F:
    """The model unchanged: Needle runs eagerly."""
    return model


def set_num_threads(count: builtins.int) -> None:
    """The number of threads Needle's CPU kernels use."""
    _core.set_num_threads(count)


def get_num_threads() -> builtins.int:
    """The number of threads Needle's CPU kernels use."""
    return _core.get_num_threads()


def _cuda_available() -> builtins.bool:
    return _core.Device("cuda").enabled()


def _cuda_device_count() -> builtins.int:
    count = 0
    while _core.Device(f"cuda:{count}").enabled():
        count += 1
    return count


cuda = types.SimpleNamespace(
    is_available=_cuda_available,
    device_count=_cuda_device_count,
    manual_seed=manual_seed,
    manual_seed_all=manual_seed,
    synchronize=lambda device=None: None,
    empty_cache=lambda: None,
)

# Switches scripts set for PyTorch's own kernels; Needle's ignore them.
backends = types.SimpleNamespace(
    cudnn=types.SimpleNamespace(benchmark=False, deterministic=False, enabled=True),
    mps=types.SimpleNamespace(is_available=lambda: False),
)


def use_deterministic_algorithms(mode: builtins.bool, *, warn_only: builtins.bool = False) -> None:
    """Needle's kernels are deterministic for a given thread count: nothing to switch."""


from needle.torch import nn, optim, utils  # noqa: E402 (they import the names above)
from needle.torch.serialization import load, save  # noqa: E402


def __getattr__(name: str) -> NoReturn:
    if name.startswith("__"):
        raise AttributeError(name)
    raise Unsupported(f"torch.{name} is not supported by needle.torch")


__all__ = [
    "Size",
    "Tensor",
    "arange",
    "argsort",
    "as_tensor",
    "backends",
    "bool",
    "broadcast_shapes",
    "cat",
    "chunk",
    "compile",
    "concat",
    "concatenate",
    "cuda",
    "device",
    "double",
    "dtype",
    "einsum",
    "empty",
    "empty_like",
    "enable_grad",
    "eye",
    "float",
    "float32",
    "float64",
    "from_numpy",
    "full",
    "full_like",
    "gather",
    "get_default_dtype",
    "get_num_threads",
    "inference_mode",
    "int",
    "int8",
    "int32",
    "int64",
    "is_floating_point",
    "is_grad_enabled",
    "is_inference_mode_enabled",
    "is_tensor",
    "linspace",
    "load",
    "long",
    "manual_seed",
    "nn",
    "no_grad",
    "nonzero",
    "numel",
    "ones",
    "ones_like",
    "optim",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "randperm",
    "save",
    "seed",
    "set_default_dtype",
    "set_grad_enabled",
    "set_num_threads",
    "sort",
    "split",
    "stack",
    "tensor",
    "topk",
    "tril",
    "triu",
    "uint8",
    "unbind",
    "use_deterministic_algorithms",
    "utils",
    "where",
    "zeros",
    "zeros_like",
]
