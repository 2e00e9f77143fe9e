"""The program every rank of tests/python/test_distributed.py's MPI jobs runs (not a test module itself).

    mpirun -np 2 python dist_worker.py checks OUT_DIR     # runs every check, rank r writes OUT_DIR/rank{r}.json
    mpirun -np 2 python dist_worker.py raise|crash|hang   # rank 1 fails at step 2 in that way
    mpirun -np 2 python dist_worker.py resume OUT_DIR     # checkpoint at step 2, reload, compare trajectories

Each check records what it measured (maximum differences, messages, indices); the pytest side asserts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import needle as ndl
import needle.distributed as dist
from needle import nn

group = dist.init()
RANK, SIZE = group.rank, group.size


def mlp(seed: int) -> nn.Module:
    np.random.seed(seed)  # noqa: NPY002 (the course's initializers draw from NumPy's global state)
    return nn.Sequential(nn.Linear(4, 8, dtype="float64"), nn.ReLU(), nn.Linear(8, 3, dtype="float64"))


def global_batches(steps: int, per_rank: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(5)  # the same data on every rank
    return [(rng.normal(size=(per_rank * SIZE, 4)), rng.normal(size=(per_rank * SIZE, 3))) for _ in range(steps)]


def mse(out: ndl.Tensor, target: np.ndarray) -> ndl.Tensor:
    diff = out - ndl.Tensor(target, dtype="float64")
    return (diff * diff).sum() / float(target.size)


def params_of(model: nn.Module) -> list[np.ndarray]:
    return [p.numpy().copy() for p in model.parameters()]


def gathered_equal_across_ranks(model: nn.Module) -> bool:
    for p in model.parameters():
        rows = dist.all_gather(p.cached_data).numpy()
        if any(rows[r].tobytes() != rows[0].tobytes() for r in range(SIZE)):
            return False
    return True


def check_collectives() -> dict[str, Any]:
    out: dict[str, Any] = {}
    x = ndl.Tensor(np.arange(5, dtype=np.float32) + RANK, dtype="float32")
    dist.all_reduce(x)
    out["sum"] = x.numpy().tolist()
    y = ndl.Tensor(np.arange(4, dtype=np.float64) * (RANK + 1), dtype="float64")
    dist.all_reduce(y, op=dist.ReduceOp.AVG)
    out["average"] = y.numpy().tolist()
    z = ndl.Tensor(np.array([RANK, -RANK], dtype=np.int64), dtype="int64")
    dist.all_reduce(z, op="max")
    out["max"] = z.numpy().tolist()
    b = ndl.Tensor(np.full(3, RANK * 10.0, dtype=np.float32), dtype="float32")
    dist.broadcast(b, src=SIZE - 1)
    out["broadcast"] = b.numpy().tolist()
    out["all_gather"] = dist.all_gather(ndl.Tensor(np.array([RANK, RANK + 0.5]), dtype="float64")).numpy().tolist()
    rows = ndl.Tensor(np.arange(2 * SIZE, dtype=np.float64).reshape(SIZE, 2) * (RANK + 1), dtype="float64")
    out["reduce_scatter"] = dist.reduce_scatter(rows).numpy().tolist()
    works = [dist.all_reduce(ndl.Tensor(np.ones(2), dtype="float64"), async_op=True) for _ in range(3)]
    for work in reversed(works):
        assert work is not None
        work.wait(timeout=60)
    out["async_completed"] = all(w is not None and w.completed for w in works)
    try:
        dist.all_reduce(ndl.Tensor(np.zeros(3 + RANK), dtype="float32"))
        out["mismatch"] = None
    except RuntimeError as e:
        out["mismatch"] = str(e)
    try:
        dist.all_reduce(ndl.Tensor(np.zeros(2, dtype=np.int64), dtype="int64"), op="average")
        out["average_int"] = None
    except TypeError as e:
        out["average_int"] = str(e)
    dist.barrier()
    return out


def check_ddp() -> dict[str, Any]:
    """2 ranks on halves of each batch against one process on the whole batch, 4 SGD steps."""
    model = mlp(100 + RANK)  # different initial weights on every rank
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.0001)
    equal_after_wrap = gathered_equal_across_ranks(model)
    whole = mlp(999)
    whole.load_state_dict(model.state_dict())
    opt = ndl.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.5)
    whole_opt = ndl.optim.SGD(whole.parameters(), lr=0.1, momentum=0.5)
    per_rank = 4
    for x, y in global_batches(4, per_rank):
        mine = slice(RANK * per_rank, (RANK + 1) * per_rank)
        opt.reset_grad()
        mse(ddp(ndl.Tensor(x[mine], dtype="float64")), y[mine]).backward()
        opt.step()
        whole_opt.reset_grad()
        mse(whole(ndl.Tensor(x, dtype="float64")), y).backward()
        whole_opt.step()
    diff = max(float(np.abs(a - b).max()) for a, b in zip(params_of(model), params_of(whole), strict=True))
    stats = ddp.comm_stats()
    return {
        "equal_after_wrap": equal_after_wrap,
        "max_diff_to_whole_batch": diff,
        "ranks_bitwise_equal": gathered_equal_across_ranks(model),
        "buckets": stats["buckets"],
        "steps": stats["steps"],
        "names": [name for name, _ in ddp.named_parameters()],
    }


def check_sampler() -> dict[str, Any]:
    sampler = dist.DistributedSampler(list(range(11)), shuffle=True, seed=3)
    sampler.set_epoch(2)
    data = ndl.data.NDArrayDataset(np.arange(11, dtype=np.float32).reshape(11, 1))
    loader = ndl.data.DataLoader(data, batch_size=2, sampler=sampler)
    seen = [int(v) for (batch,) in loader for v in batch.numpy().ravel()]
    return {"indices": list(sampler), "loader": seen, "len": len(sampler)}


def check_sync_batch_norm() -> dict[str, Any]:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(3 * SIZE, 2, 2, 2))
    reference = nn.BatchNorm2d(2, dtype="float64")
    model = dist.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(2, dtype="float64")))
    x_all = ndl.Tensor(x, dtype="float64", requires_grad=True)
    y_all = reference(x_all)
    (y_all * y_all).sum().backward()
    mine = slice(3 * RANK, 3 * RANK + 3)
    x_mine = ndl.Tensor(x[mine], dtype="float64", requires_grad=True)
    y_mine = model(x_mine)
    (y_mine * y_mine).sum().backward()
    grad_w = model.modules[0].weight.grad.cached_data.copy()
    dist.all_reduce(grad_w)
    return {
        "type": type(model.modules[0]).__name__,
        "forward": float(np.abs(y_mine.numpy() - y_all.numpy()[mine]).max()),
        "input_grad": float(np.abs(x_mine.grad.numpy() - x_all.grad.numpy()[mine]).max()),
        "weight_grad": float(np.abs(grad_w.numpy() - reference.weight.grad.numpy()).max()),
        "running_var": float(np.abs(model.modules[0].running_var.numpy() - reference.running_var.numpy()).max()),
    }


def run_checks(out_dir: Path) -> None:
    checks: dict[str, Callable[[], dict[str, Any]]] = {
        "collectives": check_collectives,
        "ddp": check_ddp,
        "sampler": check_sampler,
        "sync_batch_norm": check_sync_batch_norm,
    }
    results = {name: check() for name, check in checks.items()}
    (out_dir / f"rank{RANK}.json").write_text(json.dumps(results))


def train(model: nn.Module, opt: ndl.optim.Optimizer, batches: list[tuple[np.ndarray, np.ndarray]]) -> None:
    per_rank = batches[0][0].shape[0] // SIZE
    mine = slice(RANK * per_rank, (RANK + 1) * per_rank)
    for x, y in batches:
        opt.reset_grad()
        mse(model(ndl.Tensor(x[mine], dtype="float64")), y[mine]).backward()
        opt.step()


def run_resume(out_dir: Path) -> None:
    """Trains 4 steps straight, and 2 steps + checkpoint (rank 0 writes) + reload on every rank + 2 steps."""
    batches = global_batches(4, 3)
    straight = dist.DistributedDataParallel(mlp(1))
    straight_opt = ndl.optim.Adam(straight.parameters(), lr=0.01)
    train(straight, straight_opt, batches)

    first = dist.DistributedDataParallel(mlp(1))
    first_opt = ndl.optim.Adam(first.parameters(), lr=0.01)
    train(first, first_opt, batches[:2])
    path = out_dir / "checkpoint.safetensors"
    if RANK == 0:
        state = {**{f"model.{k}": v for k, v in first.module.state_dict().items()}}
        state.update({f"optim.{k}": v for k, v in first_opt.state_dict().items()})
        ndl.save(state, path)
    dist.barrier()
    loaded = ndl.load(path)
    resumed_model = mlp(77 + RANK)  # other weights, replaced by the checkpoint's
    resumed_model.load_state_dict({k[6:]: v for k, v in loaded.items() if k.startswith("model.")})
    resumed = dist.DistributedDataParallel(resumed_model)
    resumed_opt = ndl.optim.Adam(resumed.parameters(), lr=0.01)
    resumed_opt.load_state_dict({k[6:]: v for k, v in loaded.items() if k.startswith("optim.")})
    train(resumed, resumed_opt, batches[2:])
    same = all(a.tobytes() == b.tobytes() for a, b in zip(params_of(straight), params_of(resumed), strict=True))
    (out_dir / f"rank{RANK}.json").write_text(json.dumps({"same_trajectory": same}))


def run_failure(kind: str) -> None:
    """Rank 1 fails at step 2; the other ranks are in collectives meanwhile."""
    x = ndl.Tensor(np.ones(3, dtype=np.float32), dtype="float32")
    for step in range(5):
        if step == 2 and RANK == 1:
            if kind == "raise":
                raise ValueError("bad batch at step 2")
            if kind == "crash":
                os.kill(os.getpid(), 9)
            time.sleep(3600)  # hang: the others' collectives time out
        dist.all_reduce(x)
    print("finished", RANK, flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "checks":
        run_checks(Path(sys.argv[2]))
    elif mode == "resume":
        run_resume(Path(sys.argv[2]))
    else:
        run_failure(mode)
