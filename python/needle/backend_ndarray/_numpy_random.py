"""Needle's ``device.rand``/``device.randn``: samples from NumPy's global random state.

Needle's initializers (``needle.init``) draw through these, so ``np.random.seed(s)`` reproduces Needle's numbers.
The compiled ``Device.rand``/``Device.randn`` methods call these functions.
"""

import numpy as np

from needle import _core
from needle._core import Device, NDArray


def rand(device: Device, shape: tuple[int, ...], dtype: str) -> NDArray:
    """Uniform [0, 1) samples of ``shape`` (``numpy.random.rand``) as an NDArray of ``dtype`` on ``device``."""
    samples = np.random.rand(*shape)  # noqa: NPY002 (Needle draws from NumPy's global state on purpose)
    return NDArray(samples, device=device, dtype=dtype)


def randn(device: Device, shape: tuple[int, ...], dtype: str) -> NDArray:
    """Standard normal samples of ``shape`` (``numpy.random.randn``) as an NDArray of ``dtype`` on ``device``."""
    samples = np.random.randn(*shape)  # noqa: NPY002 (Needle draws from NumPy's global state on purpose)
    return NDArray(samples, device=device, dtype=dtype)


class NumpySampleSource(_core.SampleSource):
    """Base samples for the C++ initializers from NumPy's global random state (``rand`` and ``randn`` above):
    constructing a layer or calling ``needle.init`` with it reproduces the course Needle's numbers."""

    def uniform(self, shape: tuple[int, ...], dtype: str, device: Device) -> NDArray:
        return rand(device, tuple(shape), dtype)

    def normal(self, shape: tuple[int, ...], dtype: str, device: Device) -> NDArray:
        return randn(device, tuple(shape), dtype)
