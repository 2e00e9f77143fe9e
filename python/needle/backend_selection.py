"""The course's ``needle.backend_selection``: which array library backs Tensors.

Needle has one backend, its C++ NDArray (``needle.backend_ndarray``), so ``BACKEND`` is always ``"nd"`` and
``array_api`` is that module. The course's ``NEEDLE_BACKEND=np`` (NumPy arrays) is not offered: any other
value than "nd" gives a warning when Needle is imported, so that it is not ignored silently.
"""

from __future__ import annotations

import os
import warnings

from needle import backend_ndarray as array_api
from needle.backend_ndarray import BackendDevice, NDArray, all_devices, cpu, cpu_numpy, cuda, default_device

#: The array backend: always "nd" (Needle's NDArray).
BACKEND = "nd"

if os.environ.get("NEEDLE_BACKEND", BACKEND) != BACKEND:
    warnings.warn(
        f"NEEDLE_BACKEND={os.environ['NEEDLE_BACKEND']!r} is ignored: Needle has only the 'nd' backend (its C++ "
        "NDArray)",
        stacklevel=2,
    )

#: The course's name for the device class.
Device = BackendDevice

__all__ = [
    "BACKEND",
    "Device",
    "NDArray",
    "all_devices",
    "array_api",
    "cpu",
    "cpu_numpy",
    "cuda",
    "default_device",
]
