"""Needle's ops as needle.torch calls them: a shape or value error of an op is raised as
``TorchRuntimeError``, which is both the ``ValueError`` Needle raises and the ``RuntimeError`` PyTorch
raises for the same mistake, so that either ``except`` clause catches it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from needle._core import ops as _needle_ops


class TorchRuntimeError(ValueError, RuntimeError):
    """An op's error on bad shapes or values: PyTorch's RuntimeError and Needle's ValueError at once."""


class _Ops:
    """``needle._core.ops`` with each function's ValueError raised as TorchRuntimeError."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        function = getattr(_needle_ops, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except ValueError as error:
                if isinstance(error, TorchRuntimeError):
                    raise
                raise TorchRuntimeError(str(error)) from None

        call.__name__ = name
        setattr(self, name, call)  # looked up once per name
        return call


ops: Any = _Ops()
