"""needle.data: datasets, transforms, the DataLoader (C++ and Python paths, workers), MNIST, CIFAR-10 and
the Penn Treebank helpers, on small files written here and on the shared data when present."""

# ruff: noqa: NPY002 (Needle draws from NumPy's global random state: these tests seed it)

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

import needle as ndl
from needle import data

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def epoch_values(loader: data.DataLoader) -> list[list[np.ndarray]]:
    return [[t.numpy().copy() for t in batch] for batch in loader]


# ---- DataLoader ------------------------------------------------------------------------------------


def test_ndarray_dataset_and_loader_cover_every_sample_in_order() -> None:
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    ds = data.NDArrayDataset(x, y)
    assert len(ds) == 10
    sample = ds[3]
    np.testing.assert_array_equal(sample[0], x[3])
    assert int(sample[1]) == 3
    loader = data.DataLoader(ds, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3
    assert [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    assert all(isinstance(t, ndl.Tensor) and not t.requires_grad for b in batches for t in b)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x)
    dropped = data.DataLoader(ds, batch_size=4, drop_last=True)
    assert len(dropped) == 2
    assert [b[1].shape for b in dropped] == [(4,), (4,)]


def test_shuffle_is_a_permutation_each_epoch_and_seeded_by_numpy() -> None:
    ds = data.NDArrayDataset(np.arange(50))
    np.random.seed(0)
    loader = data.DataLoader(ds, batch_size=8, shuffle=True)
    first = np.concatenate([b[0].numpy() for b in loader])
    second = np.concatenate([b[0].numpy() for b in loader])
    assert sorted(first) == list(range(50))
    assert sorted(second) == list(range(50))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(50))
    np.random.seed(0)
    again = data.DataLoader(ds, batch_size=8, shuffle=True)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in again]), first)


def test_workers_give_the_same_batches() -> None:
    rng = np.random.default_rng(0)
    ds = data.NDArrayDataset(rng.standard_normal((37, 3, 4)).astype(np.float32), np.arange(37))
    for shuffle in (False, True):
        np.random.seed(5)
        serial = epoch_values(data.DataLoader(ds, batch_size=5, shuffle=shuffle, num_workers=0))
        np.random.seed(5)
        parallel = epoch_values(data.DataLoader(ds, batch_size=5, shuffle=shuffle, num_workers=2))
        assert len(serial) == len(parallel) == 8
        for a, b in zip(serial, parallel, strict=True):
            for u, v in zip(a, b, strict=True):
                np.testing.assert_array_equal(u, v)
    # Leaving an epoch early stops its workers cleanly.
    for batch in data.DataLoader(ds, batch_size=2, num_workers=2):
        assert batch[0].shape == (2, 3, 4)
        break


class SquaresDataset(data.Dataset):
    def __init__(self, n: int) -> None:
        super().__init__(transforms=[lambda x: x * 2])
        self.n = n

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.apply_transforms(np.full((2,), float(index))), index * index

    def __len__(self) -> int:
        return self.n


def test_python_dataset_is_batched_in_python() -> None:
    ds = SquaresDataset(7)
    batches = list(data.DataLoader(ds, batch_size=3, num_workers=2))
    assert [b[0].shape for b in batches] == [(3, 2), (3, 2), (1, 2)]
    np.testing.assert_array_equal(batches[2][0].numpy(), [[12.0, 12.0]])
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), [i * i for i in range(7)])
    np.random.seed(1)
    order = np.concatenate([b[1].numpy() for b in data.DataLoader(ds, batch_size=2, shuffle=True, drop_last=True)])
    np.random.seed(1)
    np.testing.assert_array_equal(order, (np.random.permutation(7) ** 2)[:6])


def test_loader_device_and_errors() -> None:
    ds = data.NDArrayDataset(np.arange(4.0))
    (batch,) = next(iter(data.DataLoader(ds, batch_size=4, device=ndl.ref())))
    assert batch.device == ndl.ref()
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(ds, batch_size=0)


# ---- transforms ------------------------------------------------------------------------------------


def test_transforms() -> None:
    img = np.arange(2 * 3 * 1, dtype=np.float32).reshape(2, 3, 1)
    np.testing.assert_array_equal(data.RandomFlipHorizontal(p=1.0)(img), img[:, ::-1])
    np.testing.assert_array_equal(data.RandomFlipHorizontal(p=0.0)(img), img)
    crop = data.RandomCrop(padding=1)
    padded = np.pad(img, ((1, 1), (1, 1), (0, 0)))
    np.testing.assert_array_equal(crop.crop(img, 1, -1), padded[2:4, 0:3])
    out = crop(img)
    assert out.shape == img.shape


# ---- MNIST -----------------------------------------------------------------------------------------


def write_idx(tmp: Path, images: np.ndarray, labels: np.ndarray, compress: bool = True) -> tuple[Path, Path]:
    n, rows, cols = images.shape
    image_bytes = struct.pack(">IIII", 0x803, n, rows, cols) + images.astype(np.uint8).tobytes()
    label_bytes = struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes()
    opener = gzip.open if compress else open
    suffix = ".gz" if compress else ""
    image_path, label_path = tmp / f"images-idx3-ubyte{suffix}", tmp / f"labels-idx1-ubyte{suffix}"
    with opener(image_path, "wb") as f:
        f.write(image_bytes)
    with opener(label_path, "wb") as f:
        f.write(label_bytes)
    return image_path, label_path


def test_mnist_small_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28))
    labels = rng.integers(0, 10, 5)
    for compress in (True, False):
        ds = data.MNISTDataset(*write_idx(tmp_path, images, labels, compress))
        assert len(ds) == 5
        image, label = ds[2]
        # The course's layout: a flattened image and a uint8 label.
        assert image.shape == (784,)
        assert image.dtype == np.float32
        assert label.dtype == np.uint8
        np.testing.assert_allclose(image, images[2].reshape(784) / 255.0, rtol=1e-6)
        assert int(label) == labels[2]
        np.testing.assert_allclose(ds[1:4][0], images[1:4].reshape(3, 784) / 255.0, rtol=1e-6)
        with pytest.raises(IndexError, match="index 5 is out of range for 5 samples"):
            ds[5]
    flipped = data.MNISTDataset(*write_idx(tmp_path, images, labels), transforms=[data.RandomFlipHorizontal(1.0)])
    np.testing.assert_allclose(flipped[0][0].reshape(28, 28), images[0][:, ::-1] / 255.0, rtol=1e-6)
    python_tf = data.MNISTDataset(*write_idx(tmp_path, images, labels), transforms=[lambda x: 1.0 - x])
    assert not python_tf.batches_in_cpp
    np.testing.assert_allclose(python_tf[0][0].reshape(28, 28), 1.0 - images[0] / 255.0, rtol=1e-6)
    (x, y) = next(iter(data.DataLoader(python_tf, batch_size=5)))
    assert x.shape == (5, 784)
    for workers in (0, 1):
        (x, y) = next(iter(data.DataLoader(ds, batch_size=5, num_workers=workers)))
        assert (x.shape, x.dtype, y.dtype) == ((5, 784), "float32", "uint8")
    np.testing.assert_array_equal(y.numpy(), labels)


def test_mnist_truncated_and_missing_files_name_the_file(tmp_path: Path) -> None:
    images = np.zeros((3, 28, 28))
    image_path, label_path = write_idx(tmp_path, images, np.zeros(3), compress=False)
    truncated = tmp_path / "truncated-images"
    truncated.write_bytes(image_path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated-images"):
        data.MNISTDataset(truncated, label_path)
    with pytest.raises(ValueError, match="no-such-file"):
        data.MNISTDataset(tmp_path / "no-such-file", label_path)
    bad_gz = tmp_path / "bad.gz"
    bad_gz.write_bytes(gzip.compress(image_path.read_bytes())[:-20])
    with pytest.raises(ValueError, match=r"bad\.gz"):
        data.MNISTDataset(bad_gz, label_path)


def test_mnist_shared_data() -> None:
    folder = SHARED / "mnist"
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    if not images.is_file() or not labels.is_file():
        pytest.skip(f"MNIST test files not found under {folder.resolve()}")
    ds = data.MNISTDataset(images, labels)
    assert len(ds) == 10000
    x, y = ds[0]
    assert x.shape == (784,)
    assert x.min() >= 0.0
    assert x.max() <= 1.0
    assert int(y) == 7  # the first test digit
    total = 0
    for xb, yb in data.DataLoader(ds, batch_size=1000, num_workers=2):
        assert xb.shape[1:] == (784,)
        total += yb.shape[0]
    assert total == 10000


# ---- CIFAR-10 --------------------------------------------------------------------------------------


def write_cifar(folder: Path, name: str, n: int, seed: int) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"batch", b"labels": [int(v) for v in rng.integers(0, 10, n)]}
    batch[b"data"] = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    with open(folder / name, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return batch


def test_cifar10_tiny_pickles(tmp_path: Path) -> None:
    test = write_cifar(tmp_path, "test_batch", 4, 0)
    train = [write_cifar(tmp_path, f"data_batch_{i}", 2, i) for i in range(1, 6)]
    ds = data.CIFAR10Dataset(tmp_path, train=False)
    assert len(ds) == 4
    image, label = ds[1]
    assert image.shape == (3, 32, 32)
    pixels = np.asarray(test[b"data"])
    np.testing.assert_allclose(image, pixels[1].reshape(3, 32, 32) / 255.0, rtol=1e-6)
    assert int(label) == test[b"labels"][1]  # type: ignore[index]
    train_ds = data.CIFAR10Dataset(tmp_path, train=True)
    assert len(train_ds) == 10
    labels = np.concatenate([b[1].numpy() for b in data.DataLoader(train_ds, batch_size=3)])
    np.testing.assert_array_equal(labels, [v for batch in train for v in batch[b"labels"]])  # type: ignore[attr-defined]
    flipped = data.CIFAR10Dataset(tmp_path, train=False, transforms=[lambda img: img[:, ::-1, :]])
    np.testing.assert_allclose(flipped[0][0], pixels[0].reshape(3, 32, 32)[:, :, ::-1] / 255.0, rtol=1e-6)


class Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > should-not-exist",))


def test_cifar10_refuses_malicious_and_malformed_pickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": Exploit(), b"labels": [1]}, f, protocol=2)
    with pytest.raises(ValueError, match="test_batch"):
        data.CIFAR10Dataset(tmp_path, train=False)
    assert not (tmp_path / "should-not-exist").exists()
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"labels": [1]}, protocol=2))
    with pytest.raises(ValueError, match="test_batch"):
        data.CIFAR10Dataset(tmp_path, train=False)
    with pytest.raises(ValueError, match="data_batch_1"):
        data.CIFAR10Dataset(tmp_path, train=True)


# ---- Penn Treebank ---------------------------------------------------------------------------------


def test_ptb_corpus_batchify_get_batch(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("the cat sat\non the mat\n")
    (tmp_path / "test.txt").write_text("the dog\n")
    corpus = data.Corpus(tmp_path)
    words = corpus.dictionary.idx2word
    assert [words[i] for i in corpus.train] == ["the", "cat", "sat", "<eos>", "on", "the", "mat", "<eos>"]
    assert [words[i] for i in corpus.test] == ["the", "dog", "<eos>"]
    assert corpus.dictionary.word2idx["the"] == 0
    assert len(corpus.dictionary) == 7
    assert len(data.Corpus(tmp_path, max_lines=1).train) == 4

    batches = data.batchify(list(range(11)), batch_size=2)
    np.testing.assert_array_equal(batches.numpy(), np.arange(10).reshape(2, 5).T)
    x, y = data.get_batch(batches, 1, bptt=3, dtype="float32")
    np.testing.assert_array_equal(x.numpy(), np.arange(10).reshape(2, 5).T[1:4])
    np.testing.assert_array_equal(y.numpy(), np.arange(10).reshape(2, 5).T[2:5].flatten())
    assert x.dtype == "float32"
    x_last, _ = data.get_batch(batches, 3, bptt=3)
    assert x_last.shape == (1, 2)
    with pytest.raises(ValueError, match=r"no-such-dir"):
        data.Corpus(tmp_path / "no-such-dir")


def test_ptb_shared_data() -> None:
    folder = SHARED / "ptb"
    if not (folder / "ptb.test.txt").is_file():
        pytest.skip(f"PTB files not found under {folder.resolve()}")
    corpus = data.Corpus(folder, max_lines=50)
    assert len(corpus.test) > 0
    assert corpus.dictionary.idx2word[corpus.test[-1]] == "<eos>"
