"""Image transforms of Needle's data pipeline, on one (H, W, C) image (a NumPy array or an NDArray).

The random ones draw their parameters from NumPy's global random state, one draw per call and in the
course's way (``np.random.rand() < p`` for the flip, ``np.random.randint(-padding, padding + 1, size=2)``
for the crop's shifts), so ``np.random.seed(s)`` repeats the course's images; the pixels are then moved
by deterministic C++ transforms. Any callable taking and returning an (H, W, C) array can be a transform.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from needle import _core
from needle._core import NDArray


def _to_ndarray(image: Any) -> NDArray:
    return image if isinstance(image, NDArray) else _core.array(np.asarray(image))


def _like_input(out: NDArray, image: Any) -> Any:
    """An NDArray for an NDArray input, a NumPy array otherwise."""
    return out if isinstance(image, NDArray) else out.numpy()


class Transform:
    """Base class: ``transform(image) -> image``."""

    def __call__(self, x: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.__call__ is not implemented")


class RandomFlipHorizontal(Transform):
    """Mirrors the image left-right (along W) with probability p."""

    #: The C++ transform that always flips: the randomness is drawn here, in Python.
    _FLIP = _core.RandomFlipHorizontal(1.0)

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: Any) -> Any:
        """The image flipped or not (a new array either way when it is flipped, ``img`` itself otherwise)."""
        if np.random.rand() < self.p:  # noqa: NPY002 (the course draws from NumPy's global state)
            return _like_input(self._FLIP(_to_ndarray(img)), img)
        return img


class RandomCrop(Transform):
    """Zero-pads ``padding`` pixels around H and W and crops an H x W window shifted by up to +-padding."""

    def __init__(self, padding: int = 3) -> None:
        self.padding = padding

    @property
    def padding(self) -> int:
        """The largest shift, in pixels (writable: the next call uses the new value)."""
        return self._padding

    @padding.setter
    def padding(self, value: int) -> None:
        self._crop = _core.RandomCrop(int(value))  # validates (ValueError when negative)
        self._padding = int(value)

    def __call__(self, img: Any) -> Any:
        """The crop for shifts drawn as the course draws them (shift_x along H, then shift_y along W)."""
        shift_x, shift_y = np.random.randint(low=-self.padding, high=self.padding + 1, size=2)  # noqa: NPY002
        return self.crop(img, int(shift_x), int(shift_y))

    def crop(self, img: Any, shift_x: int, shift_y: int) -> Any:
        """The crop for given shifts (shift_x along H, shift_y along W)."""
        return _like_input(self._crop.crop(_to_ndarray(img), shift_x, shift_y), img)
