"""needle.distributed: in this process (a group of one), and in 2-rank MPI jobs of dist_worker.py.

The MPI jobs check collectives, DistributedDataParallel against one process on the whole batch (and that
ranks starting from different weights agree bit for bit), DistributedSampler with the DataLoader,
SyncBatchNorm against BatchNorm on the whole batch, checkpoint and resume, and that a rank that raises,
crashes or hangs ends the job within the timeout instead of hanging it. They skip when mpirun is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import needle as ndl
import needle.distributed as dist
from needle import _core, nn

WORKER = Path(__file__).with_name("dist_worker.py")
MPIRUN = shutil.which("mpirun")
needs_mpi = pytest.mark.skipif(
    MPIRUN is None or not _core.dist_mpi_available(), reason="needs OpenMPI (mpirun) and Needle built with MPI"
)


def mpirun(
    args: list[str], ranks: int = 2, timeout: float = 120, extra_env: dict[str, str] | None = None
) -> tuple[int, str, float]:
    """Runs dist_worker.py on `ranks` ranks; returns (exit code, output, seconds). Never hangs: a job past
    `timeout` fails the test with its output."""
    assert MPIRUN is not None
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", **(extra_env or {})}
    env.setdefault("NEEDLE_DIST_TIMEOUT", "60")
    command = [MPIRUN, "-np", str(ranks), "--oversubscribe", "--bind-to", "none", sys.executable, str(WORKER), *args]
    start = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"mpirun did not finish within {timeout} s: {e.stdout!r} {e.stderr!r}")
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every rank's results of `dist_worker.py checks` (one job for all of them)."""
    if MPIRUN is None or not _core.dist_mpi_available():
        pytest.skip("needs OpenMPI (mpirun) and Needle built with MPI")
    out = tmp_path_factory.mktemp("dist_checks")
    code, output, _ = mpirun(["checks", str(out)])
    assert code == 0, output
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@needs_mpi
def test_collectives_across_two_ranks(checks: list[dict[str, Any]]) -> None:
    for rank, result in enumerate(checks):
        c = result["collectives"]
        assert c["sum"] == [1.0, 3.0, 5.0, 7.0, 9.0]
        assert c["average"] == pytest.approx([0.0, 1.5, 3.0, 4.5])
        assert c["max"] == [1, 0]
        assert c["broadcast"] == [10.0, 10.0, 10.0]
        assert c["all_gather"] == [[0.0, 0.5], [1.0, 1.5]]
        # rows (2, 2) * (rank + 1) summed over ranks: * 3; rank r keeps row r.
        assert c["reduce_scatter"] == [[3.0 * (2 * rank), 3.0 * (2 * rank + 1)]]
        assert c["async_completed"]
        assert "rank 0 called all_reduce" in c["mismatch"]
        assert "shape (4,)" in c["mismatch"]
        assert "average" in c["average_int"]


@needs_mpi
def test_ddp_on_two_ranks_matches_one_process_on_the_whole_batch(checks: list[dict[str, Any]]) -> None:
    for result in checks:
        d = result["ddp"]
        assert d["equal_after_wrap"], "wrapping must copy rank 0's weights to every rank"
        assert d["max_diff_to_whole_batch"] < 1e-12
        assert d["ranks_bitwise_equal"]
        assert d["buckets"] == 4
        assert d["steps"] == 4
        assert d["names"][0] == "module.0.weight"


@needs_mpi
def test_distributed_sampler_shards_cover_the_dataset(checks: list[dict[str, Any]]) -> None:
    shards = [result["sampler"]["indices"] for result in checks]
    assert all(len(s) == 6 for s in shards)  # 11 examples, 2 ranks: padded to 12
    assert sorted(set(shards[0]) | set(shards[1])) == list(range(11))
    assert len(set(shards[0]) & set(shards[1])) == 1  # the one padding index
    assert [result["sampler"]["loader"] for result in checks] == shards


@needs_mpi
def test_sync_batch_norm_on_two_ranks_equals_batch_norm_on_the_whole_batch(checks: list[dict[str, Any]]) -> None:
    for result in checks:
        s = result["sync_batch_norm"]
        assert s["type"] == "SyncBatchNorm"
        for key in ("forward", "input_grad", "weight_grad", "running_var"):
            assert s[key] < 1e-10, key


@needs_mpi
def test_resuming_from_a_rank0_checkpoint_repeats_the_trajectory(tmp_path: Path) -> None:
    code, output, _ = mpirun(["resume", str(tmp_path)])
    assert code == 0, output
    for r in range(2):
        assert json.loads((tmp_path / f"rank{r}.json").read_text())["same_trajectory"]


@needs_mpi
@pytest.mark.parametrize("kind", ["raise", "crash", "hang"])
def test_a_failing_rank_ends_the_job_within_the_timeout(kind: str) -> None:
    code, output, seconds = mpirun([kind], timeout=90, extra_env={"NEEDLE_DIST_TIMEOUT": "5"})
    assert code != 0
    assert "finished" not in output
    assert seconds < 60
    if kind == "raise":
        assert "rank 1 failed: ValueError: bad batch at step 2" in output
    elif kind == "crash":
        assert "rank 1" in output
        assert "signal 9" in output
    else:
        assert "did not complete within 5 s" in output


# ---- one process: the group of one -------------------------------------------------------------------


def test_without_a_launcher_the_group_has_one_rank() -> None:
    group = dist.init()
    assert (group.rank, group.size, group.backend) == (0, 1, "local")
    assert (dist.get_world_size(), dist.get_rank(), dist.is_initialized()) == (1, 0, True)
    x = ndl.Tensor(np.array([1.0, 2.0]), dtype="float64")
    dist.all_reduce(x, op="average")
    dist.broadcast(x)
    dist.barrier()
    assert x.numpy().tolist() == [1.0, 2.0]
    assert dist.all_gather(x).numpy().tolist() == [[1.0, 2.0]]
    with pytest.raises(TypeError, match="Tensor or an NDArray"):
        dist.all_reduce(np.zeros(2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown reduce op"):
        dist.all_reduce(x, op="min")
    with pytest.raises(IndexError, match="root 1"):
        dist.broadcast(x, src=1)


def test_ddp_of_one_rank_trains_like_the_plain_model() -> None:
    np.random.seed(0)  # noqa: NPY002
    model = nn.Sequential(nn.Linear(3, 4, dtype="float64"), nn.ReLU(), nn.Linear(4, 2, dtype="float64"))
    plain = nn.Sequential(nn.Linear(3, 4, dtype="float64"), nn.ReLU(), nn.Linear(4, 2, dtype="float64"))
    plain.load_state_dict(model.state_dict())
    ddp = dist.DistributedDataParallel(model)
    x = ndl.Tensor(np.random.default_rng(1).normal(size=(5, 3)), dtype="float64")
    for m in (ddp, plain):
        m(x).sum().backward()
    for a, b in zip(model.parameters(), plain.parameters(), strict=True):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    assert ddp.comm_stats()["steps"] == 1
    with ddp.no_sync():
        ddp(x).sum().backward()
    assert ddp.comm_stats()["steps"] == 1
    assert set(ddp.state_dict()) == {f"module.{k}" for k in model.state_dict()}


def test_ddp_reports_parameters_without_gradient() -> None:
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(2, 2, dtype="float64")
            self.unused = nn.Linear(2, 2, dtype="float64")

        def forward(self, x: ndl.Tensor) -> ndl.Tensor:
            return self.used(x)

    x = ndl.Tensor(np.ones((1, 2)), dtype="float64")
    ddp = dist.DistributedDataParallel(TwoHeads())
    loss = ddp(x).sum()
    with pytest.raises(RuntimeError, match=r"'unused.weight'.*find_unused_parameters"):
        loss.backward()
    model = TwoHeads()
    ddp = dist.DistributedDataParallel(model, find_unused_parameters=True)
    ddp(x).sum().backward()
    assert model.unused.weight.grad.numpy().tolist() == [[0.0, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize(("n", "ranks", "drop_last"), [(10, 3, False), (10, 3, True), (2, 4, False), (7, 2, False)])
def test_distributed_sampler_shards_like_pytorch(n: int, ranks: int, drop_last: bool) -> None:
    # PyTorch's rule without shuffling: pad the index list with its start to a multiple of the ranks (or cut
    # it with drop_last); rank r takes every ranks-th index from r.
    per_rank = n // ranks if drop_last else -(-n // ranks)
    order = list(range(n))
    while len(order) < per_rank * ranks:
        order += order[: per_rank * ranks - len(order)]
    for r in range(ranks):
        sampler = dist.DistributedSampler(n, num_replicas=ranks, rank=r, shuffle=False, drop_last=drop_last)
        assert list(sampler) == order[: per_rank * ranks][r::ranks]
        assert len(sampler) == per_rank


def test_data_loader_reads_a_samplers_indices() -> None:
    data = ndl.data.NDArrayDataset(np.arange(6, dtype=np.float32).reshape(6, 1))
    sampler = dist.DistributedSampler(6, num_replicas=2, rank=1, shuffle=False)
    loader = ndl.data.DataLoader(data, batch_size=2, sampler=sampler)
    assert len(loader) == 2
    assert [b.numpy().ravel().tolist() for (b,) in loader] == [[1.0, 3.0], [5.0]]
    with pytest.raises(ValueError, match="sampler and shuffle"):
        ndl.data.DataLoader(data, batch_size=2, shuffle=True, sampler=sampler)


def test_sync_batch_norm_of_one_rank_is_batch_norm() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3, 2, 2))
    reference = nn.BatchNorm2d(3, dtype="float64")
    sync = dist.convert_sync_batchnorm(nn.BatchNorm2d(3, dtype="float64"))
    assert isinstance(sync, dist.SyncBatchNorm)
    for training in (True, False):
        reference.train(training)
        sync.train(training)
        np.testing.assert_allclose(
            sync(ndl.Tensor(x, dtype="float64")).numpy(), reference(ndl.Tensor(x, dtype="float64")).numpy(), atol=1e-12
        )
    np.testing.assert_allclose(sync.running_mean.numpy(), reference.running_mean.numpy(), atol=1e-12)


# ---- the examples: examples/python/train_ddp.py and examples/cpp/train_ddp, 2 ranks, tiny data ----------

REPO = Path(__file__).resolve().parents[2]
CPP_EXAMPLE = REPO / "build" / "release" / "examples" / "cpp" / "train_ddp"


def example_command(kind: str, tmp_path: Path, model: str) -> list[str]:
    from test_examples_language import write_ptb
    from test_examples_vision import write_fashion_mnist

    if model == "mlp":
        data = ["--data", str(write_fashion_mnist(tmp_path / "fmnist", n_train=64, n_test=16)), "--batch-size", "16"]
    else:
        folder = write_ptb(tmp_path / "ptb", ("valid", "test"))
        data = ["--lm-data" if kind == "python" else "--data", str(folder), "--max-steps", "3"]
        data += ["--lm-epochs", "1"] if kind == "python" else []
    program = (
        [sys.executable, str(REPO / "examples" / "python" / "train_ddp.py")] if kind == "python" else [str(CPP_EXAMPLE)]
    )
    return [*program, "--model", model, "--epochs", "1", "--threads", "1", "--out", str(tmp_path / "out"), *data]


@needs_mpi
@pytest.mark.parametrize("model", ["mlp", "transformer"])
@pytest.mark.parametrize("kind", ["python", "cpp"])
def test_train_ddp_examples_run_on_two_ranks(tmp_path: Path, kind: str, model: str) -> None:
    if kind == "cpp" and not CPP_EXAMPLE.exists():
        pytest.skip(f"{CPP_EXAMPLE} is not built (scripts/test.sh builds it)")
    assert MPIRUN is not None
    command = [MPIRUN, "-np", "2", "--oversubscribe", "--bind-to", "none", *example_command(kind, tmp_path, model)]
    env = {
        **os.environ,
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "NEEDLE_DIST_TIMEOUT": "60",
    }
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "final test accuracy" in output if model == "mlp" else "final test perplexity" in output
    assert "rank 1:" in output  # every rank's timing line
    assert (tmp_path / "out" / "checkpoint.safetensors").exists()
