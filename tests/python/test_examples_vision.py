"""Smoke tests of the vision examples (examples/python/train_cnn.py and train_resnet9.py): each runs as a
subprocess for a few steps on tiny synthetic data (MNIST-format IDX files; a cifar-10-batches-py folder from
make_fake_cifar10.py), writes its metrics CSV and checkpoint, and resumes from that checkpoint."""

from __future__ import annotations

import csv
import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def write_fashion_mnist(folder: Path, n_train: int = 48, n_test: int = 16) -> Path:
    """MNIST-format files (train gzipped, t10k plain, as both are accepted) of random 28x28 images."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for split, n, compress in (("train", n_train, True), ("t10k", n_test, False)):
        images = struct.pack(">IIII", 0x803, n, 28, 28) + rng.integers(0, 256, (n, 28, 28), dtype=np.uint8).tobytes()
        labels = struct.pack(">II", 0x801, n) + rng.integers(0, 10, n, dtype=np.uint8).tobytes()
        for name, payload in ((f"{split}-images-idx3-ubyte", images), (f"{split}-labels-idx1-ubyte", labels)):
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (folder / name).write_bytes(payload)
    return folder


def write_fake_cifar10(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, str(EXAMPLES / "make_fake_cifar10.py"), str(folder), "--per-batch", "8", "--test", "8"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("script", ["train_cnn.py", "train_resnet9.py"])
def test_trains_writes_metrics_and_resumes(tmp_path: Path, script: str) -> None:
    if script == "train_cnn.py":
        data = write_fashion_mnist(tmp_path / "fashion-mnist")
    else:
        data = write_fake_cifar10(tmp_path / "cifar-10-batches-py")
    out = tmp_path / "out"
    common = ["--data", str(data), "--out", str(out), "--batch-size", "8", "--max-steps", "2"]

    first = run(script, *common, "--epochs", "1")
    assert "epoch 1: train loss" in first
    assert "final test accuracy:" in first
    assert (out / "checkpoint.safetensors").is_file()
    logged = rows(out / "metrics.csv")
    assert [r["epoch"] for r in logged] == ["1"]
    assert np.isfinite(float(logged[0]["train_loss"]))
    assert 0.0 <= float(logged[0]["test_acc"]) <= 1.0

    second = run(script, *common, "--epochs", "2", "--resume")
    assert "after epoch 1" in second
    assert "holds the model only" not in second  # the optimizer and the schedule were restored too
    assert "epoch 1: train loss" not in second  # the finished epoch is not trained again
    assert "epoch 2: train loss" in second
    assert [r["epoch"] for r in rows(out / "metrics.csv")] == ["1", "2"]


def test_missing_data_folder_is_reported(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "train_cnn.py"), "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "nowhere" in result.stderr
