"""Image transforms of Needle's data pipeline, on one (H, W, C) image (a NumPy array or an NDArray).

The built-in ones run in C++ and draw from Needle's generator (``needle.manual_seed`` seeds it); any
callable taking and returning an (H, W, C) array can be used as a transform too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from needle import _core
from needle._core import NDArray


def _to_ndarray(image: Any) -> NDArray:
    return image if isinstance(image, NDArray) else _core.array(np.asarray(image))


class Transform:
    """Base class: ``transform(image) -> image``."""

    def __call__(self, x: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.__call__ is not implemented")


class CppTransform(Transform):
    """A transform computed by a C++ transform (``_cpp``); C++ datasets apply these themselves."""

    _cpp: _core.Transform

    def __call__(self, img: Any) -> Any:
        """The transformed image: an NDArray for an NDArray, a NumPy array otherwise."""
        out = self._cpp(_to_ndarray(img))
        return out if isinstance(img, NDArray) else out.numpy()


class RandomFlipHorizontal(CppTransform):
    """Mirrors the image left-right (along W) with probability p."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p
        self._cpp = _core.RandomFlipHorizontal(p)


class RandomCrop(CppTransform):
    """Zero-pads ``padding`` pixels around H and W and crops an H x W window shifted by up to +-padding."""

    def __init__(self, padding: int = 3) -> None:
        self.padding = padding
        self._crop = _core.RandomCrop(padding)
        self._cpp = self._crop

    def crop(self, img: Any, shift_x: int, shift_y: int) -> Any:
        """The crop for given shifts (shift_x along H, shift_y along W)."""
        out = self._crop.crop(_to_ndarray(img), shift_x, shift_y)
        return out if isinstance(img, NDArray) else out.numpy()
