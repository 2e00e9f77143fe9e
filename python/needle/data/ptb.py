"""The Penn Treebank helpers of Needle's hw4: ``Dictionary``, ``Corpus``, ``batchify`` and ``get_batch``.

Files are read and tokenized in C++ (``Corpus``), and the batches are laid out in C++.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from needle import _core
from needle._core import NDArray, Tensor
from needle.nn.module import DeviceLike, as_device


class Dictionary:
    """Words and their ids: ``word2idx`` (dict) and ``idx2word`` (list), as in Needle."""

    def __init__(self) -> None:
        self.word2idx: dict[str, int] = {}
        self.idx2word: list[str] = []

    def add_word(self, word: str) -> int:
        """The id of ``word``, added with the next id when new."""
        if word not in self.word2idx:
            self.word2idx[word] = len(self.idx2word)
            self.idx2word.append(word)
        return self.word2idx[word]

    def __len__(self) -> int:
        return len(self.idx2word)


class Corpus:
    """The splits of a Penn Treebank folder as lists of word ids (``train``, ``test``, and ``valid`` when
    present): ``train.txt`` or ``ptb.train.txt``, etc.; ``<eos>`` ends each line. With ``max_lines``, only
    the first lines of each file are read. A folder with no split raises ValueError naming the paths."""

    def __init__(self, base_dir: str | os.PathLike[str], max_lines: int | None = None) -> None:
        cpp = _core.Corpus(os.fspath(base_dir), max_lines)
        self.dictionary = Dictionary()
        for word in cpp.dictionary.idx2word:
            self.dictionary.add_word(word)
        self.train: list[int] = cpp.train
        self.valid: list[int] = cpp.valid
        self.test: list[int] = cpp.test


def batchify(
    data: Sequence[int] | np.ndarray[Any, Any], batch_size: int, device: DeviceLike = None, dtype: str = "int64"
) -> NDArray:
    """Needle's batchify: the ids as an array (len(data) // batch_size, batch_size) whose column j is the
    j-th contiguous run (the tail that does not fill a row is dropped)."""
    return _core.batchify([int(i) for i in data], batch_size, dtype, as_device(device))


def get_batch(
    batches: NDArray | np.ndarray[Any, Any],
    i: int,
    bptt: int,
    device: DeviceLike = None,
    dtype: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Needle's get_batch: (rows [i, i + L) of ``batches`` (L, batch_size), rows [i + 1, i + 1 + L)
    flattened (L * batch_size,)) with L = min(bptt, len(batches) - 1 - i), as Tensors on ``device`` with
    ``dtype`` (default: the batches' dtype)."""
    array = batches if isinstance(batches, NDArray) else _core.array(np.asarray(batches))
    data, target = _core.get_batch(array, i, bptt)
    dev = as_device(device) if device is not None else array.device
    out = []
    for a in (data, target):
        a = a.to(dev)
        if dtype is not None:
            a = a.astype(dtype)
        out.append(Tensor.make_const(a, requires_grad=False))
    return out[0], out[1]
