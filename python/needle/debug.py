"""See inside a step: tracing, anomaly mode, checking against the ``ref`` device, memory accounting.

Everything here is a thin layer over the C++ tools (``include/needle/debug/``); see ``docs/tracing.md``.

- ``needle.trace()``: a context manager recording every op's forward, every backward node and every kernel,
  nested and timed; afterwards ``.events``, ``.summary()`` and ``.save(path)`` (Chrome trace JSON).
- ``needle.detect_anomaly()``: the first op whose forward output or backward gradient holds a NaN or an Inf
  raises ``RuntimeError`` naming the op, the phase, the shapes and the line of your code that created it.
- ``needle.check_against_ref(rtol, atol)``: every op is computed again on ``ref`` and compared.
- ``needle.memory_stats()``, ``memory_summary()``, ``reset_peak_memory_stats()``, ``empty_cache()`` and
  ``track_memory()`` (record where tensors are created, for ``memory_summary``).
- ``needle.debug.fma_peak(threads)``: the machine's float32 FMA peak, measured (for a fraction of peak).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from needle import _core
from needle.backend_ndarray import Device

# Call sites name the innermost frame outside this package, relative to the directory Python started in.
_core.debug_set_package_dir(os.path.dirname(os.path.abspath(__file__)) + os.sep, os.getcwd() + os.sep)

__all__ = [
    "Trace",
    "check_against_ref",
    "detect_anomaly",
    "empty_cache",
    "fma_peak",
    "memory_stats",
    "memory_summary",
    "reset_peak_memory_stats",
    "trace",
    "track_memory",
]


class Trace:
    """A recording of what ran inside ``with needle.trace() as t:``. Read it after the block ends."""

    def __init__(self) -> None:
        self._session = _core.TraceSession()

    def __enter__(self) -> Trace:
        self._session.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._session.stop()

    @property
    def events(self) -> list[dict[str, Any]]:
        """One dict per event: ``cat`` ("op", "grad_op", "backward", "autograd", "kernel"), ``name``,
        ``ts``/``dur`` (microseconds from the start), ``thread``, ``parent`` (id, -1 at top level),
        ``depth``, ``device``, ``dtype``, ``inputs``/``outputs`` (shapes), ``call_site``, and for kernels
        ``elements``, ``flops`` and ``bytes``."""
        events: list[dict[str, Any]] = self._session.events()
        return events

    @property
    def duration_us(self) -> float:
        """Wall time of the traced block in microseconds."""
        return float(self._session.duration_us())

    def summary(self) -> str:
        """A table of time per op, backward node and kernel, share of the traced time, GFLOP/s and GB/s."""
        return str(self._session.summary())

    def chrome_trace(self) -> dict[str, Any]:
        """The recording in Chrome's trace event format, as a dict."""
        trace: dict[str, Any] = json.loads(self._session.chrome_json())
        return trace

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the Chrome trace JSON (open it in Perfetto or chrome://tracing)."""
        self._session.save(os.fspath(path))


def trace() -> Trace:
    """Records everything run inside the ``with`` block (one trace at a time, all threads)."""
    return Trace()


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Inside the block, the first NaN or Inf produced by an op's forward or backward raises RuntimeError."""
    _core.debug_enable_anomaly_mode()
    try:
        yield
    finally:
        _core.debug_disable_anomaly_mode()


@contextlib.contextmanager
def check_against_ref(rtol: float = 1e-4, atol: float = 1e-5) -> Iterator[None]:
    """Inside the block, every op not already on ``ref`` is recomputed on ``ref`` from copies of its inputs;
    the first result differing by more than ``atol + rtol * |ref|`` raises RuntimeError."""
    _core.debug_push_check_against_ref(rtol, atol)
    try:
        yield
    finally:
        _core.debug_pop_check_against_ref()


@contextlib.contextmanager
def track_memory() -> Iterator[None]:
    """Inside the block, tensors record the line that created them, for ``memory_summary()``."""
    _core.debug_enable_memory_tracking()
    try:
        yield
    finally:
        _core.debug_disable_memory_tracking()


def fma_peak(threads: int = 1, seconds: float = 0.2) -> dict[str, Any]:
    """This machine's float32 FMA peak, measured: ``threads`` threads each run independent FMA chains at
    once for about ``seconds``. Returns ``isa`` ("avx512", "avx2" or "scalar": the widest FMA the GEMM
    kernels use), ``threads`` and ``gflops`` (all threads together). The denominator of the benchmarks'
    fraction of peak."""
    peak: dict[str, Any] = _core.measure_fma_peak(threads, seconds)
    return peak


def memory_stats(device: Device | None = None) -> dict[str, int]:
    """``live_bytes``, ``cached_bytes`` (freed memory the backend keeps for reuse), ``peak_bytes`` (since
    ``reset_peak_memory_stats``), ``live_arrays`` (on the device's type) and ``live_tensors`` (all)."""
    stats: dict[str, int] = _core.memory_stats(device)
    return stats


def reset_peak_memory_stats(device: Device | None = None) -> None:
    """Restarts the device's peak at its current live bytes."""
    _core.reset_peak_memory_stats(device)


def memory_summary() -> str:
    """Per-device statistics and the live tensors created while tracked, grouped by call site."""
    return str(_core.memory_summary())


def empty_cache() -> int:
    """Releases memory held by the allocator's cache; returns the bytes released (0: there is no cache)."""
    return int(_core.empty_cache())
