"""Randomness of the Python API as the course draws it: from NumPy's global state, in the course's order
(Dropout masks, RandomFlipHorizontal, RandomCrop, DataLoader shuffling), while C++ code keeps Needle's own
generator (``needle.manual_seed``)."""

# ruff: noqa: NPY002 (the behaviour under test is drawing from NumPy's global random state)

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import data, nn

# ---- Dropout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.3, 0.75])
def test_dropout_mask_is_numpy_rand_below_keep_probability(device: nd.Device, p: float) -> None:
    x_np = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    x = ndl.Tensor(x_np, device=device, requires_grad=True)
    np.random.seed(12)
    y = nn.Dropout(p)(x)
    np.random.seed(12)
    mask = np.random.rand(4, 6) <= 1 - p
    np.testing.assert_allclose(y.numpy(), x_np * mask / (1 - p), rtol=1e-6)
    assert y.device == device
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), mask / (1 - p), rtol=1e-6)


def test_dropout_draws_once_per_training_call_and_not_in_eval() -> None:
    layer = nn.Dropout(0.5)
    x = ndl.Tensor(np.ones((3, 5), dtype=np.float32))
    np.random.seed(4)
    layer(x)
    after_one_call = np.random.rand()
    np.random.seed(4)
    np.random.rand(3, 5)
    assert np.random.rand() == after_one_call
    layer.eval()
    np.random.seed(4)
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    assert np.random.rand() == np.random.RandomState(4).rand()  # nothing was drawn


def test_dropout_p_written_after_construction_sets_the_mask() -> None:
    layer = nn.Dropout(0.1)
    layer.p = 0.8
    x = ndl.Tensor(np.ones((200, 50), dtype=np.float32))
    np.random.seed(0)
    y = layer(x).numpy()
    np.random.seed(0)
    np.testing.assert_allclose(y, (np.random.rand(200, 50) <= 0.2) / 0.2, rtol=1e-6)


def test_dropout_layer_and_cpp_dropout_op_use_their_own_generators() -> None:
    x = ndl.Tensor(np.ones((40, 40), dtype=np.float32))
    # The C++ op draws from Needle's generator: NumPy's state does not change its mask.
    ndl.manual_seed(5)
    first = ndl.ops.dropout(x, 0.5).numpy()
    ndl.manual_seed(5)
    np.random.seed(99)
    np.testing.assert_array_equal(ndl.ops.dropout(x, 0.5).numpy(), first)
    # manual_seed seeds NumPy too, so the layer repeats under it.
    ndl.manual_seed(5)
    layer_first = nn.Dropout(0.5)(x).numpy()
    ndl.manual_seed(5)
    np.testing.assert_array_equal(nn.Dropout(0.5)(x).numpy(), layer_first)


# ---- transforms ------------------------------------------------------------------------------------


def image(h: int = 4, w: int = 5, c: int = 2) -> np.ndarray:
    return np.arange(h * w * c, dtype=np.float32).reshape(h, w, c)


def test_flip_draws_numpy_rand_per_call() -> None:
    img = image()
    flip = data.RandomFlipHorizontal(p=0.4)
    np.random.seed(3)
    outs = [flip(img) for _ in range(12)]
    np.random.seed(3)
    decisions = [np.random.rand() < 0.4 for _ in range(12)]
    assert any(decisions)
    assert not all(decisions)
    for out, flipped in zip(outs, decisions, strict=True):
        np.testing.assert_array_equal(out, img[:, ::-1, :] if flipped else img)


def test_crop_draws_numpy_randint_shifts_per_call() -> None:
    img = image()
    crop = data.RandomCrop(padding=2)
    np.random.seed(8)
    outs = [crop(img) for _ in range(10)]
    np.random.seed(8)
    padded = np.pad(img, ((2, 2), (2, 2), (0, 0)))
    for out in outs:
        dx, dy = np.random.randint(low=-2, high=3, size=2)
        np.testing.assert_array_equal(out, padded[2 + dx : 2 + dx + 4, 2 + dy : 2 + dy + 5])


def test_transforms_keep_ndarray_inputs_on_their_device(device: nd.Device) -> None:
    img = nd.NDArray(image(), device=device)
    np.random.seed(0)
    out = data.RandomFlipHorizontal(p=1.0)(img)
    assert isinstance(out, nd.NDArray)
    assert out.device == device
    np.testing.assert_array_equal(out.numpy(), image()[:, ::-1])
    cropped = data.RandomCrop(1).crop(img, 1, 0)
    assert isinstance(cropped, nd.NDArray)
    assert cropped.device == device


def test_crop_padding_written_after_construction_is_used() -> None:
    crop = data.RandomCrop(padding=0)
    crop.padding = 3
    np.random.seed(1)
    out = crop(image(6, 6, 1))
    np.random.seed(1)
    dx, dy = np.random.randint(low=-3, high=4, size=2)
    padded = np.pad(image(6, 6, 1), ((3, 3), (3, 3), (0, 0)))
    np.testing.assert_array_equal(out, padded[3 + dx : 9 + dx, 3 + dy : 9 + dy])


# ---- DataLoader shuffling ----------------------------------------------------------------------------


class RangeDataset(data.Dataset):
    """Sample i is (i,) in Python: batched by the Python path."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def __getitem__(self, index: int) -> tuple[np.ndarray]:
        return (np.array(index),)

    def __len__(self) -> int:
        return self.n


def loader_order(loader: data.DataLoader) -> list[int]:
    return [int(v) for batch in loader for v in batch[0].numpy().reshape(-1)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: data.NDArrayDataset(np.arange(23)),
        lambda: RangeDataset(23),
    ],
    ids=["cpp", "python"],
)
@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffled_epoch_is_numpy_permutation_drawn_when_iteration_starts(
    make: object, num_workers: int, drop_last: bool
) -> None:
    loader = data.DataLoader(make(), batch_size=5, shuffle=True, drop_last=drop_last, num_workers=num_workers)  # type: ignore[operator]
    np.random.seed(21)  # after construction: the draw happens at iter()
    epoch = iter(loader)
    np.random.seed(21)
    expected = np.random.permutation(23)
    np.random.seed(1000)  # draws after iter() started do not change this epoch
    got = loader_order(epoch)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got, expected[: 20 if drop_last else 23])
    # Each epoch draws its own permutation.
    np.random.seed(22)
    two_epochs = [loader_order(loader), loader_order(loader)]
    np.random.seed(22)
    for got, expected in zip(two_epochs, [np.random.permutation(23), np.random.permutation(23)], strict=True):
        np.testing.assert_array_equal(got, expected[: len(got)])


def test_shuffled_batches_are_the_rows_of_every_array(device: nd.Device) -> None:
    x = np.random.default_rng(0).standard_normal((9, 2, 3)).astype(np.float32)
    y = np.arange(9)
    loader = data.DataLoader(data.NDArrayDataset(x, y), batch_size=4, shuffle=True, device=device)
    np.random.seed(2)
    batches = list(loader)
    np.random.seed(2)
    order = np.random.permutation(9)
    assert [b[0].shape for b in batches] == [(4, 2, 3), (4, 2, 3), (1, 2, 3)]
    assert all(t.device == device for b in batches for t in b)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), order)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x[order])


def test_unshuffled_loader_draws_from_neither_generator() -> None:
    ds = data.NDArrayDataset(np.arange(10.0))
    x = ndl.Tensor(np.ones((30, 30), dtype=np.float32))
    ndl.manual_seed(7)
    expected_cpp = ndl.ops.dropout(x, 0.5).numpy()
    expected_np = np.random.rand()
    ndl.manual_seed(7)
    for _ in data.DataLoader(ds, batch_size=3, num_workers=1):
        pass
    np.testing.assert_array_equal(ndl.ops.dropout(x, 0.5).numpy(), expected_cpp)
    assert np.random.rand() == expected_np


def write_mnist(tmp: Path, images: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    n, rows, cols = images.shape
    image_path, label_path = tmp / "img.gz", tmp / "lbl.gz"
    with gzip.open(image_path, "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, rows, cols) + images.astype(np.uint8).tobytes())
    with gzip.open(label_path, "wb") as f:
        f.write(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())
    return image_path, label_path


def test_transforms_of_a_cpp_dataset_draw_per_sample_in_batch_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (7, 28, 28))
    paths = write_mnist(tmp_path, pixels, np.arange(7))
    transforms = [data.RandomCrop(2), data.RandomFlipHorizontal(0.5)]
    ds = data.MNISTDataset(*paths, transforms=transforms)
    np.random.seed(6)
    batches = list(data.DataLoader(ds, batch_size=3, shuffle=True))
    np.random.seed(6)
    order = np.random.permutation(7)
    expected = []
    for i in order:
        img = pixels[i][:, :, None].astype(np.float32) / 255
        dx, dy = np.random.randint(low=-2, high=3, size=2)
        img = np.pad(img, ((2, 2), (2, 2), (0, 0)))[2 + dx : 30 + dx, 2 + dy : 30 + dy]
        if np.random.rand() < 0.5:
            img = img[:, ::-1]
        expected.append(img)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), order)
    flattened = np.stack(expected).reshape(7, 784)  # the course's MNIST samples are flattened
    np.testing.assert_allclose(np.concatenate([b[0].numpy() for b in batches]), flattened, rtol=1e-6)
