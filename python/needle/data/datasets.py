"""Datasets (Needle's ``Dataset`` protocol: ``__getitem__``, ``__len__``, ``apply_transforms``).

``NDArrayDataset``, ``MNISTDataset`` and ``CIFAR10Dataset`` are read and indexed in C++; their samples are
tuples of NumPy arrays (views of the C++ arrays). When all their transforms are built-in ones, the
transforms run in C++ too, and a ``DataLoader`` builds their batches in C++ (on worker threads with
``num_workers > 0``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from needle import _core
from needle.data.transforms import CppTransform

TransformLike = Callable[[Any], Any]


class Dataset:
    """Base class of datasets, as in Needle: subclasses implement ``__getitem__`` and ``__len__``."""

    def __init__(self, transforms: Sequence[TransformLike] | None = None) -> None:
        self.transforms = transforms

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.__getitem__ is not implemented")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__}.__len__ is not implemented")

    def apply_transforms(self, x: Any) -> Any:
        """The transforms applied in order to ``x`` (an (H, W, C) image)."""
        if self.transforms is not None:
            for transform in self.transforms:
                x = transform(x)
        return x


class CppDataset(Dataset):
    """A dataset held by a C++ dataset (``_cpp``)."""

    _cpp: _core.Dataset

    def __init__(self, transforms: Sequence[TransformLike] | None) -> None:
        super().__init__(transforms)
        # Transforms run in C++ when all of them are built-in; otherwise all of them run here, in order.
        self._python_transforms = transforms is not None and not all(isinstance(t, CppTransform) for t in transforms)

    def _cpp_transforms(self) -> list[_core.Transform]:
        if self.transforms is None or self._python_transforms:
            return []
        return [t._cpp for t in self.transforms if isinstance(t, CppTransform)]

    @property
    def batches_in_cpp(self) -> bool:
        """Whether the DataLoader can build this dataset's batches in C++ (no Python transforms)."""
        return not self._python_transforms

    def _transform_image(self, image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.asarray(self.apply_transforms(image))

    def __getitem__(self, index: int) -> tuple[np.ndarray[Any, Any], ...]:
        sample = tuple(a.numpy() for a in self._cpp[int(index)])
        if self._python_transforms:
            sample = (self._transform_image(sample[0]), *sample[1:])
        return sample

    def __len__(self) -> int:
        return len(self._cpp)


class NDArrayDataset(CppDataset):
    """Sample i is the i-th row of every array (Needle's NDArrayDataset(*arrays))."""

    def __init__(self, *arrays: Any) -> None:
        super().__init__(None)
        self.arrays = [a if isinstance(a, _core.NDArray) else _core.array(np.asarray(a)) for a in arrays]
        self._cpp = _core.NDArrayDataset(self.arrays)


class MNISTDataset(CppDataset):
    """MNIST or Fashion-MNIST from IDX files (gzipped or not): samples (image (28, 28, 1) float32 in [0, 1],
    label int64). A missing, truncated or malformed file raises ValueError naming it."""

    _cpp: _core.MNISTDataset

    def __init__(
        self,
        image_filename: str | os.PathLike[str],
        label_filename: str | os.PathLike[str],
        transforms: Sequence[TransformLike] | None = None,
    ) -> None:
        super().__init__(transforms)
        self._cpp = _core.MNISTDataset(os.fspath(image_filename), os.fspath(label_filename), self._cpp_transforms())

    @property
    def images(self) -> np.ndarray[Any, Any]:
        """Every image, (N, 28, 28, 1) float32, untransformed."""
        return self._cpp.images.numpy()

    @property
    def labels(self) -> np.ndarray[Any, Any]:
        """Every label, (N,) int64."""
        return self._cpp.labels.numpy()


class CIFAR10Dataset(CppDataset):
    """CIFAR-10 from the ``cifar-10-batches-py`` folder (data_batch_1..5 for train, test_batch otherwise):
    samples (image (3, 32, 32) float32 in [0, 1], label int64). The pickles are read by a restricted reader
    that never runs code; a missing or malformed batch raises ValueError naming it. Transforms see (32, 32, 3)
    images, as in Needle. ``p`` is kept for Needle's signature."""

    _cpp: _core.CIFAR10Dataset

    def __init__(
        self,
        base_folder: str | os.PathLike[str],
        train: bool,
        p: float | None = 0.5,
        transforms: Sequence[TransformLike] | None = None,
    ) -> None:
        super().__init__(transforms)
        self.p = p
        self._cpp = _core.CIFAR10Dataset(os.fspath(base_folder), train, self._cpp_transforms())

    def _transform_image(self, image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        out = np.asarray(self.apply_transforms(image.transpose(1, 2, 0)))
        return np.ascontiguousarray(out.transpose(2, 0, 1))

    @property
    def images(self) -> np.ndarray[Any, Any]:
        """Every image, (N, 3, 32, 32) float32, untransformed."""
        return self._cpp.images.numpy()

    @property
    def labels(self) -> np.ndarray[Any, Any]:
        """Every label, (N,) int64."""
        return self._cpp.labels.numpy()
