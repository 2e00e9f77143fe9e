"""PyTorch's dtype and device objects, and ``torch.Size``, mapped onto Needle's dtype names and devices."""

from __future__ import annotations

import builtins

from needle import _core


class dtype:
    """A PyTorch dtype (``torch.float32``...): Needle's dtype name with PyTorch's repr and predicates."""

    __slots__ = ("_name", "is_floating_point", "is_signed", "itemsize")

    def __init__(self, name: str, itemsize: int, is_floating_point: builtins.bool, is_signed: builtins.bool) -> None:
        self._name = name
        self.itemsize = itemsize
        self.is_floating_point = is_floating_point
        self.is_signed = is_signed

    @property
    def name(self) -> str:
        """Needle's name of this dtype ("float32", "int64", ...)."""
        return self._name

    def __repr__(self) -> str:
        return f"torch.{self._name}"

    def __reduce__(self) -> str:
        # Pickled by name, so that a dtype in a saved training state loads back as the same object.
        return self._name


float32 = dtype("float32", 4, True, True)
float64 = dtype("float64", 8, True, True)
int64 = dtype("int64", 8, False, True)
int32 = dtype("int32", 4, False, True)
int8 = dtype("int8", 1, False, True)
uint8 = dtype("uint8", 1, False, False)
bool = dtype("bool", 1, False, False)

_BY_NAME = {d.name: d for d in (float32, float64, int64, int32, int8, uint8, bool)}
_DEFAULT_FLOAT = [float32]


def from_name(name: str) -> dtype:
    """The dtype object of Needle's dtype name."""
    return _BY_NAME[name]


def name_of(value: object) -> str:
    """Needle's dtype name of a PyTorch dtype, a Python type (``float``, ``int``, ``bool``) or a name."""
    if isinstance(value, dtype):
        return value.name
    if value is builtins.float:
        return _DEFAULT_FLOAT[0].name
    if value is builtins.int:
        return "int64"
    if value is builtins.bool:
        return "bool"
    if isinstance(value, str) and value in _BY_NAME:
        return value
    raise TypeError(f"expected a torch.dtype, got {value!r}")


def get_default_dtype() -> dtype:
    """The dtype of tensors made from Python floats (``torch.float32`` unless changed)."""
    return _DEFAULT_FLOAT[0]


def set_default_dtype(d: dtype) -> None:
    """Makes ``d`` (``torch.float32`` or ``torch.float64``) the dtype of tensors made from Python floats."""
    if not isinstance(d, dtype) or not d.is_floating_point:
        raise TypeError(f"set_default_dtype: only floating-point dtypes are supported, got {d!r}")
    _DEFAULT_FLOAT[0] = d


class device:
    """A PyTorch device (``torch.device('cpu')``, ``torch.device('cuda', 0)``) over Needle's devices."""

    __slots__ = ("index", "type")
    type: str
    index: int | None

    def __init__(self, kind: str | device, index: int | None = None) -> None:
        if isinstance(kind, device):
            self.type, self.index = kind.type, kind.index
            return
        if not isinstance(kind, str):
            raise TypeError(f"torch.device: expected a string such as 'cpu' or 'cuda:0', got {kind!r}")
        name, _, number = kind.partition(":")
        if name not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {kind}")
        if number:
            if index is not None or not number.isdigit():
                raise RuntimeError(f"Invalid device string: '{kind}'")
            index = int(number)
        self.type = name
        self.index = index

    def to_needle(self) -> _core.Device:
        """Needle's device for this one (``cuda`` without an index is ``cuda:0``)."""
        if self.type == "cpu":
            return _core.Device("cpu")
        result = _core.Device(f"cuda:{self.index or 0}")
        if not result.enabled():
            raise RuntimeError(f"torch.device('{self}'): Needle was built without CUDA or finds no GPU")
        return result

    @staticmethod
    def from_needle(d: _core.Device) -> device:
        """The PyTorch device object of a Needle device (Needle's host backends are all 'cpu')."""
        if d.is_host:
            return device("cpu")
        return device("cuda", d.index)

    def __eq__(self, other: object) -> builtins.bool:
        # As in PyTorch, a device equals only a device: torch.device("cpu") == "cpu" is False.
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return (
            f"device(type='{self.type}')" if self.index is None else f"device(type='{self.type}', index={self.index})"
        )


def to_needle_device(value: object) -> _core.Device:
    """Needle's device for a PyTorch device, a device string or an index (a GPU ordinal)."""
    if isinstance(value, _core.Device):
        return value
    if isinstance(value, int) and not isinstance(value, builtins.bool):
        return device("cuda", value).to_needle()
    if isinstance(value, str | device):
        return device(value).to_needle()
    raise TypeError(f"expected a torch.device or a device string such as 'cpu', got {value!r}")


class Size(tuple[int, ...]):
    """A tensor's shape: a tuple of ints with PyTorch's repr and ``numel()``."""

    def numel(self) -> int:
        """The number of elements a tensor of this shape holds."""
        count = 1
        for extent in self:
            count *= extent
        return count

    def __repr__(self) -> str:
        return f"torch.Size({list(self)})"
