"""Needle's ops as needle.torch calls them. A shape or value error of an op arrives as
``needle.ArgumentError``, which is both the ``ValueError`` Needle's API documents and the ``RuntimeError``
PyTorch raises for the same mistake (the C++ core raises it: python/src/module.cpp), so the ops are called
directly, with nothing between them and this layer."""

from __future__ import annotations

from typing import Any

from needle._core import ArgumentError as TorchRuntimeError
from needle._core import ops as _needle_ops

ops: Any = _needle_ops

__all__ = ["TorchRuntimeError", "ops"]
