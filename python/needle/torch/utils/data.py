"""``torch.utils.data``: datasets, samplers, PyTorch's default collation and ``DataLoader``.

With ``num_workers > 0``, a TensorDataset's batches are gathered by Needle's C++ DataLoader on that many
worker threads, ahead of the loop; other datasets build their batches in the calling thread (a worker
process would copy every batch once more). Shuffling draws from
Needle's generator, which ``torch.manual_seed`` seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from needle import _core
from needle.torch._functions import randperm, stack, tensor
from needle.torch._tensor import Tensor, wrap

T = TypeVar("T")


class Dataset(Generic[T]):
    """A map-style dataset: ``__getitem__(index)`` and ``__len__``."""

    def __getitem__(self, index: int) -> T:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class TensorDataset(Dataset[tuple[Tensor, ...]]):
    """Rows of tensors that share their first dimension."""

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors or any(t.shape[0] != tensors[0].shape[0] for t in tensors):
            raise ValueError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset[T]):
    """The elements of ``dataset`` at ``indices``."""

    def __init__(self, dataset: Dataset[T], indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index: int) -> T:
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset: Dataset[T], lengths: Sequence[int | float], generator: Any = None) -> list[Subset[T]]:
    """Disjoint random subsets of the given lengths (or fractions of the dataset, as PyTorch rounds them)."""
    total = len(dataset)
    counts = [int(n) for n in lengths]
    if lengths and all(isinstance(n, float) for n in lengths) and math.isclose(sum(lengths), 1.0):
        counts = [math.floor(total * f) for f in lengths]
        for i in range(total - sum(counts)):
            counts[i % len(counts)] += 1
    if sum(counts) != total:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    order = randperm(total).tolist()
    subsets, start = [], 0
    for count in counts:
        subsets.append(Subset(dataset, order[start : start + count]))
        start += count
    return subsets


class Sampler(Generic[T]):
    """An iterable of dataset indices."""

    def __iter__(self) -> Iterator[T]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class SequentialSampler(Sampler[int]):
    """0, 1, ..., len - 1."""

    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """A new random permutation of the indices every epoch."""

    def __init__(
        self, data_source: Any, replacement: bool = False, num_samples: int | None = None, generator: Any = None
    ) -> None:
        if replacement or num_samples is not None:
            raise NotImplementedError("RandomSampler(replacement, num_samples) is not supported by needle.torch")
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(randperm(len(self.data_source)).tolist())

    def __len__(self) -> int:
        return len(self.data_source)


class BatchSampler(Sampler[list[int]]):
    """Lists of ``batch_size`` indices from ``sampler`` (the last one shorter unless ``drop_last``)."""

    def __init__(self, sampler: Any, batch_size: int, drop_last: bool) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)


def default_collate(batch: Sequence[Any]) -> Any:
    """PyTorch's collation: tensors and arrays stacked along a new first dimension, Python floats as
    float64 and ints as int64 tensors, strings kept as a list, tuples, lists and dicts collated per field."""
    first = batch[0]
    if isinstance(first, Tensor):
        return stack(list(batch))
    if isinstance(first, np.ndarray | np.generic):
        return tensor(np.stack([np.asarray(b) for b in batch]))
    if isinstance(first, bool):
        return tensor(list(batch))
    if isinstance(first, float):
        return tensor(np.asarray(batch, dtype=np.float64))
    if isinstance(first, int):
        return tensor(np.asarray(batch, dtype=np.int64))
    if isinstance(first, str | bytes):
        return list(batch)
    if isinstance(first, Mapping):
        return {key: default_collate([b[key] for b in batch]) for key in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # a namedtuple
        return type(first)(*(default_collate(list(fields)) for fields in zip(*batch, strict=True)))
    if isinstance(first, Sequence):
        if any(len(b) != len(first) for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return [default_collate(list(fields)) for fields in zip(*batch, strict=True)]
    raise TypeError(
        f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {type(first)}"
    )


class DataLoader(Generic[T]):
    """Batches of a dataset: ``batch_size``, ``shuffle``, ``drop_last``, a ``sampler`` or ``batch_sampler``,
    ``collate_fn`` (PyTorch's default collation)."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Any = None,
        batch_sampler: Any = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Any = None,
        generator: Any = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
    ) -> None:
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ValueError(
                "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last"
            )
        self.dataset, self.batch_size, self.drop_last, self.num_workers = dataset, batch_size, drop_last, num_workers
        if sampler is None:
            sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
        self.sampler = sampler
        if batch_sampler is None and batch_size is not None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn or default_collate

    def __iter__(self) -> Iterator[Any]:
        if self.batch_sampler is None:  # batch_size=None: single samples, uncollated
            for index in self.sampler:
                yield self.dataset[index]
            return
        whole_rows = isinstance(self.dataset, TensorDataset) and self.collate_fn is default_collate
        if whole_rows and self.num_workers > 0 and isinstance(self.batch_sampler, BatchSampler):
            yield from self._batches_on_worker_threads()
            return
        for indices in self.batch_sampler:
            if whole_rows:  # one gather per tensor instead of one view per sample and a stack
                rows = tensor(np.asarray(indices, dtype=np.int64))
                yield [t[rows] for t in self.dataset.tensors]
            else:
                yield self.collate_fn([self.dataset[i] for i in indices])

    def _batches_on_worker_threads(self) -> Iterator[list[Tensor]]:
        """A TensorDataset's batches gathered by Needle's C++ DataLoader on ``num_workers`` threads, ahead of
        the training loop, in the order this loader's sampler gives."""
        assert isinstance(self.batch_sampler, BatchSampler)
        tensors = self.dataset.tensors
        native = _core.DataLoader(
            _core.NDArrayDataset([t.detach()._t.cached_data for t in tensors]),
            batch_size=self.batch_sampler.batch_size,
            drop_last=self.batch_sampler.drop_last,
            num_workers=self.num_workers,
        )
        for arrays in native.epoch(list(self.sampler)):
            yield [wrap(_core.Tensor(array, requires_grad=False)) for array in arrays]

    def __len__(self) -> int:
        return len(self.batch_sampler) if self.batch_sampler is not None else len(self.sampler)
