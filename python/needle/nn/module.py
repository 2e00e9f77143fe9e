"""``Module`` and ``Parameter``, as in Needle: a module is a plain Python object whose parameters are found
in its attributes.

Parameters are the ``Parameter`` instances held in a module's attributes, directly or inside lists, tuples
and dicts, in its child modules, and inside the C++ layers that the built-in layers wrap (their tensors
are ``Parameter`` objects too). Names are dotted paths of attribute names, list indices and dict keys
(``"layers.0.weight"``); a built-in layer's own parameters use the C++ layer's names (``"weight"``,
``"W_ih"``, ``"lstm_cells.0.W_hh"``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from needle import _core
from needle._core import Device, NDArray, Tensor

#: What a device argument accepts: a Device, its name ("cpu", "ref", "cuda"), or None (the default device).
DeviceLike = Device | str | None


def as_device(device: DeviceLike) -> Device:
    """A Device from a device argument (None: the default device)."""
    if device is None:
        return _core.default_device()
    if isinstance(device, str):
        return Device(device)
    return device


class Parameter(Tensor):
    """A Tensor that a Module trains: found by ``Module.parameters()`` wherever the module holds it."""


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _walk(value: object, prefix: str, buffers: bool) -> Iterator[tuple[str, Tensor]]:
    """(dotted name, tensor) for the parameters (or, with ``buffers``, the buffers) found in ``value``."""
    if isinstance(value, Parameter):
        if not buffers:
            yield prefix, value
    elif isinstance(value, Module):
        yield from value._named_tensors(prefix, buffers)
    elif isinstance(value, _core.Module):
        found = value.named_buffers() if buffers else value.named_parameters()
        for name, tensor in found:
            yield _join(prefix, name), tensor
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, _join(prefix, str(key)), buffers)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, _join(prefix, str(index)), buffers)


def _modules_in(value: object) -> Iterator[Module]:
    """The Modules held directly by ``value`` (itself, or inside lists, tuples and dicts)."""
    if isinstance(value, Module):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _modules_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _modules_in(item)


def _as_array(key: str, value: object) -> NDArray:
    if isinstance(value, Tensor):
        return value.cached_data
    if isinstance(value, NDArray):
        return value
    if isinstance(value, np.ndarray | np.generic):
        return _core.array(value)
    raise TypeError(f"load_state_dict: key '{key}' holds a {type(value).__name__}, expected an NDArray or a Tensor")


def _unique(named: Iterator[tuple[str, Tensor]]) -> list[tuple[str, Tensor]]:
    seen: set[int] = set()
    out = []
    for name, tensor in named:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            out.append((name, tensor))
    return out


class Module:
    """Base class of every layer and model (Needle's ``nn.Module``).

    Subclasses set attributes in ``__init__`` (call ``super().__init__()`` first) and implement ``forward``;
    calling the module calls ``forward``.
    """

    training: bool

    def __init__(self) -> None:
        self.training = True

    # ---- what a module holds ------------------------------------------------------------------------

    def _state_items(self) -> Iterator[tuple[str, object]]:
        """(name, value) of the attributes searched for parameters and children, in assignment order. The
        C++ layer of a built-in layer (attribute ``_cpp``) contributes its tensors under their own names."""
        for name, value in vars(self).items():
            if name == "_cpp_parameters":
                continue  # the Parameter objects of _cpp (kept alive here)
            yield ("" if name == "_cpp" else name), value

    def _named_tensors(self, prefix: str, buffers: bool) -> Iterator[tuple[str, Tensor]]:
        for name, value in self._state_items():
            yield from _walk(value, _join(prefix, name) if name else prefix, buffers)

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        """(dotted name, parameter) of every parameter; a tensor held under several names appears once."""
        return _unique(self._named_tensors("", buffers=False))

    def parameters(self) -> list[Tensor]:
        """Every parameter of this module and its descendants, each once (Needle's ``parameters()``)."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> list[tuple[str, Tensor]]:
        """(dotted name, tensor) of the non-trainable state (BatchNorm's running statistics)."""
        return _unique(self._named_tensors("", buffers=True))

    def buffers(self) -> list[Tensor]:
        """The non-trainable state tensors."""
        return [b for _, b in self.named_buffers()]

    def children(self) -> list[Module]:
        """The Python modules held directly by this one (PyTorch's ``children()``)."""
        out: list[Module] = []
        for name, value in self._state_items():
            if name:
                out.extend(_modules_in(value))
        return out

    def _children(self) -> list[Module]:
        """Every descendant Python module (Needle's ``_children()``)."""
        out: list[Module] = []
        for child in self.children():
            out.append(child)
            out.extend(child._children())
        return out

    # ---- modes ---------------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Training mode (Dropout drops, BatchNorm uses batch statistics) for this module and its
        descendants."""
        # Walks _children(), not a ``modules()`` method: course code (Sequential) uses ``modules`` as an attribute.
        for module in [self, *self._children()]:
            module.training = mode
            cpp = vars(module).get("_cpp")
            if isinstance(cpp, _core.Module):
                cpp.train(mode)
        return self

    def eval(self) -> Module:
        """``train(False)``."""
        return self.train(False)

    # ---- state ---------------------------------------------------------------------------------------

    def _state_entries(self) -> list[tuple[str, Tensor]]:
        return [*self._named_tensors("", buffers=False), *self._named_tensors("", buffers=True)]

    def state_dict(self) -> dict[str, NDArray]:
        """Parameters and buffers by dotted name, as NDArrays (the values themselves, not copies)."""
        return {name: tensor.cached_data for name, tensor in self._state_entries()}

    def load_state_dict(self, state: Mapping[str, NDArray | Tensor | Any], strict: bool = True) -> None:
        """Copies values by name into the parameters and buffers (moved to each tensor's device).

        Every entry is checked first — with ``strict``, no key may be missing or unexpected; shapes and dtypes
        must match — and a ValueError naming the key is raised before anything changes (the checks are the
        C++ modules' own, ``_core.check_state_dict``). A value that is no array raises TypeError."""
        entries = self._state_entries()
        known = {key for key, _ in entries}
        # Values of keys the module does not have are only looked at under strict (as unexpected keys).
        arrays = {key: _as_array(key, value) for key, value in state.items() if strict or key in known}
        for index in _core.check_state_dict(type(self).__name__, entries, arrays, strict):
            key, tensor = entries[index]
            tensor.cached_data = arrays[key].to(tensor.device).copy()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes ``state_dict()`` to a safetensors file (``needle.save``)."""
        _core.save_safetensors(os.fspath(path), self.state_dict())

    def load(self, path: str | os.PathLike[str], strict: bool = True) -> None:
        """Loads a file written by ``save`` (or any safetensors file with matching names). A missing,
        truncated or corrupt file raises ValueError naming it, and the module is left unchanged."""
        device = next((t.device for _, t in self._state_entries()), None)
        self.load_state_dict(_core.load_safetensors(os.fspath(path), device), strict=strict)

    def to(self, device: DeviceLike) -> Module:
        """Moves every parameter, buffer and gradient to ``device`` in place: the Tensor objects stay the
        same, so optimizers holding them remain valid."""
        target = as_device(device)
        seen: set[int] = set()
        for _, tensor in self._state_entries():
            if id(tensor) not in seen:
                seen.add(id(tensor))
                _core.move_tensor(tensor, target)
        return self

    def zero_grad(self) -> None:
        """Drops every parameter's gradient."""
        for p in self.parameters():
            p.grad = None

    # ---- computation ---------------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def __repr__(self) -> str:
        children = [f"  ({name}): {value!r}" for name, value in self._state_items() if isinstance(value, Module)]
        if not children:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(\n" + "\n".join(c.replace("\n", "\n  ") for c in children) + "\n)"


class CppModule(Module):
    """A built-in layer: a Python Module holding a C++ layer (``_cpp``) that does the math.

    The C++ layer's parameters are ``Parameter`` objects (the same tensors the C++ layer uses), with the
    C++ layer's names. Training mode is passed on to the C++ layer before every call. Subclasses may
    declare ``_cpp`` with their C++ layer's type.
    """

    _cpp: _core.Module

    def __init__(self, cpp: _core.Module) -> None:
        super().__init__()
        self._cpp = cpp
        self._cpp_parameters = tuple(t for _, t in cpp.adopt_parameters(Parameter))

    def _sync_mode(self) -> None:
        if self._cpp.training != self.training:
            self._cpp.train(self.training)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._sync_mode()
        return self._cpp(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
