"""What the built-in layers share: the base class that builds a C++ layer with the course Needle's initial
values, and attributes read (and, where the C++ layer validates them, written) through to the C++ layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from needle import _core, init
from needle.nn.module import CppModule, DeviceLike, as_device

T = TypeVar("T")


class CppAttribute(Generic[T]):
    """An attribute of a built-in layer that lives in its C++ layer only (``_cpp``), so no Python copy can
    disagree with what the layer computes. Writing goes to the C++ setter, which validates (ValueError);
    attributes fixed at construction have none (AttributeError)."""

    def __init__(self, doc: str = "", *, cpp_name: str | None = None) -> None:
        self.__doc__ = doc
        self._cpp_name = cpp_name

    def __set_name__(self, owner: type, name: str) -> None:
        self._cpp_name = self._cpp_name or name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> CppAttribute[T]: ...
    @overload
    def __get__(self, obj: CppModule, objtype: type | None = None) -> T: ...
    def __get__(self, obj: CppModule | None, objtype: type | None = None) -> T | CppAttribute[T]:
        if obj is None:
            return self
        value: T = getattr(obj._cpp, str(self._cpp_name))
        return value

    def __set__(self, obj: CppModule, value: T) -> None:
        setattr(obj._cpp, str(self._cpp_name), value)


class Layer(CppModule):
    """A built-in layer. Its C++ layer is built while NumPy's global random state is the initializer source,
    so the C++ constructor draws the course Needle's numbers (``np.random.seed(s)`` reproduces them) with the
    formulas and in the order of ``include/needle/nn/layers.h``."""

    def __init__(self, cpp_type: Callable[..., _core.Module], *args: Any) -> None:
        with init.sample_source(init.NUMPY_SOURCE):
            cpp = cpp_type(*args)
        super().__init__(cpp)


def placement(device: DeviceLike, dtype: str | None) -> tuple[_core.Device, str]:
    """The (device, dtype) arguments of a C++ layer: the default device and float32 when not given."""
    return as_device(device), "float32" if dtype is None else dtype
