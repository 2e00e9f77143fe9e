"""``safetensors.torch``'s API over Needle's own safetensors reader and writer (C++, bounded and fuzzed):
``from needle.torch.safetensors import save_file, load_file`` where a PyTorch script has
``from safetensors.torch import save_file, load_file``. The files are the safetensors format, readable by
the ``safetensors`` package (any of its frameworks) and by PyTorch through it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

from needle import _core
from needle.torch._dtype import to_needle_device
from needle.torch._tensor import Tensor, wrap
from needle.torch.nn.module import IncompatibleKeys, Module


def _arrays(tensors: Mapping[str, Tensor]) -> dict[str, _core.NDArray]:
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"Key `{name}` is invalid, expected torch.Tensor but received {type(value)}")
        arrays[name] = value.detach()._t.cached_data.compact()
    return arrays


def save_file(
    tensors: Mapping[str, Tensor], filename: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> None:
    """Writes tensors by name (and string metadata) to a safetensors file."""
    _core.save_safetensors(os.fspath(filename), _arrays(tensors), metadata or {})


def load_file(filename: str | os.PathLike[str], device: Any = "cpu") -> dict[str, Tensor]:
    """Every tensor of a safetensors file (validated first: a damaged file raises ValueError naming it)."""
    arrays = _core.load_safetensors(os.fspath(filename), to_needle_device(device))
    return {name: wrap(_core.Tensor(array, requires_grad=False)) for name, array in arrays.items()}


def save(tensors: Mapping[str, Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """The safetensors bytes of ``tensors``."""
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "tensors.safetensors")
        save_file(tensors, path, metadata)
        with open(path, "rb") as f:
            return f.read()


def load(data: bytes) -> dict[str, Tensor]:
    """The tensors of safetensors bytes."""
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "tensors.safetensors")
        with open(path, "wb") as f:
            f.write(data)
        return load_file(path)


def save_model(
    model: Module,
    filename: str | os.PathLike[str],
    metadata: dict[str, str] | None = None,
    force_contiguous: bool = False,
) -> None:
    """Writes ``model.state_dict()`` (a tensor shared by several names is written under each)."""
    save_file(model.state_dict(), filename, metadata)


def load_model(
    model: Module, filename: str | os.PathLike[str], strict: bool = True, device: Any = "cpu"
) -> IncompatibleKeys:
    """Loads a file written by ``save_model`` (or any safetensors state dict) into ``model``."""
    return model.load_state_dict(load_file(filename, device), strict=strict)
