"""``torch.save`` and ``torch.load`` in PyTorch's zip format, both ways.

A PyTorch checkpoint is a zip archive (entries stored, not compressed) under one top folder:
``data.pkl`` pickles the saved object with every tensor storage replaced by a persistent id
``('storage', torch.FloatStorage, key, location, numel)``, ``data/<key>`` holds that storage's raw
little-endian bytes, and ``version`` says the format's version. Tensors are pickled as calls of
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)``.

Loading never executes code from the file: the unpickler resolves only the names a checkpoint needs
(tensor and parameter rebuilders, storage types, dtypes, ``OrderedDict``) to functions of this module and
refuses every other global with ``pickle.UnpicklingError`` naming it. Saving writes those same names without
importing PyTorch, so files written here load in real PyTorch.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from typing import IO, Any, ClassVar

import numpy as np

from needle.torch import _dtype
from needle.torch._dtype import dtype
from needle.torch._functions import tensor
from needle.torch._tensor import Tensor
from needle.torch.nn.module import Parameter

# PyTorch's storage type names <-> NumPy dtypes. Half-precision storages load as float32 (Needle has no
# 16-bit floats).
_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # converted to float32 by hand
    "ShortStorage": np.dtype("<i2"),
}
_STORAGE_OF = {"float32": "FloatStorage", "float64": "DoubleStorage", "int64": "LongStorage", "int32": "IntStorage"}
_STORAGE_OF |= {"int8": "CharStorage", "uint8": "ByteStorage", "bool": "BoolStorage"}
_ALIGNMENT = 64  # PyTorch aligns each record's bytes to 64 in the archive


class _Global:
    """A name in PyTorch's namespace (``torch._utils._rebuild_tensor_v2``...), written into pickles as that
    global without importing PyTorch."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> Any:  # pickle requires the function of a reduce value to be callable
        raise TypeError(f"{self.module}.{self.name} is a name to write into a checkpoint, not to call")


_REBUILD_TENSOR = _Global("torch._utils", "_rebuild_tensor_v2")
_REBUILD_PARAMETER = _Global("torch._utils", "_rebuild_parameter")
_ORDERED_DICT = _Global("collections", "OrderedDict")
_STORAGE_GLOBALS = {name: _Global("torch", name) for name in _STORAGE_DTYPES}
_DTYPE_GLOBALS = {name: _Global("torch", name) for name in _dtype._BY_NAME}


class _StorageRef:
    """A tensor's values as one storage record of the archive being written."""

    def __init__(self, key: str, values: np.ndarray[Any, Any], dtype_name: str) -> None:
        self.key, self.values, self.dtype_name = key, values, dtype_name


class _Writer(pickle._Pickler):  # the pure-Python pickler: its save_global can be given names to write
    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file, protocol=2)
        self.storages: list[_StorageRef] = []

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _StorageRef):
            storage_type = _STORAGE_GLOBALS[_STORAGE_OF[obj.dtype_name]]
            return ("storage", storage_type, obj.key, "cpu", obj.values.size)
        return None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, Tensor):
            values = np.array(obj.detach()._t.numpy(), order="C")  # (ascontiguousarray would make 0-d 1-d)
            ref = _StorageRef(str(len(self.storages)), values, obj.dtype.name)
            self.storages.append(ref)
            strides = tuple(s // max(values.itemsize, 1) for s in values.strides) if values.size else (1,) * values.ndim
            rebuilt: tuple[Any, ...] = (_REBUILD_TENSOR, (ref, 0, tuple(values.shape), strides, False, OrderedDict()))
            if isinstance(obj, Parameter):
                return (_REBUILD_PARAMETER, (obj.detach(), obj.requires_grad, OrderedDict()))
            return rebuilt
        return NotImplemented

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())  # type: ignore[attr-defined]
            self.memoize(obj)  # type: ignore[attr-defined]
            return
        super().save_global(obj, name)  # type: ignore[misc]

    def save_dtype(self, obj: dtype) -> None:
        self.save_global(_DTYPE_GLOBALS[obj.name])

    dispatch: ClassVar[dict[type, Any]] = pickle._Pickler.dispatch.copy()
    dispatch[_Global] = save_global
    dispatch[dtype] = save_dtype


def save(obj: Any, f: str | os.PathLike[str] | IO[bytes], pickle_protocol: int = 2, **kwargs: Any) -> None:
    """Writes ``obj`` (tensors, state dicts, nested dicts/lists/tuples of numbers, strings and tensors) in
    PyTorch's zip format, loadable by ``torch.load`` here and in PyTorch."""
    buffer = io.BytesIO()
    writer = _Writer(buffer)
    writer.dump(obj)
    records = [("data.pkl", buffer.getvalue())]
    records += [
        (f"data/{ref.key}", ref.values.astype(ref.values.dtype.newbyteorder("<")).tobytes()) for ref in writer.storages
    ]
    records += [("version", b"3\n"), ("byteorder", b"little")]
    if isinstance(f, str | os.PathLike):
        with open(f, "wb") as out:
            _write_archive(out, records)
    else:
        _write_archive(f, records)


def _write_archive(out: IO[bytes], records: list[tuple[str, bytes]]) -> None:
    start = out.tell() if out.seekable() else 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in records:
            info = zipfile.ZipInfo(f"archive/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            # Pad the local header's extra field so that the record's bytes start on a 64-byte boundary.
            header_end = out.tell() - start + 30 + len(info.filename)
            padding = (-(header_end + 4)) % _ALIGNMENT
            info.extra = struct.pack("<HH", 0x4642, padding) + b"Z" * padding
            archive.writestr(info, data)


# ---- loading ---------------------------------------------------------------------------------------------
class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


def _rebuild_tensor_v2(
    storage: np.ndarray[Any, Any],
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> Tensor:
    count = int(np.prod(size)) if size else 1
    if (
        size
        and count
        and (storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) >= storage.size)
    ):
        raise pickle.UnpicklingError(
            f"torch.load: a tensor of size {list(size)}, stride {list(stride)} and offset {storage_offset} "
            f"reaches past its storage of {storage.size} elements"
        )
    if storage_offset > storage.size or (count and storage_offset >= storage.size):
        raise pickle.UnpicklingError(
            f"torch.load: tensor offset {storage_offset} is past its storage of {storage.size}"
        )
    if any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError(f"torch.load: negative size or stride in {list(size)}, {list(stride)}")
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size, strides=[s * storage.itemsize for s in stride], writeable=False
    )
    result = tensor(np.array(view))
    if requires_grad:
        result.requires_grad_(True)
    return result


def _rebuild_parameter(data: Tensor, requires_grad: bool, backward_hooks: Any = None, *state: Any) -> Parameter:
    return Parameter(data, requires_grad)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
}
_ALLOWED |= {("torch", name): _StorageType(name) for name in _STORAGE_DTYPES}
_ALLOWED |= {("torch", name): d for name, d in _dtype._BY_NAME.items()}
_ALLOWED |= {("torch", "float"): _dtype.float32, ("torch", "double"): _dtype.float64, ("torch", "long"): _dtype.int64}


class _Reader(pickle.Unpickler):
    def __init__(self, data: IO[bytes], archive: zipfile.ZipFile, prefix: str, source: str) -> None:
        super().__init__(data)
        self.archive, self.prefix, self.source = archive, prefix, source
        self.loaded: dict[str, np.ndarray[Any, Any]] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"torch.load('{self.source}'): refusing to load global {module}.{name}: needle.torch loads only "
                "tensors, parameters, state dicts and plain Python values and never runs code from a file"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"torch.load('{self.source}'): unknown persistent id {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if key not in self.loaded:
            try:
                raw = self.archive.read(f"{self.prefix}data/{key}")
            except KeyError:
                raise pickle.UnpicklingError(
                    f"torch.load('{self.source}'): storage record data/{key} is missing"
                ) from None
            kind = _STORAGE_DTYPES[storage_type.name]
            if len(raw) % kind.itemsize or (isinstance(numel, int) and len(raw) // kind.itemsize < numel):
                raise pickle.UnpicklingError(
                    f"torch.load('{self.source}'): storage record data/{key} holds {len(raw)} bytes, not {numel} "
                    f"elements of {storage_type.name}"
                )
            values = np.frombuffer(raw, dtype=kind)
            if storage_type.name == "BFloat16Storage":
                values = (values.astype(np.uint32) << 16).view(np.float32)
            elif storage_type.name in ("HalfStorage", "ShortStorage"):
                values = values.astype(np.float32 if storage_type.name == "HalfStorage" else np.int32)
            self.loaded[key] = values
        return self.loaded[key]


def load(
    f: str | os.PathLike[str] | IO[bytes], map_location: Any = None, weights_only: bool | None = None, **kwargs: Any
) -> Any:
    """Reads an object saved by ``torch.save`` (here or in PyTorch, zip format) without running code from
    the file; tensors land on the CPU unless ``map_location`` names another device."""
    source = os.fspath(f) if isinstance(f, str | os.PathLike) else getattr(f, "name", "<file>")
    try:
        archive = zipfile.ZipFile(f)
    except MemoryError:
        raise
    except Exception as error:  # BadZipFile, OSError, or what a damaged directory makes zipfile raise
        raise RuntimeError(
            f"torch.load('{source}'): not a PyTorch zip checkpoint ({error}); the legacy pre-1.6 format is not "
            "supported"
        ) from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl")]
        if not pickles:
            raise RuntimeError(f"torch.load('{source}'): the archive has no data.pkl record")
        prefix = pickles[0][: -len("data.pkl")]
        try:
            data = archive.read(pickles[0])
        except MemoryError:
            raise
        except Exception as error:  # a bad CRC, an unknown compression method, a truncated record
            raise RuntimeError(f"torch.load('{source}'): damaged archive ({error})") from None
        reader = _Reader(io.BytesIO(data), archive, prefix, source)
        try:
            result = reader.load()
        except (pickle.UnpicklingError, MemoryError):
            raise
        except Exception as error:  # whatever a damaged pickle stream makes the unpickler raise
            raise pickle.UnpicklingError(
                f"torch.load('{source}'): corrupt checkpoint ({type(error).__name__}: {error})"
            ) from None
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        result = _move(result, map_location)
    return result


def _move(obj: Any, device: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return type(obj)((k, _move(v, device)) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return type(obj)(_move(v, device) for v in obj)
    return obj
