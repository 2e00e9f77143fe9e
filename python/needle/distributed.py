"""Data-parallel training over several processes (``needle.distributed``).

Start every rank with a launcher, e.g. ``mpirun -np 2 python train.py``; ``init()`` reads the launcher's
environment (without one, it is a group of one process and everything below still works). CPU tensors
travel through MPI, CUDA tensors through NCCL; the engine is C++ (``include/needle/dist``).

    import needle.distributed as dist
    group = dist.init()
    model = dist.DistributedDataParallel(model)      # rank 0's weights everywhere, gradients averaged
    sampler = dist.DistributedSampler(train_set, shuffle=True, seed=0)
    loader = ndl.data.DataLoader(train_set, batch_size=64, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader: ...                      # the ordinary training step

Each collective checks that every rank called it alike (same collective, dtype, shape, options) and
raises the same RuntimeError on every rank otherwise. An uncaught exception on one rank ends the whole job
with that rank's error (the other ranks would otherwise wait for it forever).
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, cast

from needle import _core
from needle._core import NDArray, Tensor
from needle.nn._layer import Layer, placement
from needle.nn.module import DeviceLike, Module
from needle.nn.norm import _BatchNorm

__all__ = [
    "DistributedDataParallel",
    "DistributedSampler",
    "ProcessGroup",
    "ReduceOp",
    "SyncBatchNorm",
    "Work",
    "abort",
    "all_gather",
    "all_reduce",
    "barrier",
    "broadcast",
    "convert_sync_batchnorm",
    "get_backend",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "init",
    "init_process_group",
    "is_initialized",
    "reduce_scatter",
    "shutdown",
]

ProcessGroup = _core.ProcessGroup
Work = _core.Work


class ReduceOp:
    """The reductions of all_reduce and reduce_scatter (plain strings work too)."""

    SUM = "sum"
    AVG = "average"
    MAX = "max"


_hook_installed = False


def _end_job_on_uncaught_exception(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    traceback.print_exception(kind, error, trace)
    _core.dist_abort(f"{kind.__name__}: {error}", 1)


def init(backend: str | None = None) -> ProcessGroup:
    """The process group of this job (set up on the first call from the launcher's environment).

    ``backend`` is accepted for PyTorch's ``init_process_group(backend=...)``: CPU tensors always use MPI and
    CUDA tensors NCCL. In a job of several ranks, an uncaught exception afterwards ends every rank."""
    del backend
    global _hook_installed
    group = _core.dist_init()
    if group.size > 1 and not _hook_installed:
        sys.excepthook = _end_job_on_uncaught_exception
        _hook_installed = True
    return group


init_process_group = init


def is_initialized() -> bool:
    return _core.dist_is_initialized()


def get_rank() -> int:
    return _core.dist_init().rank


def get_world_size() -> int:
    return _core.dist_init().size


def get_local_rank() -> int:
    """This process's index among the ranks on its machine."""
    return _core.dist_init().local_rank


def get_backend() -> str:
    return _core.dist_init().backend


def shutdown() -> None:
    """Runs the collectives still queued and finalizes MPI (done automatically at exit)."""
    _core.dist_shutdown()


def abort(message: str, exit_code: int = 1) -> None:
    """Ends every rank of the job now, printing ``message`` with this rank's number."""
    _core.dist_abort(message, exit_code)


def _array(value: Tensor | NDArray, what: str) -> NDArray:
    if isinstance(value, Tensor):
        return value.cached_data
    if isinstance(value, NDArray):
        return value
    raise TypeError(f"{what}: expected a Tensor or an NDArray, got {type(value).__name__}")


def all_reduce(tensor: Tensor | NDArray, op: str = ReduceOp.SUM, async_op: bool = False) -> Work | None:
    """Reduces ``tensor`` over the ranks, in place: ``"sum"``, ``"average"`` or ``"max"``."""
    return cast("Work | None", init().all_reduce(_array(tensor, "all_reduce"), op, async_op))


def broadcast(tensor: Tensor | NDArray, src: int = 0, async_op: bool = False) -> Work | None:
    """Copies rank ``src``'s ``tensor`` into every rank's, in place."""
    return cast("Work | None", init().broadcast(_array(tensor, "broadcast"), src, async_op))


def barrier(async_op: bool = False) -> Work | None:
    """Returns once every rank has called it."""
    return cast("Work | None", init().barrier(async_op))


def all_gather(tensor: Tensor | NDArray) -> Tensor | NDArray:
    """Every rank's ``tensor`` stacked along a new first axis: shape (world_size, *tensor.shape)."""
    array = _array(tensor, "all_gather")
    group = init()
    output = _core.empty((group.size, *array.shape), dtype=array.dtype, device=array.device)
    group.all_gather_into(output, array)
    return Tensor(output) if isinstance(tensor, Tensor) else output


def reduce_scatter(tensor: Tensor | NDArray, op: str = ReduceOp.SUM) -> Tensor | NDArray:
    """``tensor`` (world_size * n, ...) reduced over the ranks; this rank's block of n rows."""
    array = _array(tensor, "reduce_scatter")
    group = init()
    if array.ndim == 0 or array.shape[0] % group.size != 0:
        raise ValueError(
            f"reduce_scatter: the first dimension must be a multiple of the number of ranks ({group.size}), "
            f"got shape {tuple(array.shape)}"
        )
    output = _core.empty((array.shape[0] // group.size, *array.shape[1:]), dtype=array.dtype, device=array.device)
    group.reduce_scatter_into(output, array, op)
    return Tensor(output) if isinstance(tensor, Tensor) else output


class DistributedDataParallel(Module):
    """Wraps ``module`` for data-parallel training: rank 0's parameters and buffers are copied into every
    rank's at construction (after checking every rank built the same model), and each backward pass
    averages the gradients over the ranks, bucket by bucket while backward still runs.

    ``bucket_cap_mb`` sizes the buckets; with ``find_unused_parameters``, parameters that a step leaves
    without a gradient count as zero (otherwise that is an error). ``no_sync()`` accumulates gradients
    locally for the backward passes inside it."""

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0, find_unused_parameters: bool = False) -> None:
        super().__init__()
        init()
        self.module = module
        named = module.named_parameters()
        _core.dist_broadcast_from_rank0([*named, *module.named_buffers()], "parameters and buffers")
        self._reducer = _core.GradientReducer(named, bucket_cap_mb, find_unused_parameters)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes inside this block only accumulate local gradients; the next one outside it
        averages everything accumulated."""
        self._reducer.sync = False
        try:
            yield
        finally:
            self._reducer.sync = True

    def comm_stats(self) -> dict[str, float]:
        """Per-step gradient bytes and buckets, seconds spent all-reducing and waiting for it at the end
        of backward, and the fraction of all-reduce time hidden behind backward."""
        return self._reducer.stats()

    def bucket_names(self) -> list[list[str]]:
        return self._reducer.bucket_names()

    def _state_items(self) -> Iterator[tuple[str, object]]:
        for name, value in super()._state_items():
            if name != "_reducer":
                yield name, value


class DistributedSampler:
    """The indices of ``dataset`` this rank reads each epoch: disjoint shards covering the dataset, padded
    (by repeating the start) so every rank gets ``len(self)`` indices, or cut with ``drop_last``. With
    ``shuffle``, every rank draws the same permutation from ``seed + epoch``: call ``set_epoch`` each epoch.
    Pass it to ``DataLoader(..., sampler=...)``."""

    def __init__(
        self,
        dataset: Sequence[Any] | int,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        size = dataset if isinstance(dataset, int) else len(dataset)
        self._cpp = _core.DistributedSampler(
            size, -1 if num_replicas is None else num_replicas, -1 if rank is None else rank, shuffle, seed, drop_last
        )

    def set_epoch(self, epoch: int) -> None:
        self._cpp.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self._cpp.epoch

    def __iter__(self) -> Iterator[int]:
        return iter(self._cpp.indices())

    def __len__(self) -> int:
        return len(self._cpp)


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, C) or (N, C, ...) with the statistics of the global batch (every rank's N), from
    two all-reduces per forward in training; eval mode uses the running statistics. Same parameters,
    buffers and semantics as BatchNorm1d/2d (which it equals with one rank)."""

    _cpp: _core.SyncBatchNorm  # type: ignore[assignment]

    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        Layer.__init__(self, _core.SyncBatchNorm, dim, eps, momentum, *placement(device, dtype))


def convert_sync_batchnorm(module: Module) -> Module:
    """Replaces every BatchNorm1d/2d inside ``module`` (attributes, lists, tuples and dicts) by a
    SyncBatchNorm holding the same values, in place; returns ``module`` (or the replacement when
    ``module`` itself is a BatchNorm)."""

    def convert(value: object) -> object:
        if isinstance(value, _BatchNorm) and not isinstance(value, SyncBatchNorm):
            sync = SyncBatchNorm(value.dim, value.eps, value.momentum, value.weight.device, value.weight.dtype)
            sync.load_state_dict(value.state_dict())
            sync.train(value.training)
            return sync
        if isinstance(value, Module):
            for name, item in list(vars(value).items()):
                converted = convert(item)
                if converted is not item:
                    setattr(value, name, converted)
            return value
        if isinstance(value, list):
            value[:] = [convert(item) for item in value]
            return value
        if isinstance(value, tuple):
            return tuple(convert(item) for item in value)
        if isinstance(value, dict):
            for key, item in list(value.items()):
                value[key] = convert(item)
            return value
        return value

    result = convert(module)
    assert isinstance(result, Module)
    return result
