"""The datasets of the PyTorch examples, read with NumPy only (no torchvision): Fashion-MNIST from its
IDX files and Penn Treebank from its text files. Each loader returns NumPy arrays; the scripts wrap them
in ``torch.utils.data`` as any PyTorch script would."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FASHION_DIRS = [
    Path(os.environ.get("FASHION_MNIST_DIR", "/nonexistent")),
    Path("/usr/share/datasets/fashion-mnist"),
    HERE.parents[1] / "data" / "fashion-mnist",
    HERE.parents[2] / "shared" / "data" / "mnist",  # the MNIST test set: same format, when nothing else is here
]
PTB_DIRS = [Path(os.environ.get("PTB_DIR", "/nonexistent")), HERE.parents[2] / "shared" / "data" / "ptb"]


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {int(np.prod(shape))} values for shape {shape}, found {values.size}")
    return values.reshape(shape)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).exists():
            return directory / name
    return None


def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, 28, 28) float32 in [0, 1] and labels (N,) int64 of ``split`` ('train' or 't10k')."""
    for directory in FASHION_DIRS:
        images, labels = _find(directory, f"{split}-images-idx3-ubyte"), _find(directory, f"{split}-labels-idx1-ubyte")
        if images is not None and labels is not None:
            x = _read_idx(images).astype(np.float32)[:, None] / 255.0
            return x, _read_idx(labels).astype(np.int64)
    searched = ", ".join(str(d) for d in FASHION_DIRS[1:])
    raise FileNotFoundError(
        f"Fashion-MNIST '{split}' not found in {searched} "
        "(apt-get install dataset-fashion-mnist, or set FASHION_MNIST_DIR)"
    )


def fashion_mnist_splits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(train, test); with only the test set around (../shared's MNIST), its first 8000 images train."""
    test = fashion_mnist("t10k")
    try:
        return fashion_mnist("train"), test
    except FileNotFoundError:
        x, y = test
        return (x[:8000], y[:8000]), (x[8000:], y[8000:])


def penn_treebank(max_lines: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Token ids of PTB's validation text (for training) and test text, and the vocabulary size."""
    for directory in PTB_DIRS:
        if (directory / "ptb.valid.txt").exists() and (directory / "ptb.test.txt").exists():
            vocabulary: dict[str, int] = {}
            train = _tokenize(directory / "ptb.valid.txt", vocabulary, max_lines)
            test = _tokenize(directory / "ptb.test.txt", vocabulary, max_lines)
            return train, test, len(vocabulary)
    raise FileNotFoundError(f"Penn Treebank not found in {', '.join(str(d) for d in PTB_DIRS[1:])} (set PTB_DIR)")


def _tokenize(path: Path, vocabulary: dict[str, int], max_lines: int | None) -> np.ndarray:
    """The token ids of a text file (one "<eos>" per line), growing ``vocabulary`` with new words."""
    ids = []
    with open(path) as f:
        for i, line in enumerate(f):
            if max_lines is not None and i >= max_lines:
                break
            for word in [*line.split(), "<eos>"]:
                ids.append(vocabulary.setdefault(word, len(vocabulary)))
    return np.array(ids, dtype=np.int64)


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Token ids as (steps, batch_size) columns, the usual language-model layout."""
    steps = len(ids) // batch_size
    return ids[: steps * batch_size].reshape(batch_size, steps).T.copy()
