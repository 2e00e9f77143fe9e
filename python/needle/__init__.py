"""Needle: a deep learning framework with a C++20 core (``import needle as ndl``)."""

from needle import backend_ndarray
from needle.backend_ndarray import (
    BackendDevice,
    NDArray,
    all_devices,
    cpu,
    cpu_numpy,
    cuda,
    default_device,
    manual_seed,
    ref,
)

__version__ = "0.1.0"

__all__ = [
    "BackendDevice",
    "NDArray",
    "__version__",
    "all_devices",
    "backend_ndarray",
    "cpu",
    "cpu_numpy",
    "cuda",
    "default_device",
    "manual_seed",
    "ref",
]
