"""Checkpoints: ``needle.save(obj, path)`` and ``needle.load(path)``, in the safetensors format.

``obj`` is a dict of Tensors, NDArrays or NumPy arrays by name (a model's ``state_dict()``), or a Module
(its state dict is saved). ``load`` returns a dict of NDArrays, ready for ``Module.load_state_dict``. The
file is read and checked entirely in C++ before anything is returned: a missing, truncated or corrupt file
raises ValueError naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from needle import _core
from needle._core import NDArray, Tensor
from needle.nn.module import DeviceLike, Module, as_device


def _array(name: str, value: Any) -> NDArray:
    if isinstance(value, Tensor):
        return value.cached_data
    if isinstance(value, NDArray):
        return value
    if isinstance(value, np.ndarray | np.generic):
        return _core.array(value)
    raise TypeError(f"needle.save: '{name}' is a {type(value).__name__}, expected a Tensor, an NDArray or an array")


def save(
    obj: Mapping[str, Tensor | NDArray | Any] | Module,
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Writes named tensors (or a Module's state dict) to ``path`` as safetensors, with optional string
    ``metadata``."""
    state: Mapping[str, Any] = obj.state_dict() if isinstance(obj, Module) else obj
    arrays = {str(name): _array(str(name), value) for name, value in state.items()}
    _core.save_safetensors(os.fspath(path), arrays, dict(metadata or {}))


def load(path: str | os.PathLike[str], device: DeviceLike = None) -> dict[str, NDArray]:
    """The tensors of a safetensors file by name, as NDArrays on ``device`` (default device by default)."""
    return dict(_core.load_safetensors(os.fspath(path), as_device(device)))


def load_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a safetensors file."""
    return dict(_core.load_safetensors_metadata(os.fspath(path)))
