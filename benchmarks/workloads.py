"""The standard workloads (../shared/spec/workloads.md) through Needle's Python API and through PyTorch,
interleaved repetition by repetition in one run, at 1 thread and at 2 threads.

    python benchmarks/workloads.py                       # every workload, 1 and 2 threads
    python benchmarks/workloads.py --only sgemm,tiny     # workloads whose name starts with these
    python benchmarks/workloads.py --threads 1 --reps 5  # quicker
    python benchmarks/workloads.py --memory              # also peak memory of the gpt_mini_step loop

PyTorch comes from the interpreter named by --torch-python, by default the first that can `import torch` of
.torch-venv/bin/python (PyPI's current build with MKL and oneDNN, set up by scripts/setup_torch_reference.sh),
this one, python3 on PATH and /usr/bin/python3 (Debian's python3-torch, the fallback). It
runs in a worker process that this script drives over a pipe (Debian's build multiplies matrices with
whatever `libblas.so.3` points to: install `libopenblas0-pthread`, or it is the slow reference BLAS), so
Needle and PyTorch take turns: Needle's repetition i, then PyTorch's repetition i, and so on; machine
noise hits both alike. NumPy's `@` is the third column for sgemm.

Each thread count runs in fresh processes whose thread pools are sized by NEEDLE_NUM_THREADS,
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS (set before any library starts its threads). Inputs are random
float32 (never zeros), 3 warm-ups, the median of --reps timed repetitions (default 10). The tables are
Markdown, ready for BENCHMARKS.md; "ratio" is PyTorch's time / Needle's time (above 1: Needle is faster).

How close each comes to the machine: every thread count measures the float32 FMA peak of that many
threads running at once (`needle.debug.fma_peak`) before and after its workloads and keeps the higher,
and each workload's floating-point operations per step are counted from a Needle trace of one step (the
kernels' own counts: 2 per multiply-add, 1 per element-wise operation). The same count divides both
frameworks' times, since they run the same model: the GFLOP/s columns are that count over each median
time, and "% of peak" is Needle's GFLOP/s over the measured peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SGEMM_SIZES = (256, 512, 1024, 2048)
WORKLOADS = [f"sgemm{n}" for n in SGEMM_SIZES] + [
    "mlp_step",
    "resnet9_step",
    "lstm_lm_step",
    "gpt_mini_step",
    "cnn_fmnist_step",
    "tiny_add",
    "tiny_graph",
]
TINY_OPS_PER_REP = 2000  # tiny workloads time a loop and report the time per op

Step = Callable[[], None]


# ---- the workloads, in Needle ------------------------------------------------------------------------


def needle_workload(name: str) -> Step:
    import needle as ndl
    from needle import backend_ndarray as nd
    from needle import nn

    rng = np.random.default_rng(0)

    # Data as a DataLoader yields it and as the PyTorch side makes it: no gradient (Needle's Tensor(...)
    # defaults to requires_grad=True, which would make every step also compute the input batch's gradient).
    def tensor(*shape: int) -> Any:
        return ndl.Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=False)

    def labels_like(values: Any) -> Any:
        return ndl.Tensor(values.astype(np.float32), requires_grad=False)

    def labels(n: int, classes: int) -> Any:
        return labels_like(rng.integers(0, classes, n))

    def train_step(model: Any, optimizer: Any, forward: Callable[[], Any]) -> Step:
        def step() -> None:
            optimizer.reset_grad()
            loss = forward()
            loss.backward()
            optimizer.step()
            loss.numpy()  # wait for the value, as a training loop reading the loss would

        return step

    if name.startswith("sgemm"):
        n = int(name[len("sgemm") :])
        a = nd.array(rng.random((n, n), dtype=np.float32), device=nd.cpu())
        b = nd.array(rng.random((n, n), dtype=np.float32), device=nd.cpu())
        return lambda: (a @ b, None)[1]
    if name == "mlp_step":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
        x, y = tensor(128, 784), labels(128, 10)
        loss_fn = nn.SoftmaxLoss()
        opt = ndl.optim.SGD(model.parameters(), lr=0.01)
        return train_step(model, opt, lambda: loss_fn(model(x), y))
    if name == "resnet9_step":

        def conv_bn(cin: int, cout: int, k: int, s: int) -> Any:
            return nn.Sequential(nn.Conv(cin, cout, k, stride=s), nn.BatchNorm2d(cout), nn.ReLU())

        model = nn.Sequential(
            conv_bn(3, 16, 7, 4),
            conv_bn(16, 32, 3, 2),
            nn.Residual(nn.Sequential(conv_bn(32, 32, 3, 1), conv_bn(32, 32, 3, 1))),
            conv_bn(32, 64, 3, 2),
            conv_bn(64, 128, 3, 2),
            nn.Residual(nn.Sequential(conv_bn(128, 128, 3, 1), conv_bn(128, 128, 3, 1))),
            nn.Flatten(),
            nn.Linear(128, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
        x, y = tensor(32, 3, 32, 32), labels(32, 10)
        loss_fn = nn.SoftmaxLoss()
        opt = ndl.optim.SGD(model.parameters(), lr=0.01)
        return train_step(model, opt, lambda: loss_fn(model(x), y))
    if name == "lstm_lm_step":
        seq, batch, vocab = 35, 20, 10000
        embedding, lstm, decoder = nn.Embedding(vocab, 200), nn.LSTM(200, 200, num_layers=2), nn.Linear(200, vocab)
        params = embedding.parameters() + lstm.parameters() + decoder.parameters()
        tokens = labels_like(rng.integers(0, vocab, (seq, batch)))
        targets = labels(seq * batch, vocab)
        loss_fn = nn.SoftmaxLoss()
        opt = ndl.optim.SGD(params, lr=0.01)

        def lstm_forward() -> Any:
            out, _ = lstm(embedding(tokens))
            return loss_fn(decoder(out.reshape((seq * batch, 200))), targets)

        return train_step(None, opt, lstm_forward)
    if name == "gpt_mini_step":
        vocab, batch, context = 65, 16, 128
        model = nn.Transformer(vocab, 128, num_layers=4, num_heads=4, hidden_size=512, max_seq_len=context)
        tokens = labels_like(rng.integers(0, vocab, (batch, context)))
        targets = labels(batch * context, vocab)
        loss_fn = nn.SoftmaxLoss()
        opt = ndl.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        return train_step(model, opt, lambda: loss_fn(model(tokens).reshape((batch * context, vocab)), targets))
    if name == "cnn_fmnist_step":
        # The README's CNN: two conv 3x3 + BatchNorm + ReLU + 2x2 max-pool blocks on 28x28 images, then an MLP.
        model = nn.Sequential(
            nn.Conv(1, 16, 3),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv(16, 32, 3),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
        x, y = tensor(128, 1, 28, 28), labels(128, 10)
        loss_fn = nn.SoftmaxLoss()
        opt = ndl.optim.Adam(model.parameters(), lr=1e-3)
        return train_step(model, opt, lambda: loss_fn(model(x), y))
    if name == "tiny_add":
        a, b = tensor(1), tensor(1)

        def adds() -> None:
            for _ in range(TINY_OPS_PER_REP):
                a + b

        return adds
    if name == "tiny_graph":
        w = ndl.Tensor(rng.standard_normal(1).astype(np.float32), requires_grad=True)

        def graphs() -> None:
            for _ in range(TINY_OPS_PER_REP):
                ((w * 2 + 1) * w).sum().backward()

        return graphs
    raise ValueError(f"unknown workload {name}")


def numpy_workload(name: str) -> Step:
    n = int(name[len("sgemm") :])
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    return lambda: (a @ b, None)[1]


# ---- the same workloads in PyTorch (run inside the worker process) --------------------------------------


def torch_workload(name: str, torch: Any = None) -> Step:
    """The workload in PyTorch's API: with real PyTorch (the default), or with another module of the same
    API (``needle.torch``: benchmarks/torch_layer.py)."""
    if torch is None:
        import torch
    nn = torch.nn

    torch.manual_seed(0)
    gen = np.random.default_rng(0)

    def tensor(*shape: int) -> Any:
        return torch.from_numpy(gen.standard_normal(shape).astype(np.float32))

    def labels(n: int, classes: int) -> Any:
        return torch.from_numpy(gen.integers(0, classes, n))

    def train_step(optimizer: Any, forward: Callable[[], Any]) -> Step:
        def step() -> None:
            optimizer.zero_grad()
            loss = forward()
            loss.backward()
            optimizer.step()
            loss.item()

        return step

    if name.startswith("sgemm"):
        n = int(name[len("sgemm") :])
        a, b = torch.rand(n, n), torch.rand(n, n)
        return lambda: (a @ b, None)[1]
    if name == "mlp_step":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
        x, y = tensor(128, 784), labels(128, 10)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        return train_step(opt, lambda: nn.functional.cross_entropy(model(x), y))
    if name == "resnet9_step":

        def conv_bn(cin: int, cout: int, k: int, s: int) -> Any:
            return nn.Sequential(nn.Conv2d(cin, cout, k, s, padding=k // 2), nn.BatchNorm2d(cout), nn.ReLU())

        class Residual(nn.Module):
            def __init__(self, fn: Any) -> None:
                super().__init__()
                self.fn = fn

            def forward(self, x: Any) -> Any:
                return self.fn(x) + x

        model = nn.Sequential(
            conv_bn(3, 16, 7, 4),
            conv_bn(16, 32, 3, 2),
            Residual(nn.Sequential(conv_bn(32, 32, 3, 1), conv_bn(32, 32, 3, 1))),
            conv_bn(32, 64, 3, 2),
            conv_bn(64, 128, 3, 2),
            Residual(nn.Sequential(conv_bn(128, 128, 3, 1), conv_bn(128, 128, 3, 1))),
            nn.Flatten(),
            nn.Linear(128, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
        x, y = tensor(32, 3, 32, 32), labels(32, 10)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        return train_step(opt, lambda: nn.functional.cross_entropy(model(x), y))
    if name == "lstm_lm_step":
        seq, batch, vocab = 35, 20, 10000
        embedding, lstm, decoder = nn.Embedding(vocab, 200), nn.LSTM(200, 200, num_layers=2), nn.Linear(200, vocab)
        params = [*embedding.parameters(), *lstm.parameters(), *decoder.parameters()]
        tokens, targets = torch.from_numpy(gen.integers(0, vocab, (seq, batch))), labels(seq * batch, vocab)
        opt = torch.optim.SGD(params, lr=0.01)

        def lstm_forward() -> Any:
            out, _ = lstm(embedding(tokens))
            return nn.functional.cross_entropy(decoder(out.reshape(seq * batch, 200)), targets)

        return train_step(opt, lstm_forward)
    if name == "gpt_mini_step":
        vocab, batch, context, dim, heads = 65, 16, 128, 128, 4

        class Block(nn.Module):
            """Pre-LayerNorm block like Needle's TransformerLayer (no projection biases in attention)."""

            def __init__(self) -> None:
                super().__init__()
                self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
                self.qkv, self.out = nn.Linear(dim, 3 * dim, bias=False), nn.Linear(dim, dim, bias=False)
                self.mlp = nn.Sequential(nn.Linear(dim, 512), nn.GELU(), nn.Linear(512, dim))
                self.register_buffer("mask", torch.triu(torch.ones(context, context, dtype=torch.bool), 1))

            def forward(self, x: Any) -> Any:
                b, t, _ = x.shape
                q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
                if hasattr(nn.functional, "scaled_dot_product_attention"):
                    a = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
                else:
                    scores = (q @ k.transpose(-1, -2)) / (dim // heads) ** 0.5
                    a = scores.masked_fill(self.mask[:t, :t], float("-inf")).softmax(-1) @ v
                x = x + self.out(a.transpose(1, 2).reshape(b, t, dim))
                return x + self.mlp(self.ln2(x))

        class Gpt(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(context, dim)
                self.blocks = nn.Sequential(*[Block() for _ in range(4)])
                self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab)

            def forward(self, idx: Any) -> Any:
                x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
                return self.head(self.norm(self.blocks(x)))

        model = Gpt()
        tokens, targets = torch.from_numpy(gen.integers(0, vocab, (batch, context))), labels(batch * context, vocab)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        return train_step(opt, lambda: nn.functional.cross_entropy(model(tokens).reshape(-1, vocab), targets))
    if name == "cnn_fmnist_step":
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
        x, y = tensor(128, 1, 28, 28), labels(128, 10)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        return train_step(opt, lambda: nn.functional.cross_entropy(model(x), y))
    if name == "tiny_add":
        a, b = tensor(1), tensor(1)

        def adds() -> None:
            for _ in range(TINY_OPS_PER_REP):
                a + b

        return adds
    if name == "tiny_graph":
        w = tensor(1).requires_grad_()

        def graphs() -> None:
            for _ in range(TINY_OPS_PER_REP):
                ((w * 2 + 1) * w).sum().backward()

        return graphs
    raise ValueError(f"unknown workload {name}")


def timed(step: Step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def step_flops(step: Step) -> float:
    """Floating-point operations of one step: the kernels' counts in a Needle trace of it, each kernel once
    (a kernel that runs inside another, a composed default's primitives, is part of its parent's count)."""
    import needle as ndl

    with ndl.trace() as recording:
        step()
    events = recording.events
    kernel_ids = {e["id"] for e in events if e["cat"] == "kernel"}
    return float(sum(e["flops"] for e in events if e["cat"] == "kernel" and e["parent"] not in kernel_ids))


def torch_worker() -> None:
    """Reads one JSON command per line: {"setup": name} builds a workload, {"run": true} times one
    repetition of it; answers one JSON line each."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    step: Step | None = None
    for line in sys.stdin:
        command = json.loads(line)
        if "setup" in command:
            step = torch_workload(command["setup"])
            print(json.dumps({"ok": True}), flush=True)
        elif step is not None:
            print(json.dumps({"seconds": timed(step)}), flush=True)


class TorchWorker:
    """`script --torch-worker [extra_args]` under the PyTorch interpreter, driven one JSON line per command
    (this file's worker by default; the other benchmark scripts start their own through it)."""

    def __init__(
        self, python: str, env: dict[str, str], script: str = __file__, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.process = subprocess.Popen(
            [python, script, "--torch-worker", *extra_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the PyTorch worker exited (see its error above)")
        result: dict[str, Any] = json.loads(line)
        return result

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait()


def openblas_coretype() -> str | None:
    """The OpenBLAS kernel family for this CPU, to hand PyTorch's worker as OPENBLAS_CORETYPE. Debian's OpenBLAS
    (which Debian's PyTorch multiplies with) picks its kernels from the CPU model, and falls back to the SSE3
    "Prescott" kernels on models newer than itself: a third of the speed, which would flatter Needle. The
    ISA flags say what the CPU can do whatever its model number."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return None
    if "avx512f" in flags and "avx512bw" in flags:
        return "SkylakeX"
    if "avx2" in flags and "fma" in flags:
        return "Haswell"
    return None


def torch_env() -> dict[str, str]:
    env = dict(os.environ)
    coretype = openblas_coretype()
    if coretype and "OPENBLAS_CORETYPE" not in env:
        env["OPENBLAS_CORETYPE"] = coretype
    return env


# PyPI's current PyTorch, set up by scripts/setup_torch_reference.sh: the reference the benchmarks use first.
REFERENCE_TORCH_PYTHON = Path(__file__).resolve().parent.parent / ".torch-venv" / "bin" / "python"


def find_torch_python(requested: str | None) -> str | None:
    """The interpreter PyTorch runs in: --torch-python if given, else the first that can import torch of
    .torch-venv (PyPI's build), this one, python3 on PATH and /usr/bin/python3 (Debian's python3-torch)."""
    fallbacks = [sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]
    candidates = [requested] if requested else [str(REFERENCE_TORCH_PYTHON), *fallbacks]
    for python in candidates:
        if python and subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0:
            return python
    return None


def run_thread_count(args: argparse.Namespace) -> None:
    """Runs in a child process whose thread environment is already set: every selected workload, Needle
    and PyTorch interleaved. Prints one JSON line per workload."""
    import needle as ndl

    torch_python = find_torch_python(args.torch_python)
    worker = TorchWorker(torch_python, torch_env()) if torch_python else None
    threads = int(os.environ["NEEDLE_NUM_THREADS"])
    if hasattr(ndl, "set_num_threads"):
        ndl.set_num_threads(threads)
    # With several threads, the library that just ran leaves its threads spinning for a while (OpenBLAS and
    # OpenMP busy-wait before they sleep) and they would take cores from the next one. So each turn pauses
    # until they sleep, then runs the step untimed for 0.1 s, and then once timed. The untimed runs matter on
    # a virtual machine: a vCPU that went idle can take milliseconds to come back, and until it does a
    # library's second thread misses its share (measured here: Needle and NumPy both reach full two-thread
    # speed on sgemm512 only after 50-100 ms of work, as they are in a training loop's steady state).
    settle = args.settle if args.settle is not None else (0.25 if threads > 1 else 0.0)
    # The peak is measured before and after the workloads and the higher one kept: a clock that varies
    # (turbo, a neighbour on the host) would otherwise move every fraction with it.
    peak_before = ndl.debug.fma_peak(threads, seconds=0.5)

    def turn(run: Callable[[], float]) -> float:
        if settle > 0:
            time.sleep(settle)
            warm_until = time.perf_counter() + 0.1
            run()
            while time.perf_counter() < warm_until:
                run()
        return run()

    try:
        for name in selected(args.only):
            needle_step = needle_workload(name)
            numpy_step = numpy_workload(name) if name.startswith("sgemm") else None
            if worker is not None:
                worker.ask({"setup": name})
            times: dict[str, list[float]] = {"needle": [], "torch": [], "numpy": []}
            for rep in range(args.warmups + args.reps):
                results = {"needle": turn(lambda step=needle_step: timed(step))}
                if worker is not None:
                    results["torch"] = turn(lambda w=worker: float(w.ask({"run": True})["seconds"]))
                if numpy_step is not None:
                    results["numpy"] = turn(lambda step=numpy_step: timed(step))
                if rep >= args.warmups:
                    for key, seconds in results.items():
                        times[key].append(seconds)
            medians = {k: statistics.median(v) for k, v in times.items() if v}
            flops = None if name.startswith("tiny") else step_flops(needle_step)
            print(json.dumps({"workload": name, "threads": threads, "medians": medians, "flops": flops}), flush=True)
        peak_after = ndl.debug.fma_peak(threads, seconds=0.5)
        peak = max(peak_before, peak_after, key=lambda p: float(p["gflops"]))
        peak["range"] = sorted([peak_before["gflops"], peak_after["gflops"]])
        print(json.dumps({"peak": peak}), flush=True)
    finally:
        if worker is not None:
            print(json.dumps({"torch_version": worker.info["torch"]}), flush=True)
            worker.close()


def selected(only: str | None) -> list[str]:
    if not only:
        return WORKLOADS
    prefixes = only.split(",")
    return [w for w in WORKLOADS if any(w.startswith(p) for p in prefixes)]


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("NEEDLE_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def format_cell(name: str, seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if name.startswith("sgemm"):
        n = int(name[len("sgemm") :])
        return f"{2 * n**3 / seconds / 1e9:.1f} GFLOP/s"
    if name.startswith("tiny"):
        return f"{seconds / TINY_OPS_PER_REP * 1e6:.2f} µs"
    return f"{seconds * 1e3:.1f} ms"


def rate(flops: float | None, seconds: float | None) -> float | None:
    return flops / seconds / 1e9 if flops and seconds else None


def print_table(rows: list[dict[str, Any]], threads: int, peak: dict[str, Any] | None) -> None:
    print(f"\n{threads} thread{'s' if threads > 1 else ''}:\n")
    if peak:
        low, high = peak["range"]
        print(
            f"FMA peak ({peak['isa']}, float32), measured with {threads} thread{'s at once' if threads > 1 else ''} "
            f"before and after the workloads: {low:.1f} and {high:.1f} GFLOP/s; the higher one, "
            f"{peak['gflops']:.1f} ({peak['gflops'] / threads:.1f} per thread), is the denominator\n"
        )
    print(
        "| workload | Needle | PyTorch | ratio (PyTorch time / Needle time) | NumPy | GFLOP per step "
        "| Needle GFLOP/s | PyTorch GFLOP/s | Needle % of peak |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        m = row["medians"]
        name = row["workload"]
        flops = row.get("flops")
        ratio = f"{m['torch'] / m['needle']:.2f}" if "torch" in m else "n/a"
        needle_rate = rate(flops, m.get("needle"))
        torch_rate = rate(flops, m.get("torch"))
        share = f"{100 * needle_rate / peak['gflops']:.0f}%" if needle_rate and peak else ""
        print(
            f"| {name} | {format_cell(name, m.get('needle'))} | {format_cell(name, m.get('torch'))} | {ratio} | "
            f"{format_cell(name, m['numpy']) if 'numpy' in m else ''} | "
            f"{f'{flops / 1e9:.3f}' if flops else ''} | {f'{needle_rate:.1f}' if needle_rate else ''} | "
            f"{f'{torch_rate:.1f}' if torch_rate else ''} | {share} |"
        )


# ---- peak memory of the gpt_mini_step loop ---------------------------------------------------------------


def vm_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def memory_probe(framework: str) -> None:
    """Runs 10 gpt_mini_step repetitions in this fresh process; prints the resident-set growth from just
    before the first step to the process's peak (the loop's own working memory)."""
    step = needle_workload("gpt_mini_step") if framework == "needle" else torch_workload("gpt_mini_step")
    before = vm_rss_bytes()
    for _ in range(10):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"framework": framework, "before": before, "peak": peak}))


def run_memory(args: argparse.Namespace) -> None:
    print("\nPeak memory of 10 gpt_mini_step repetitions (1 thread; resident set growth over the model's):\n")
    print("| framework | resident before the loop | peak | growth |")
    print("| --- | --- | --- | --- |")
    probes = [("needle", sys.executable)]
    torch_python = find_torch_python(args.torch_python)
    if torch_python:
        probes.append(("torch", torch_python))
    for framework, python in probes:
        out = subprocess.run(
            [python, __file__, "--memory-probe", framework], env=thread_env(1), capture_output=True, text=True
        )
        if out.returncode != 0:
            print(f"| {framework} | failed: {out.stderr.strip().splitlines()[-1:]} | | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        mib = 1024 * 1024
        print(
            f"| {framework} | {r['before'] / mib:.0f} MiB | {r['peak'] / mib:.0f} MiB | "
            f"{(r['peak'] - r['before']) / mib:.0f} MiB |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated workload name prefixes")
    parser.add_argument(
        "--settle", type=float, help="seconds to pause before each timed turn (default 0.25 with 2+ threads, else 0)"
    )
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--torch-python", help="interpreter that has PyTorch")
    parser.add_argument("--memory", action="store_true", help="also measure the gpt_mini_step loop's peak memory")
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.torch_worker:
        torch_worker()
        return 0
    if args.memory_probe:
        memory_probe(args.memory_probe)
        return 0
    if args.child:
        run_thread_count(args)
        return 0

    torch_python = find_torch_python(args.torch_python)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()}")
    missing = "not found (run scripts/setup_torch_reference.sh, install python3-torch or pass --torch-python)"
    print(f"PyTorch: {torch_python or missing}")
    print(f"PyTorch's OpenBLAS kernels: OPENBLAS_CORETYPE={torch_env().get('OPENBLAS_CORETYPE', '(its own choice)')}")
    print(f"median of {args.reps} repetitions after {args.warmups} warm-ups, interleaved; tiny_*: time per op")
    for threads in (int(t) for t in args.threads.split(",")):
        child_args = [sys.executable, __file__, "--child", "--reps", str(args.reps), "--warmups", str(args.warmups)]
        if args.only:
            child_args += ["--only", args.only]
        if args.torch_python:
            child_args += ["--torch-python", args.torch_python]
        if args.settle is not None:
            child_args += ["--settle", str(args.settle)]
        out = subprocess.run(child_args, env=thread_env(threads), capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            return out.returncode
        records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        for record in records:
            if "torch_version" in record:
                print(f"PyTorch version: {record['torch_version']}")
        peak = next((r["peak"] for r in records if "peak" in r), None)
        print_table([r for r in records if "workload" in r], threads, peak)
    if args.memory:
        run_memory(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
