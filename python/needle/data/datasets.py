"""Datasets (Needle's ``Dataset`` protocol: ``__getitem__``, ``__len__``, ``apply_transforms``).

``NDArrayDataset``, ``MNISTDataset`` and ``CIFAR10Dataset`` hold their arrays in C++. Indexed by an int they
return one sample, a tuple of NumPy arrays (views of the C++ arrays); by a slice or an integer array, the
selected samples stacked along a first axis, as the course's ``NDArrayDataset`` does (``a[i]`` of each array).
Transforms run in Python on each image, in index order, so random ones draw from NumPy's global state in the
course's order. Without transforms, a ``DataLoader`` builds their batches in C++.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from needle import _core

TransformLike = Callable[[Any], Any]
#: What a dataset accepts as an index: one sample (an int) or several (a slice, an integer array or list).
Index = int | np.integer[Any] | slice | Sequence[int] | np.ndarray[Any, Any]


class Dataset:
    """Base class of datasets, as in Needle: subclasses implement ``__getitem__`` and ``__len__``."""

    def __init__(self, transforms: Sequence[TransformLike] | None = None) -> None:
        self.transforms = transforms

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.__getitem__ is not implemented")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__}.__len__ is not implemented")

    def apply_transforms(self, x: Any) -> Any:
        """The transforms applied in order to ``x`` (an (H, W, C) image)."""
        if self.transforms is not None:
            for transform in self.transforms:
                x = transform(x)
        return x


def _is_single(index: object) -> bool:
    """Whether ``index`` selects one sample (an int, a NumPy integer or a 0-d integer array)."""
    if isinstance(index, bool):
        return False
    if isinstance(index, int | np.integer):
        return True
    return isinstance(index, np.ndarray) and index.ndim == 0 and np.issubdtype(index.dtype, np.integer)


class CppDataset(Dataset):
    """A dataset held by a C++ dataset (``_cpp``): sample i is row i of each of its arrays (``_fields()``)."""

    _cpp: _core.Dataset

    def _fields(self) -> list[_core.NDArray]:
        """The arrays whose rows are the samples (image first when there is an image)."""
        raise NotImplementedError(f"{type(self).__name__}._fields is not implemented")

    @property
    def batches_in_cpp(self) -> bool:
        """Whether a DataLoader may build this dataset's batches in C++: only without transforms, which run
        in Python so that random ones draw in the course's order."""
        return not self.transforms

    def _transform_image(self, image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.asarray(self.apply_transforms(image))

    def __getitem__(self, index: Index) -> tuple[np.ndarray[Any, Any], ...]:
        """One sample for an int (negative counts from the end); for a slice or an integer array, the samples
        it selects stacked along a new first axis (``(images, labels)``), as NumPy indexing of each array."""
        if _is_single(index):
            position = int(index)  # type: ignore[arg-type]
            if not -len(self) <= position < len(self):
                raise IndexError(f"{type(self).__name__}: index {position} is out of range for {len(self)} samples")
            sample = tuple(a.numpy()[position] for a in self._fields())  # rows of zero-copy views
            if self.transforms:
                sample = (self._transform_image(sample[0]), *sample[1:])
            return sample
        if isinstance(index, str | float) or (isinstance(index, np.ndarray) and index.dtype.kind not in "iub"):
            raise TypeError(f"{type(self).__name__}: index with an int, a slice or an integer array, not {index!r}")
        fields = tuple(a.numpy()[index] for a in self._fields())  # NumPy indexing of zero-copy views
        if self.transforms:
            images = [self._transform_image(image) for image in fields[0]]
            fields = (np.stack(images) if images else fields[0], *fields[1:])
        return fields

    def __len__(self) -> int:
        return len(self._cpp)


class NDArrayDataset(CppDataset):
    """Sample i is the i-th row of every array (Needle's NDArrayDataset(*arrays))."""

    def __init__(self, *arrays: Any) -> None:
        super().__init__(None)
        self.arrays = [a if isinstance(a, _core.NDArray) else _core.array(np.asarray(a)) for a in arrays]
        self._cpp = _core.NDArrayDataset(self.arrays)

    def _fields(self) -> list[_core.NDArray]:
        return self.arrays


class MNISTDataset(CppDataset):
    """MNIST or Fashion-MNIST from IDX files (gzipped or not), as the course's dataset gives them: samples
    (image (784,) float32 in [0, 1], the 28 x 28 pixels row by row; label uint8). Transforms see each image
    as (28, 28, 1) and their result is flattened again (other IDX image sizes alike). A missing, truncated
    or malformed file raises ValueError naming it."""

    _cpp: _core.MNISTDataset

    def __init__(
        self,
        image_filename: str | os.PathLike[str],
        label_filename: str | os.PathLike[str],
        transforms: Sequence[TransformLike] | None = None,
    ) -> None:
        super().__init__(transforms)
        self._cpp = _core.MNISTDataset(os.fspath(image_filename), os.fspath(label_filename))
        # The C++ reader keeps (N, 28, 28, 1) images and int64 labels; the course's layout is a view of
        # the images and a uint8 copy of the labels (one byte per image).
        images = self._cpp.images
        self._image_shape = images.shape[1:]  # (28, 28, 1) for MNIST; the IDX header decides
        self._flat_images = images.reshape((images.shape[0], int(np.prod(self._image_shape))))
        self._uint8_labels = self._cpp.labels.astype("uint8")

    def _fields(self) -> list[_core.NDArray]:
        return [self._flat_images, self._uint8_labels]

    def _transform_image(self, image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        out = np.asarray(self.apply_transforms(image.reshape(self._image_shape)))
        return np.ascontiguousarray(out).reshape(-1)

    @property
    def images(self) -> np.ndarray[Any, Any]:
        """Every image, (N, 784) float32, untransformed."""
        return self._flat_images.numpy()

    @property
    def labels(self) -> np.ndarray[Any, Any]:
        """Every label, (N,) uint8."""
        return self._uint8_labels.numpy()


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
        self._cpp = _core.CIFAR10Dataset(os.fspath(base_folder), train)

    def _transform_image(self, image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        out = np.asarray(self.apply_transforms(image.transpose(1, 2, 0)))
        return np.ascontiguousarray(out.transpose(2, 0, 1))

    def _fields(self) -> list[_core.NDArray]:
        return [self._cpp.images, self._cpp.labels]

    @property
    def images(self) -> np.ndarray[Any, Any]:
        """Every image, (N, 3, 32, 32) float32, untransformed."""
        return self._cpp.images.numpy()

    @property
    def labels(self) -> np.ndarray[Any, Any]:
        """Every label, (N,) int64."""
        return self._cpp.labels.numpy()

    #: The course's names: ``X`` the images, ``y`` the labels.
    X = images
    y = labels
