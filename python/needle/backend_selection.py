"""The course's ``needle.backend_selection``: which array library backs Tensors, chosen as in the course by
the environment variable ``NEEDLE_BACKEND`` when Needle is imported.

Needle's arrays are always its C++ NDArray (``needle.backend_ndarray``, which ``array_api`` is); what the
choice changes is the dtype of floating-point input given without one:

- ``nd`` (the default), the course's NDArray backend: float32, NumPy float64 arrays and Python floats included.
- ``np``, the course's NumPy backend (hw1, hw2): NumPy's dtypes, so float64 arrays and Python floats stay
  float64 (the course's float64 gradient checks need this).

``needle._core.set_float_input_policy`` changes it later in a process.
"""

from __future__ import annotations

import os

from needle import _core
from needle import backend_ndarray as array_api
from needle.backend_ndarray import BackendDevice, NDArray, all_devices, cpu, cpu_numpy, cuda, default_device

_POLICIES = {"nd": "float32", "np": "numpy"}

#: The backend chosen by NEEDLE_BACKEND: "nd" (default) or "np".
BACKEND = os.environ.get("NEEDLE_BACKEND", "nd")
if BACKEND not in _POLICIES:
    raise ValueError(f"NEEDLE_BACKEND must be 'nd' or 'np', got {BACKEND!r}")
_core.set_float_input_policy(_POLICIES[BACKEND])

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
