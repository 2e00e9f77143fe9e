"""``DataLoader``: batches of a dataset as tuples of Tensors.

Shuffling follows the course: each epoch's order is ``np.random.permutation(len(dataset))``, drawn from NumPy's
global random state when the iteration starts (``iter(loader)``), and split into batches in order; so
``np.random.seed(s)`` before an epoch repeats it. Transforms draw in Python too (see ``datasets``), sample by
sample in batch order.

How a batch is built depends on the dataset:

- A C++ dataset (``NDArrayDataset``, ``MNISTDataset``, ``CIFAR10Dataset``) without transforms: batches are
  gathered from its arrays in native code: by C++, ahead of time on ``num_workers`` threads when
  ``num_workers > 0`` (Python waits without holding the GIL; a shuffled epoch hands C++ the drawn order),
  or, shuffled with ``num_workers == 0``, by NumPy indexing of the arrays.
- Any other dataset, or a C++ one with transforms: sample by sample (``dataset[i]``), each field stacked with
  NumPy into one Tensor.

The batches are the same in every case, with or without workers. They are tensors that do not require a
gradient (inputs, not parameters), on ``device`` when given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
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
        sampler: Iterable[int] | None = None,
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
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True cannot be combined (the sampler sets the order)")
        # Which indices an epoch reads, in order (a DistributedSampler's shard): every index once otherwise.
        self.sampler = sampler

    def __len__(self) -> int:
        n = len(self.sampler) if isinstance(self.sampler, Sized) else len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _tensor(self, array: NDArray) -> Tensor:
        if self.device is not None:
            array = array.to(self.device)
        return Tensor.make_const(array, requires_grad=False)

    def _batches_of_indices(self, order: np.ndarray[Any, Any]) -> Iterator[np.ndarray[Any, Any]]:
        n = len(order)
        stop = n - n % self.batch_size if self.drop_last else n
        for begin in range(0, stop, self.batch_size):
            yield order[begin : begin + self.batch_size]

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        # Drawn here, when the iteration starts (not at the first batch): the course's order of draws.
        if self.sampler is not None:
            return self._epoch(np.fromiter(iter(self.sampler), dtype=np.int64))
        order = np.random.permutation(len(self.dataset)) if self.shuffle else None  # noqa: NPY002 (the course's)
        return self._epoch(order)

    def _epoch(self, order: np.ndarray[Any, Any] | None) -> Iterator[tuple[Tensor, ...]]:
        dataset = self.dataset
        if isinstance(dataset, CppDataset) and dataset.batches_in_cpp:
            yield from self._native_epoch(dataset, order)
            return
        if order is None:
            order = np.arange(len(dataset))
        for indices in self._batches_of_indices(order):
            samples = [self._sample(int(i)) for i in indices]
            columns = zip(*samples, strict=True)
            yield tuple(self._tensor(_core.array(np.stack([np.asarray(x) for x in column]))) for column in columns)

    def _native_epoch(self, dataset: CppDataset, order: np.ndarray[Any, Any] | None) -> Iterator[tuple[Tensor, ...]]:
        """The batches of a C++ dataset without transforms, in ``order`` (None: unshuffled)."""
        fields = dataset._fields()
        if order is not None and self.num_workers == 0:
            # NumPy gathers each batch from zero-copy views of the C++ arrays.
            views = [a.numpy() for a in fields]
            for indices in self._batches_of_indices(order):
                yield tuple(
                    self._tensor(_core.array(v[indices], device=a.device)) for v, a in zip(views, fields, strict=True)
                )
            return
        # The loader reads the fields (the layout the dataset gives, e.g. MNIST's flattened images), in the
        # drawn order when shuffling. seed=0: the loader never shuffles itself, and drawing a seed would
        # advance the C++ generator.
        loader = _core.DataLoader(
            _core.NDArrayDataset(fields), self.batch_size, False, self.drop_last, self.num_workers, 0
        )
        for batch in iter(loader) if order is None else loader.epoch(order.tolist()):
            yield tuple(self._tensor(a) for a in batch)

    def _sample(self, index: int) -> tuple[Any, ...]:
        sample = self.dataset[index]
        return tuple(sample) if isinstance(sample, tuple | list) else (sample,)
