"""needle.trace, detect_anomaly, check_against_ref and the memory statistics, from Python."""

from __future__ import annotations

import gc
import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle.autograd import TensorOp

THIS_FILE = Path(__file__).name


def here() -> int:
    """The caller's line number."""
    frame = inspect.currentframe()
    assert frame is not None
    assert frame.f_back is not None
    return frame.f_back.f_lineno


def tensor(shape: tuple[int, ...], seed: int, requires_grad: bool = False) -> ndl.Tensor:
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return ndl.Tensor(values, device=ndl.cpu(), requires_grad=requires_grad)


def check_nesting(events: list[dict[str, Any]]) -> None:
    by_id = {e["id"]: e for e in events}
    for e in events:
        assert e["complete"], e
        assert e["dur"] > 0, e
        if e["parent"] < 0:
            assert e["depth"] == 0
            continue
        parent = by_id[e["parent"]]
        assert parent["thread"] == e["thread"]
        assert e["depth"] == parent["depth"] + 1
        assert e["ts"] >= parent["ts"]
        assert e["ts"] + e["dur"] <= parent["ts"] + parent["dur"] + 1e-6


def test_a_traced_step_holds_exactly_its_ops_backward_nodes_and_kernels() -> None:
    x = tensor((4, 3), 1)
    w = tensor((3, 2), 2, requires_grad=True)
    with ndl.trace() as t:
        line = here() + 1
        h = x @ w
        loss = ndl.ops.summation(ndl.ops.relu(h))
        loss.backward()
    events = t.events
    check_nesting(events)
    top = [f"{e['cat']}:{e['name']}" for e in events if e["parent"] < 0]
    assert top == ["op:matmul", "op:relu", "op:summation", "autograd:backward"]
    backward = [e for e in events if e["cat"] == "backward"]
    assert [e["name"] for e in backward] == ["summation", "relu", "matmul"]
    matmul = next(e for e in events if e["cat"] == "op" and e["name"] == "matmul")
    assert matmul["inputs"] == [(4, 3), (3, 2)]
    assert matmul["outputs"] == [(4, 2)]
    assert matmul["call_site"].endswith(f"{THIS_FILE}:{line}")
    kernels = [e for e in events if e["parent"] == matmul["id"]]
    assert [k["name"] for k in kernels] == ["matmul"]
    assert kernels[0]["flops"] == 2 * 4 * 2 * 3
    # The backward matmul node contains the ops of its gradient, which run the matmul kernel.
    node = next(e for e in backward if e["name"] == "matmul")
    inner = [e for e in events if e["parent"] == node["id"]]
    assert inner
    assert all(e["cat"] in ("grad_op", "kernel") for e in inner)
    assert np.isclose(w.grad.numpy(), x.numpy().T @ (x.numpy() @ w.numpy() > 0)).all()
    summary = t.summary()
    for part in ("ops (forward", "backward nodes", "kernels (device)", "matmul (cpu)", "GFLOP/s", "GB/s"):
        assert part in summary, summary
    assert t.duration_us > 0


def test_the_saved_json_is_a_chrome_trace(tmp_path: Path) -> None:
    a = tensor((8, 8), 3, requires_grad=True)
    with ndl.trace() as t:
        ndl.ops.summation(ndl.ops.exp(a) * a).backward()
    path = tmp_path / "step.json"
    t.save(path)
    document = json.loads(path.read_text())
    assert document == t.chrome_trace()
    events = document["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    metadata = [e for e in events if e["ph"] == "M"]
    assert len(complete) == len(t.events)
    assert {m["name"] for m in metadata} == {"process_name", "thread_name"}
    for e in complete:
        assert set(e) == {"name", "cat", "ph", "ts", "dur", "pid", "tid", "args"}
        assert isinstance(e["name"], str)
        assert isinstance(e["cat"], str)
        assert isinstance(e["ts"], (int, float))
        assert e["ts"] >= 0
        assert isinstance(e["dur"], (int, float))
        assert e["dur"] > 0
        assert isinstance(e["pid"], int)
        assert isinstance(e["tid"], int)
        assert isinstance(e["args"], dict)
    assert any(e["name"] == "backward exp" for e in complete)


def test_traces_are_thread_safe_with_data_loader_workers() -> None:
    rng = np.random.default_rng(4)
    dataset = ndl.data.NDArrayDataset(rng.standard_normal((64, 5)).astype(np.float32), np.arange(64))
    loader = ndl.data.DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2)
    w = tensor((5, 3), 5, requires_grad=True)
    steps = 0
    with ndl.trace() as t:
        for xb, _ in loader:
            ndl.ops.summation(xb @ w).backward()
            steps += 1
    events = t.events
    check_nesting(events)
    assert steps == 16
    assert sum(e["cat"] == "autograd" for e in events) == 16
    assert len({e["thread"] for e in events if e["cat"] == "kernel"}) > 1


def test_one_trace_at_a_time_and_nothing_after_it() -> None:
    a = tensor((3,), 6)
    with ndl.trace() as t:
        with pytest.raises(RuntimeError, match="already recording"), ndl.trace():
            pass
        _ = a + a
    _ = a * a
    names = {e["name"] for e in t.events}
    assert "add" in names
    assert "multiply" not in names
    with pytest.raises(RuntimeError, match="still recording"), ndl.trace() as inside:
        inside.summary()


def test_anomaly_mode_names_a_planted_log_of_zero_and_its_line() -> None:
    x = ndl.Tensor(np.array([1.0, 0.0, 3.0], dtype=np.float32), requires_grad=True)
    ndl.ops.log(x)  # off: nothing is checked
    with ndl.detect_anomaly():
        y = x * 2.0
        line = here() + 2
        with pytest.raises(RuntimeError) as error:
            ndl.ops.log(y)
    message = str(error.value)
    assert message.startswith("log: forward"), message
    assert "shape (3,)" in message
    assert "1 Inf" in message
    assert f"{THIS_FILE}:{line}" in message


class NanGradient(TensorOp):
    """Identity whose gradient is NaN: a planted backward anomaly."""

    def compute(self, a: nd.NDArray) -> nd.NDArray:  # type: ignore[override]
        return a + 0.0

    def gradient(self, out_grad: ndl.Tensor, node: ndl.Tensor) -> ndl.Tensor:
        return out_grad * float("nan")


def test_anomaly_mode_names_a_planted_nan_gradient_and_the_line_that_created_the_op() -> None:
    x = ndl.Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    with ndl.detect_anomaly():
        line = here() + 1
        y = NanGradient()(x)
        loss = ndl.ops.summation(ndl.ops.exp(y))
        with pytest.raises(RuntimeError) as error:
            loss.backward()
    message = str(error.value)
    assert message.startswith("NanGradient: backward"), message
    assert "6 NaN" in message
    assert "shape (2, 3)" in message
    assert f"{THIS_FILE}:{line}" in message


class WrongOnCpu(TensorOp):
    """a + 1, except that on cpu the first element is off: a wrong kernel in miniature."""

    def compute(self, a: nd.NDArray) -> nd.NDArray:  # type: ignore[override]
        out = a + 1.0
        if out.device == nd.cpu():
            out[0] = out[0] + 0.5
        return out

    def gradient(self, out_grad: ndl.Tensor, node: ndl.Tensor) -> ndl.Tensor:
        return out_grad


def test_check_against_ref_finds_a_wrong_computation_and_passes_real_kernels() -> None:
    x = tensor((8, 5), 7)
    model = ndl.nn.Sequential(ndl.nn.Linear(5, 16), ndl.nn.ReLU(), ndl.nn.Linear(16, 4))
    labels = ndl.Tensor(np.arange(8) % 4, dtype="int64")
    with ndl.check_against_ref():
        loss = ndl.nn.SoftmaxLoss()(model(x), labels)
        loss.backward()
    with ndl.check_against_ref(rtol=0.0, atol=1e-6), pytest.raises(RuntimeError) as error:
        WrongOnCpu()(tensor((4,), 8))
    message = str(error.value)
    assert message.startswith("WrongOnCpu: "), message
    assert "input shapes (4,)" in message
    assert "max abs difference 0.5" in message
    with pytest.raises(ValueError, match="check_against_ref"), ndl.check_against_ref(rtol=-1.0):
        pass


def step_and_release() -> int:
    x = tensor((32, 64), 9)
    w = tensor((64, 10), 10, requires_grad=True)
    loss = ndl.ops.summation(ndl.ops.relu(x @ w))
    loss.backward()
    return int(ndl.memory_stats()["live_bytes"])


def test_memory_stats_return_to_their_start_after_a_step() -> None:
    gc.collect()
    ndl.empty_cache()  # earlier tests may have left freed blocks in the cpu backend's cache
    ndl.reset_peak_memory_stats()
    before = ndl.memory_stats(ndl.cpu())
    assert before["cached_bytes"] == 0
    assert before["peak_bytes"] == before["live_bytes"]
    during = step_and_release()
    gc.collect()
    after = ndl.memory_stats(ndl.cpu())
    assert during >= before["live_bytes"] + (32 * 64 + 2 * 64 * 10) * 4
    for key in ("live_bytes", "live_arrays", "live_tensors"):
        assert after[key] == before[key], key
    assert after["peak_bytes"] >= during
    # The step's arrays are all below the cache's 64 KiB minimum: nothing was kept.
    assert after["cached_bytes"] == 0
    assert ndl.empty_cache() == 0


def test_memory_summary_groups_live_tensors_by_the_line_that_created_them() -> None:
    with ndl.track_memory():
        line = here() + 1
        kept = [ndl.Tensor(np.zeros(250, dtype=np.float32)) for _ in range(3)]
    summary = ndl.memory_summary()
    assert f"{THIS_FILE}:{line}" in summary, summary
    rows = {site: (count, size) for site, count, size in ndl._core.memory_by_call_site()}
    site = next(s for s in rows if s.endswith(f"{THIS_FILE}:{line}"))
    assert rows[site] == (3, 3000)
    del kept
    gc.collect()
    assert not any(s.endswith(f"{THIS_FILE}:{line}") for s, _, _ in ndl._core.memory_by_call_site())


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return set(next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), []))
    except OSError:
        return set()


def test_fma_peak_measures_the_widest_fma_on_the_threads_asked_for() -> None:
    flags = _cpu_flags()
    expected = "avx512" if "avx512f" in flags else "avx2" if {"avx2", "fma"} <= flags else "scalar"
    for threads in (1, 2):
        peak = ndl.debug.fma_peak(threads, seconds=0.01)
        assert peak["isa"] == expected
        assert peak["threads"] == threads
        assert peak["gflops"] > 0.0
    with pytest.raises(ValueError, match="measure_fma_peak: threads"):
        ndl.debug.fma_peak(0)
    with pytest.raises(ValueError, match="measure_fma_peak: seconds"):
        ndl.debug.fma_peak(1, seconds=0.0)
