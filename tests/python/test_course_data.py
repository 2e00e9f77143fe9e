"""needle.data with the course's conventions: datasets indexed by an int, a slice or an integer array,
CIFAR-10's ``X``/``y`` and signature, and the Penn Treebank helpers called as the course calls them."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import data


def test_ndarray_dataset_indexed_like_each_array() -> None:
    x = np.arange(60, dtype=np.float32).reshape(10, 2, 3)
    y = np.arange(10) * 3
    ds = data.NDArrayDataset(x, y)
    for index in (4, np.int64(4), -2, np.array(7)):
        got_x, got_y = ds[index]
        np.testing.assert_array_equal(got_x, x[index])
        assert int(got_y) == y[index]
    for index in (slice(2, 6), slice(None, None, 3), np.array([9, 0, 4]), [1, 1, 2], slice(8, 20)):
        got_x, got_y = ds[index]
        np.testing.assert_array_equal(got_x, x[index])
        np.testing.assert_array_equal(got_y, y[index])
    assert ds[5:5][0].shape == (0, 2, 3)
    with pytest.raises(TypeError, match="index"):
        ds[1.5]
    with pytest.raises(IndexError):
        ds[10]


def test_ndarray_dataset_of_ndarrays_on_a_device(device: nd.Device) -> None:
    x = np.arange(12.0).reshape(6, 2)
    ds = data.NDArrayDataset(nd.NDArray(x, device=device))
    np.testing.assert_array_equal(ds[1:3][0], x[1:3])
    (batch,) = next(iter(data.DataLoader(ds, batch_size=6, shuffle=True)))
    assert batch.device == device
    np.testing.assert_array_equal(np.sort(batch.numpy(), axis=0), x)


def write_cifar(folder: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A cifar-10-batches-py folder of small batches: returns (train pixels (N, 3072), train labels)."""
    folder.mkdir()
    pixels, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch_pixels = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        batch_labels = [int(v) for v in rng.integers(0, 10, 3)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": batch_pixels, b"labels": batch_labels}, f, protocol=2)  # the real files' protocol
        if name != "test_batch":
            pixels.append(batch_pixels)
            labels.extend(batch_labels)
    return np.concatenate(pixels), np.array(labels)


def test_cifar10_course_signature_attributes_and_indexing(tmp_path: Path) -> None:
    pixels, labels = write_cifar(tmp_path / "cifar-10-batches-py", np.random.default_rng(0))
    ds = data.CIFAR10Dataset(str(tmp_path / "cifar-10-batches-py"), True, 0.5, None)
    images = pixels.reshape(-1, 3, 32, 32).astype(np.float32) / 255
    assert len(ds) == 15
    assert ds.X.shape == (15, 3, 32, 32)
    np.testing.assert_allclose(ds.X, images, rtol=1e-6)
    np.testing.assert_array_equal(ds.y, labels)
    x, y = ds[4]
    assert isinstance(x, np.ndarray)
    assert x.shape == (3, 32, 32)
    assert int(y) == labels[4]
    xs, ys = ds[np.array([3, 0])]
    np.testing.assert_allclose(xs, images[[3, 0]], rtol=1e-6)
    np.testing.assert_array_equal(ys, labels[[3, 0]])
    test = data.CIFAR10Dataset(tmp_path / "cifar-10-batches-py", train=False)
    assert len(test) == 3


def test_transforms_apply_to_each_sample_of_a_slice(tmp_path: Path) -> None:
    write_cifar(tmp_path / "c", np.random.default_rng(1))
    ds = data.CIFAR10Dataset(tmp_path / "c", train=True, transforms=[data.RandomFlipHorizontal(1.0)])
    xs, _ = ds[0:3]
    assert xs.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(xs, ds.X[0:3][:, :, :, ::-1])
    assert not ds.batches_in_cpp


def test_ptb_helpers_with_the_course_signatures(tmp_path: Path, device: nd.Device) -> None:
    (tmp_path / "train.txt").write_text("a b c\nd e\n" * 6)
    (tmp_path / "test.txt").write_text("b a\n")
    corpus = data.Corpus(str(tmp_path))
    words = len(corpus.dictionary)
    assert words == 6  # a b c d e <eos>
    assert corpus.dictionary.idx2word[corpus.train[0]] == "a"
    batches = data.batchify(corpus.train, 4, device, "float32")  # the course's positional order
    assert batches.shape == (len(corpus.train) // 4, 4)
    x, y = data.get_batch(batches, 1, 3, device=device, dtype="float32")
    assert isinstance(x, ndl.Tensor)
    assert (x.shape, y.shape, x.dtype, x.device) == ((3, 4), (12,), "float32", device)
    np.testing.assert_array_equal(y.numpy(), batches.numpy()[2:5].reshape(-1))
