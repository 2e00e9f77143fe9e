"""needle.torch.safetensors (``safetensors.torch``'s API) against the ``safetensors`` package itself: files
written here load with it and files it writes load here, value for value, dtype for dtype; a model's state
round-trips; a damaged file raises ValueError naming it."""

from pathlib import Path

import numpy as np
import pytest

import needle.torch as torch
from needle.torch.safetensors import load, load_file, load_model, save, save_file, save_model

safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed")

ARRAYS = {
    "weight": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "double": np.linspace(-1, 1, 5),
    "ids": np.array([[1, -2], [3, 4]], dtype=np.int64),
    "small": np.array([1, 2, 3], dtype=np.int32),
    "bytes": np.array([0, 255], dtype=np.uint8),
    "signed": np.array([-128, 127], dtype=np.int8),
    "mask": np.array([True, False]),
    "scalar": np.array(2.5, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float32),
}


def test_files_written_here_load_with_the_safetensors_package(tmp_path: Path) -> None:
    tensors = {name: torch.from_numpy(values) for name, values in ARRAYS.items()}
    tensors["view"] = torch.arange(12.0).reshape(3, 4).t()  # a non-contiguous view is written in order
    save_file(tensors, tmp_path / "here.safetensors", metadata={"format": "pt"})
    loaded = safetensors_numpy.load_file(str(tmp_path / "here.safetensors"))
    for name, values in ARRAYS.items():
        assert loaded[name].dtype == values.dtype, name
        np.testing.assert_array_equal(loaded[name], values, err_msg=name)
    np.testing.assert_array_equal(loaded["view"], np.arange(12.0, dtype=np.float32).reshape(3, 4).T)


def test_files_written_by_the_safetensors_package_load_here(tmp_path: Path) -> None:
    safetensors_numpy.save_file(ARRAYS, str(tmp_path / "theirs.safetensors"), metadata={"source": "numpy"})
    loaded = load_file(tmp_path / "theirs.safetensors")
    for name, values in ARRAYS.items():
        assert loaded[name].numpy().dtype == values.dtype, name
        np.testing.assert_array_equal(loaded[name].numpy(), values, err_msg=name)


def test_bytes_and_model_round_trips(tmp_path: Path) -> None:
    data = save({"a": torch.ones(2, 2)})
    assert load(data)["a"].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    model(torch.randn(2, 1, 5, 5))
    save_model(model, tmp_path / "model.safetensors")
    copy = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    assert load_model(copy, tmp_path / "model.safetensors") == ([], [])
    for (name, a), b in zip(model.state_dict().items(), copy.state_dict().values(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_damaged_files_and_bad_values_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "damaged.safetensors"
    save_file({"w": torch.arange(6.0)}, path)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"damaged\.safetensors"):
        load_file(path)
    with pytest.raises(ValueError, match=r"expected torch\.Tensor"):
        save_file({"w": np.zeros(2)}, tmp_path / "bad.safetensors")  # type: ignore[dict-item]
