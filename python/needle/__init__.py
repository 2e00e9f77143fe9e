"""Needle: a deep learning framework with a C++20 core (``import needle as ndl``).

``ndl.Tensor`` with autograd, the functional ops of ``needle.ops`` (also available here), the devices, and
``needle.init``, ``needle.nn``, ``needle.optim``, ``needle.data`` and checkpoints (``save``/``load``). Everything
heavy runs in the C++ core (``needle._core``).
"""

import numpy as _np

from needle import (
    _core,
    autograd,
    backend_ndarray,
    backend_selection,
    data,
    debug,
    init,
    nn,
    ops,
    optim,
    quantization,
    viz,
)
from needle._core import ArgumentError, get_num_threads, set_num_threads
from needle.autograd import (
    Op,
    Tensor,
    TensorOp,
    TensorTuple,
    TensorTupleOp,
    Value,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from needle.backend_ndarray import (
    BackendDevice,
    Device,
    NDArray,
    all_devices,
    cpu,
    cpu_numpy,
    cuda,
    default_device,
    ref,
)
from needle.checkpoint import load, save
from needle.debug import (
    check_against_ref,
    detect_anomaly,
    empty_cache,
    memory_stats,
    memory_summary,
    reset_peak_memory_stats,
    trace,
    track_memory,
)
from needle.init import ones, ones_like, zeros, zeros_like
from needle.ops import *  # noqa: F403 (every function of needle.ops, as in Needle)
from needle.ops import __all__ as _ops_all

__version__ = "0.1.0"


def manual_seed(seed: int) -> None:
    """Seeds Needle's C++ generator (``ops.dropout``, the C++ layers, ``needle.backend_ndarray.rand``...) and
    NumPy's global random state (with ``seed % 2**32``), which the course's API draws from: ``needle.init``,
    ``nn.Dropout``, the random transforms and DataLoader shuffling."""
    _core.manual_seed(seed)
    _np.random.seed(seed % 2**32)  # noqa: NPY002 (needle.init draws from NumPy's global state, as in Needle)


__all__ = [
    "ArgumentError",
    "BackendDevice",
    "Device",
    "NDArray",
    "Op",
    "Tensor",
    "TensorOp",
    "TensorTuple",
    "TensorTupleOp",
    "Value",
    "__version__",
    "all_devices",
    "autograd",
    "backend_ndarray",
    "backend_selection",
    "check_against_ref",
    "cpu",
    "cpu_numpy",
    "cuda",
    "data",
    "debug",
    "default_device",
    "detect_anomaly",
    "empty_cache",
    "enable_grad",
    "get_num_threads",
    "init",
    "is_grad_enabled",
    "load",
    "manual_seed",
    "memory_stats",
    "memory_summary",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "ops",
    "optim",
    "quantization",
    "ref",
    "reset_peak_memory_stats",
    "save",
    "set_grad_enabled",
    "set_num_threads",
    "trace",
    "track_memory",
    "viz",
    "zeros",
    "zeros_like",
    *_ops_all,
]
