"""Checkpoints: needle.save / needle.load (safetensors), Module.save / Module.load, files readable by an
independent parser, and damaged files raising ValueError naming them while the model stays unchanged."""

# ruff: noqa: NPY002 (Needle draws from NumPy's global random state: these tests seed it)

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

import needle as ndl
from needle import nn

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "BOOL": np.bool_}


def parse_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A reader written from the format's description, sharing nothing with Needle's."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    assert (8 + n) % 8 == 0
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(body[begin:end], dtype=dtype).reshape(info["shape"])
    return out, metadata


def make_model() -> nn.Module:
    np.random.seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2, dtype="float64"))


def values(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_save_load_round_trip_of_tensors_arrays_and_numpy(tmp_path: Path) -> None:
    path = tmp_path / "mixed.safetensors"
    tensors = {
        "t": ndl.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "a": ndl.NDArray(np.array([1, -2, 3], dtype=np.int64)),
        "n": np.array([[True, False]]),
        "i": np.array([7], dtype=np.int32),
    }
    ndl.save(tensors, path, metadata={"epoch": "3"})
    loaded = ndl.load(path)
    assert set(loaded) == set(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(loaded[name].numpy(), np.asarray(value))
        assert loaded[name].numpy().dtype == np.asarray(value).dtype
    parsed, metadata = parse_safetensors(path)
    assert metadata == {"epoch": "3"}
    for name, value in tensors.items():
        np.testing.assert_array_equal(parsed[name], np.asarray(value))
    assert ndl.checkpoint.load_metadata(path) == {"epoch": "3"}
    assert ndl.load(path, device="ref")["t"].device == ndl.ref()


def test_module_checkpoint_round_trip(tmp_path: Path) -> None:
    model = make_model()
    model(ndl.Tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)))  # running stats
    path = tmp_path / "model.safetensors"
    model.save(path)
    parsed, _ = parse_safetensors(path)
    expected = values(model)
    assert set(parsed) == set(expected)
    for k, v in expected.items():
        np.testing.assert_array_equal(parsed[k], v)

    other = make_model()
    params = other.parameters()
    for p in params:
        p.data = p.data * 0.0
    other.load(path)
    assert all(a is b for a, b in zip(params, other.parameters(), strict=True))
    for k, v in values(other).items():
        np.testing.assert_array_equal(v, expected[k])
    # The same through needle.save / needle.load and load_state_dict.
    ndl.save(model, tmp_path / "again.safetensors")
    other.load_state_dict(ndl.load(tmp_path / "again.safetensors"))


def test_damaged_files_raise_and_leave_the_model_unchanged(tmp_path: Path) -> None:
    model = make_model()
    path = tmp_path / "good.safetensors"
    model.save(path)
    raw = path.read_bytes()
    victim = make_model()
    for p in victim.parameters():
        p.data = p.data + 1.0
    before = values(victim)

    damaged = {
        "truncated.safetensors": raw[: len(raw) - 5],
        "short.safetensors": raw[:4],
        "header.safetensors": raw[:8] + b"[" + raw[9:],
        "size.safetensors": struct.pack("<Q", 10**9) + raw[8:],
        "empty.safetensors": b"",
    }
    for name, content in damaged.items():
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            victim.load(bad)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            ndl.load(bad)
    with pytest.raises(ValueError, match="missing-file"):
        victim.load(tmp_path / "missing-file.safetensors")
    # A valid file of another model: names or shapes disagree, nothing is loaded.
    nn.Linear(3, 5).save(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="key"):
        victim.load(tmp_path / "other.safetensors")
    for k, v in values(victim).items():
        np.testing.assert_array_equal(v, before[k])


def test_save_refuses_non_arrays(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="'x'"):
        ndl.save({"x": [1, 2, 3]}, tmp_path / "x.safetensors")
