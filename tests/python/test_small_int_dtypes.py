"""uint8 and int8 are full dtypes: storage and the NumPy round trip, astype, arithmetic that wraps as NumPy's
does, comparisons, promotion, indexing, labels for losses and one_hot, and checkpoints. (The elementwise,
reduction, view and creation tests run every op in these dtypes too, through ALL_DTYPES.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import nn

SMALL = ["uint8", "int8"]


@pytest.mark.parametrize("dtype", SMALL)
def test_numpy_round_trip_keeps_dtype_and_values(device: nd.Device, dtype: str) -> None:
    info = np.iinfo(dtype)
    values = np.array([info.min, 0, 1, info.max], dtype=dtype)
    a = nd.array(values, device=device)
    assert a.dtype == dtype
    assert a.itemsize == 1
    assert a.numpy().dtype == np.dtype(dtype)
    np.testing.assert_array_equal(a.numpy(), values)
    assert ndl.Tensor(values, device=device).dtype == dtype


@pytest.mark.parametrize("source", SMALL)
@pytest.mark.parametrize("target", ["bool", "uint8", "int8", "int32", "int64", "float32", "float64"])
def test_astype_matches_numpy(device: nd.Device, source: str, target: str) -> None:
    values = np.array([0, 1, 7, 100, np.iinfo(source).max], dtype=source)
    np.testing.assert_array_equal(nd.array(values, device=device).astype(target).numpy(), values.astype(target))


@pytest.mark.parametrize("dtype", SMALL)
def test_into_small_ints_from_in_range_values(device: nd.Device, dtype: str) -> None:
    values = np.array([0.0, 3.9, 100.0, 127.0])
    np.testing.assert_array_equal(
        nd.array(values, device=device, dtype="float64").astype(dtype).numpy(), [0, 3, 100, 127]
    )


def test_arithmetic_wraps_as_numpy_does(device: nd.Device) -> None:
    u = nd.array(np.array([250, 3], np.uint8), device=device)
    np.testing.assert_array_equal((u + nd.array(np.array([10, 1], np.uint8), device=device)).numpy(), [4, 4])
    np.testing.assert_array_equal((u * 2).numpy(), np.array([250, 3], np.uint8) * np.uint8(2))
    i = nd.array(np.array([120, -128], np.int8), device=device)
    np.testing.assert_array_equal((i + 10).numpy(), np.array([120, -128], np.int8) + np.int8(10))
    assert (u + 1).dtype == "uint8"


@pytest.mark.parametrize(
    ("a", "b", "result"),
    [
        ("uint8", "int8", "int32"),
        ("uint8", "int32", "int32"),
        ("int8", "int64", "int64"),
        ("uint8", "float32", "float32"),
        ("bool", "uint8", "uint8"),
        ("int8", "int8", "int8"),
    ],
)
def test_promotion(device: nd.Device, a: str, b: str, result: str) -> None:
    x = nd.array(np.ones(3, a), device=device)
    y = nd.array(np.ones(3, b), device=device)
    assert (x + y).dtype == result
    assert (y * x).dtype == result
    np.testing.assert_array_equal((x + y).numpy(), np.full(3, 2))


@pytest.mark.parametrize("dtype", SMALL)
def test_comparisons_and_reductions(device: nd.Device, dtype: str) -> None:
    values = np.array([[3, 9, 0], [7, 2, 5]], dtype=dtype)
    a = nd.array(values, device=device)
    np.testing.assert_array_equal((a > 4).numpy(), values > 4)
    np.testing.assert_array_equal((a == a).numpy(), np.ones((2, 3), bool))
    np.testing.assert_array_equal(nd.maximum(a, 4).numpy(), np.maximum(values, 4))
    assert a.max().item() == 9
    np.testing.assert_array_equal(nd.argmax(a, axis=1).numpy(), [1, 0])
    assert a.sum().dtype == "int64"
    assert a.sum().item() == 26


@pytest.mark.parametrize("dtype", SMALL)
def test_indexing_views_and_setitem(device: nd.Device, dtype: str) -> None:
    values = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    a = nd.array(values, device=device)
    np.testing.assert_array_equal(a[1, ::2, 1:3].numpy(), values[1, ::2, 1:3])
    np.testing.assert_array_equal(a.permute((2, 0, 1)).compact().numpy(), values.transpose(2, 0, 1))
    a[0, 1] = 99
    values[0, 1] = 99
    np.testing.assert_array_equal(a.numpy(), values)


@pytest.mark.parametrize("dtype", SMALL)
def test_labels_for_losses_and_one_hot(device: nd.Device, dtype: str) -> None:
    # The course casts MNIST labels to uint8 before SoftmaxLoss.
    rng = np.random.default_rng(0)
    logits = ndl.Tensor(rng.standard_normal((5, 4)).astype(np.float32), device=device)
    labels = np.array([0, 3, 1, 2, 3], dtype=dtype)
    loss = nn.SoftmaxLoss()(logits, ndl.Tensor(labels, device=device))
    expected = nn.SoftmaxLoss()(logits, ndl.Tensor(labels.astype(np.int64), device=device))
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-6)
    one_hot = ndl.init.one_hot(4, nd.array(labels, device=device), device=device)
    np.testing.assert_array_equal(one_hot.numpy(), np.eye(4, dtype=np.float32)[labels])


def test_checkpoints_keep_small_int_dtypes(tmp_path: Path) -> None:
    state = {"u": nd.array(np.array([0, 255], np.uint8)), "i": nd.array(np.array([-128, 127], np.int8))}
    ndl.save(state, tmp_path / "small.safetensors")
    loaded = ndl.load(tmp_path / "small.safetensors")
    assert {k: v.dtype for k, v in loaded.items()} == {"u": "uint8", "i": "int8"}
    np.testing.assert_array_equal(loaded["u"].numpy(), [0, 255])
    np.testing.assert_array_equal(loaded["i"].numpy(), [-128, 127])
    # The format's names, readable by other safetensors readers.
    header = (tmp_path / "small.safetensors").read_bytes()[8:200]
    assert b'"U8"' in header
    assert b'"I8"' in header
