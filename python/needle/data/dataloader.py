"""``DataLoader``: batches of a dataset as tuples of Tensors.

For the C++ datasets (``NDArrayDataset``, ``MNISTDataset``, ``CIFAR10Dataset`` without Python transforms)
batches are built in C++, ahead of time on ``num_workers`` threads when ``num_workers > 0`` (the batches
are the same as with ``num_workers=0``); Python waits for them without holding the GIL. Other datasets are
batched here: the samples' arrays are stacked with NumPy and each field becomes one Tensor.

Shuffling: as in Needle, the order comes from NumPy's global random state, so ``np.random.seed(s)``
before creating the loader makes it repeatable. (C++ datasets draw one seed from it when the loader is
created, and each epoch is a fresh permutation derived from that seed; Python datasets draw
``np.random.permutation`` at the start of each epoch, as Needle does.)

Batches are tensors that do not require a gradient (inputs, not parameters), on ``device`` when given.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from needle import _core
from needle._core import NDArray, Tensor
from needle.data.datasets import CppDataset, Dataset
from needle.nn.module import DeviceLike, as_device


class DataLoader:
    """Iterates over ``dataset`` in batches of ``batch_size`` samples (the last one smaller unless
    ``drop_last``), every sample once per epoch, shuffled each epoch when ``shuffle``."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        num_workers: int = 0,
        *,
        device: DeviceLike = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be >= 0, got {num_workers}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.num_workers = num_workers
        self.device = None if device is None else as_device(device)
        self._cpp: _core.DataLoader | None = None
        if isinstance(dataset, CppDataset) and dataset.batches_in_cpp:
            seed = int(np.random.randint(0, 2**63 - 1, dtype=np.int64)) if shuffle else 0  # noqa: NPY002 (Needle)
            self._cpp = _core.DataLoader(dataset._cpp, batch_size, shuffle, drop_last, num_workers, seed)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _tensor(self, array: NDArray) -> Tensor:
        if self.device is not None:
            array = array.to(self.device)
        return Tensor.make_const(array, requires_grad=False)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        if self._cpp is not None:
            for batch in self._cpp:
                yield tuple(self._tensor(a) for a in batch)
            return
        n = len(self.dataset)
        order = np.random.permutation(n) if self.shuffle else np.arange(n)  # noqa: NPY002 (Needle's order)
        stop = n - n % self.batch_size if self.drop_last else n
        for begin in range(0, stop, self.batch_size):
            samples = [self._sample(int(i)) for i in order[begin : begin + self.batch_size]]
            fields = zip(*samples, strict=True)
            yield tuple(self._tensor(_core.array(np.stack([np.asarray(x) for x in field]))) for field in fields)

    def _sample(self, index: int) -> tuple[Any, ...]:
        sample = self.dataset[index]
        return tuple(sample) if isinstance(sample, tuple | list) else (sample,)
