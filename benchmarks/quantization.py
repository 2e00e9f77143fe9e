"""Dynamic int8 quantization of Linear layers: Needle's `needle.quantization.quantize_dynamic` against PyTorch's
`torch.ao.quantization.quantize_dynamic`, each against its own float32 model, at 1 thread and at 2 threads.

    python benchmarks/quantization.py                       # every case, 1 and 2 threads
    python benchmarks/quantization.py --only gemm --threads 1 --reps 3
    python benchmarks/quantization.py --torch-per-channel   # PyTorch with per-channel weight scales, as Needle

Cases:

* gemm: one Linear(1024, 1024) (with bias) on inputs of M = 1, 64, 256 and 1024 rows; throughput in GOP/s,
  2 * M * 1024 * 1024 / time;
* mlp: inference latency at batch 1 and 64 of the README's Fashion-MNIST MLP (784-512-256-10, ReLU; its
  dropout is the identity at inference) and of a wider one (784-1024-1024-10, ReLU).

Each runs four ways: Needle float32, Needle int8, PyTorch float32, PyTorch int8. Needle's int8 Linear keeps
per-output-channel symmetric int8 weights, quantizes each input row with a scale of its own at every call and
returns float32. PyTorch's dynamic quantization runs on its default quantized engine (printed; x86, i.e.
fbgemm, on x86 CPUs) with its default qconfig (one weight scale per tensor, unsigned 8-bit activations) or,
with --torch-per-channel, one weight scale per output channel. Both frameworks get the same weights: the
Needle model's `state_dict()` (Linear weights stored (in, out), transposed for PyTorch) in a temporary .npz.
An accuracy table gives each int8 model's relative error against its float32 model (Frobenius norm of the
difference over that of the float32 output), and Needle's int8 output against a NumPy emulation of its
scheme (symmetric per-channel weights, symmetric per-row activations, exact integer sums); above 1e-2 it is
marked MISMATCH.

PyTorch runs in a worker process that this script drives over a pipe, so the frameworks take turns call by
call and machine noise hits both alike. PyTorch comes from --torch-python or, by default, the first of .torch-
venv (scripts/setup_torch_reference.sh), this interpreter, python3 on PATH and /usr/bin/python3 that can
`import torch`. Each thread count runs in fresh processes whose thread pools are sized by NEEDLE_NUM_THREADS,
OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS. Inputs are random normal float32. A timed
repetition runs the forward enough times to cover about 0.4 GOP (the same count in every column of a row) and
reports the time of one; --warmups untimed repetitions, then the median of --reps timed ones. The tables are
Markdown, ready for BENCHMARKS.md; "ratio" is PyTorch's time / Needle's time (above 1: Needle is faster) and
"int8 speed-up" a framework's float32 time / its int8 time."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from workloads import TorchWorker, find_torch_python, thread_env, torch_env

VARIANTS = ("float32", "int8")
OPS_PER_REP = 4e8  # a repetition repeats the forward until it has done about this many operations
EMULATION_TOLERANCE = 1e-2  # Needle int8 vs the NumPy emulation of its scheme, relative to max |output|


@dataclass(frozen=True)
class Case:
    table: str  # "gemm" or "mlp"
    name: str
    sizes: tuple[int, ...]  # features in, of each hidden layer, out; ReLU between the Linear layers
    batch: int

    @property
    def ops(self) -> int:
        """Multiply-adds counted as two operations, per forward."""
        return 2 * self.batch * sum(a * b for a, b in zip(self.sizes, self.sizes[1:], strict=False))

    @property
    def calls(self) -> int:
        return max(1, math.ceil(OPS_PER_REP / self.ops))


CASES = [Case("gemm", f"{m}x1024x1024", (1024, 1024), m) for m in (1, 64, 256, 1024)] + [
    Case("mlp", name, sizes, batch)
    for name, sizes in (
        ("README MLP 784-512-256-10", (784, 512, 256, 10)),
        ("MLP 784-1024-1024-10", (784, 1024, 1024, 10)),
    )
    for batch in (1, 64)
]


# ---- Needle (the int8 entry point is needle_quantize alone) --------------------------------------------------


def needle_quantize(model: Any) -> Any | None:
    """`model` quantized to int8 in place (needle.quantization swaps the layers), or None on a build without
    int8 quantization."""
    try:
        from needle.quantization import quantize_dynamic  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return quantize_dynamic(model)


class NeedleCase:
    def __init__(self, case: Case, x: np.ndarray) -> None:
        import needle as ndl
        from needle import nn

        def build() -> Any:
            ndl.manual_seed(0)  # the same initial weights for both builds
            layers: list[Any] = []
            for i, (a, b) in enumerate(zip(case.sizes, case.sizes[1:], strict=False)):
                layers += [nn.ReLU()] if i else []
                layers.append(nn.Linear(a, b))
            return nn.Sequential(*layers)

        self.model = build()
        self.model.eval()
        quantized = needle_quantize(build())  # quantization swaps layers in place: a second, identical model
        if quantized is not None:
            quantized.eval()
        self.models: dict[str, Any] = {"float32": self.model, "int8": quantized}
        self.x = ndl.Tensor(x, requires_grad=False)
        self.calls = case.calls

    def forward(self, variant: str) -> np.ndarray:
        return np.asarray(self.models[variant](self.x).numpy())

    def run(self, variant: str) -> float:
        model, x = self.models[variant], self.x
        start = time.perf_counter()
        for _ in range(self.calls):
            model(x).numpy()
        return (time.perf_counter() - start) / self.calls

    def state(self) -> dict[str, np.ndarray]:
        return {name: array.numpy() for name, array in self.model.state_dict().items()}


# ---- the same models in PyTorch (inside the worker process) -------------------------------------------------


class TorchCase:
    def __init__(self, case: Case, x: np.ndarray, weights: Path, per_channel: bool) -> None:
        import torch  # type: ignore[import-not-found,unused-ignore]
        from torch import nn  # type: ignore[import-not-found,unused-ignore]

        self.torch = torch
        layers: list[Any] = []
        for i, (a, b) in enumerate(zip(case.sizes, case.sizes[1:], strict=False)):
            layers += [nn.ReLU()] if i else []
            layers.append(nn.Linear(a, b))
        model = nn.Sequential(*layers).eval()
        with np.load(weights) as arrays:
            state = {}
            for name, target in model.state_dict().items():
                value = arrays[name]
                if name.endswith(".weight"):
                    value = value.T  # Needle's Linear weight is (in, out)
                state[name] = torch.from_numpy(np.ascontiguousarray(value).reshape(tuple(target.shape)))
        model.load_state_dict(state, strict=True)
        quantization = torch.ao.quantization
        spec: Any = {nn.Linear: quantization.per_channel_dynamic_qconfig} if per_channel else {nn.Linear}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
            quantized = quantization.quantize_dynamic(model, spec, dtype=torch.qint8)
        self.models = {"float32": model, "int8": quantized.eval()}
        self.x = torch.from_numpy(x)
        self.calls = case.calls

    def forward(self, variant: str) -> np.ndarray:
        with self.torch.inference_mode():
            return np.array(self.models[variant](self.x).numpy())

    def run(self, variant: str) -> float:
        model, x = self.models[variant], self.x
        with self.torch.inference_mode():
            start = time.perf_counter()
            for _ in range(self.calls):
                model(x).numpy()
            return (time.perf_counter() - start) / self.calls


def torch_worker(per_channel: bool) -> None:
    """Reads one JSON command per line, answers one JSON line each: {"setup": {case, x, weights}} builds the
    float32 and int8 models; {"outputs": path} writes both outputs there (.npz); {"run": variant} answers the
    seconds of one forward."""
    import torch  # type: ignore[import-not-found,unused-ignore]

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "engine": torch.backends.quantized.engine}
    print(json.dumps(info), flush=True)
    current: TorchCase | None = None
    for line in sys.stdin:
        command = json.loads(line)
        answer: dict[str, Any] = {"ok": True}
        if "setup" in command:
            setup = command["setup"]
            case = Case(**{**setup["case"], "sizes": tuple(setup["case"]["sizes"])})
            current = TorchCase(case, np.load(setup["x"]), Path(setup["weights"]), per_channel)
        elif current is None:
            answer = {"error": "no setup"}
        elif "outputs" in command:
            outputs: dict[str, Any] = {v: current.forward(v) for v in VARIANTS}
            np.savez(command["outputs"], **outputs)
        else:
            answer = {"seconds": current.run(command["run"])}
        print(json.dumps(answer), flush=True)


class QuantizationWorker(TorchWorker):
    """The PyTorch side of this script (its --torch-worker loop) in its own process."""

    def __init__(self, python: str, env: dict[str, str], per_channel: bool) -> None:
        super().__init__(python, env, script=__file__, extra_args=("--torch-per-channel",) if per_channel else ())

    def run(self, variant: str) -> float:
        return float(self.ask({"run": variant})["seconds"])


# ---- checks ----------------------------------------------------------------------------------------------------


def int8_emulation(state: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Needle's int8 scheme in NumPy: per-output-channel symmetric weights, per-row symmetric activations
    (scale max |row| / 127, round to nearest), integer sums (exact in float64), float32 out."""

    def quantize(values: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
        scale = np.abs(values).max(axis=axis, keepdims=True) / 127.0
        scale = np.where(scale == 0, 1.0, scale)
        return np.clip(np.rint(values / scale), -127, 127), scale

    linears = sorted({int(name.split(".")[0]) for name in state})
    h = x.astype(np.float64)
    for i, index in enumerate(linears):
        w, b = state[f"{index}.weight"].astype(np.float64), state[f"{index}.bias"].astype(np.float64)
        wq, w_scale = quantize(w, axis=0)
        hq, h_scale = quantize(h, axis=1)
        h = (hq @ wq) * h_scale * w_scale + b.reshape(1, -1)
        if i + 1 < len(linears):
            h = np.maximum(h, 0.0)
    return h.astype(np.float32)


def relative_error(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.linalg.norm(approx - exact) / max(float(np.linalg.norm(exact)), 1e-30))


# ---- one thread count, in a child process ---------------------------------------------------------------------


def run_thread_count(args: argparse.Namespace) -> None:
    """Runs in a child process whose thread environment is already set; prints one JSON line per case."""
    import needle as ndl

    threads = int(os.environ["NEEDLE_NUM_THREADS"])
    if hasattr(ndl, "set_num_threads"):
        ndl.set_num_threads(threads)
    torch_python = find_torch_python(args.torch_python)
    worker = QuantizationWorker(torch_python, torch_env(), args.torch_per_channel) if torch_python else None
    if worker is not None:
        print(json.dumps({"torch_info": worker.info}), flush=True)
    # As in workloads.py: with several threads, pause before each turn until the other library's threads
    # sleep, then run the step untimed for 0.1 s before the timed run.
    settle = args.settle if args.settle is not None else (0.25 if threads > 1 else 0.0)

    def turn(run: Callable[[], float]) -> float:
        if settle > 0:
            time.sleep(settle)
            warm_until = time.perf_counter() + 0.1
            run()
            while time.perf_counter() < warm_until:
                run()
        return run()

    rng = np.random.default_rng(0)
    try:
        with ndl.no_grad(), tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for case in selected(args.only):
                x = rng.standard_normal((case.batch, case.sizes[0])).astype(np.float32)
                needle = NeedleCase(case, x)
                state: dict[str, Any] = needle.state()
                variants = [v for v in VARIANTS if needle.models[v] is not None]
                record: dict[str, Any] = {"case": asdict(case), "threads": threads, "calls": case.calls}
                ours = {v: needle.forward(v) for v in variants}
                checks: dict[str, float] = {}
                if "int8" in ours:
                    checks["needle_int8_error"] = relative_error(ours["int8"], ours["float32"])
                    emulated = int8_emulation(state, x)
                    scale = max(float(np.max(np.abs(emulated))), 1e-30)
                    checks["needle_vs_emulation"] = float(np.max(np.abs(ours["int8"] - emulated))) / scale
                runs: dict[str, Callable[[str], float]] = {"needle": needle.run}
                if worker is not None:
                    np.savez(folder / "weights.npz", **state)
                    np.save(folder / "x.npy", x)
                    setup = {"case": asdict(case), "x": str(folder / "x.npy"), "weights": str(folder / "weights.npz")}
                    worker.ask({"setup": setup})
                    worker.ask({"outputs": str(folder / "torch_outputs.npz")})
                    with np.load(folder / "torch_outputs.npz") as theirs:
                        checks["torch_vs_needle_float32"] = relative_error(theirs["float32"], ours["float32"])
                        checks["torch_int8_error"] = relative_error(theirs["int8"], theirs["float32"])
                    runs["torch"] = worker.run
                record["checks"] = checks
                times: dict[str, list[float]] = {}
                for rep in range(args.warmups + args.reps):
                    for variant in VARIANTS:
                        for framework, run in runs.items():
                            if framework == "needle" and variant not in variants:
                                continue
                            seconds = turn(partial(run, variant))
                            if rep >= args.warmups:
                                times.setdefault(f"{framework} {variant}", []).append(seconds)
                record["medians"] = {key: statistics.median(values) for key, values in times.items()}
                print(json.dumps(record), flush=True)
    finally:
        if worker is not None:
            worker.close()


def selected(only: str | None) -> list[Case]:
    if not only:
        return CASES
    tables = only.split(",")
    return [c for c in CASES if c.table in tables]


# ---- tables ----------------------------------------------------------------------------------------------------


COLUMNS = ("needle float32", "needle int8", "torch float32", "torch int8")


def ratio(numerator: float | None, denominator: float | None) -> str:
    return "n/a" if numerator is None or denominator is None else f"{numerator / denominator:.2f}"


def print_tables(records: list[dict[str, Any]], threads: int) -> None:
    plural = "s" if threads > 1 else ""
    header = (
        "| Needle float32 | Needle int8 | PyTorch float32 | PyTorch int8 | ratio float32 | ratio int8 "
        "| int8 speed-up Needle | int8 speed-up PyTorch |"
    )
    for table in ("gemm", "mlp"):
        rows = [r for r in records if r["case"]["table"] == table]
        if not rows:
            continue
        if table == "gemm":
            print(f"\n{threads} thread{plural}: Linear(1024, 1024) on M rows, GOP/s (2 * M * 1024 * 1024 / time)\n")
            print(f"| M x K x N {header}")
            print("| --- " * 9 + "|")
        else:
            print(f"\n{threads} thread{plural}: MLP inference, time per forward\n")
            print(f"| model | batch {header}")
            print("| --- " * 10 + "|")
        for r in rows:
            m = r["medians"]
            t = {c: m.get(c) for c in COLUMNS}
            if table == "gemm":
                ops = 2 * r["case"]["batch"] * r["case"]["sizes"][0] * r["case"]["sizes"][1]
                cells = ["n/a" if t[c] is None else f"{ops / t[c] / 1e9:.1f}" for c in COLUMNS]
                lead = f"| {r['case']['name']} "
            else:
                cells = ["n/a" if t[c] is None else format_time(t[c]) for c in COLUMNS]
                lead = f"| {r['case']['name']} | {r['case']['batch']} "
            print(
                f"{lead}| {' | '.join(cells)} | {ratio(t['torch float32'], t['needle float32'])} "
                f"| {ratio(t['torch int8'], t['needle int8'])} | {ratio(t['needle float32'], t['needle int8'])} "
                f"| {ratio(t['torch float32'], t['torch int8'])} |"
            )
    print(f"\n{threads} thread{plural}: int8 accuracy (relative error against the same framework's float32)\n")
    print(
        "| case | batch | Needle int8 | PyTorch int8 | PyTorch float32 vs Needle float32 "
        "| Needle int8 vs NumPy emulation (max difference / max output) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for r in records:
        c = r["checks"]

        def show(key: str, c: dict[str, float] = c) -> str:
            return f"{c[key]:.1e}" if key in c else "n/a"

        emulation = show("needle_vs_emulation")
        if c.get("needle_vs_emulation", 0.0) > EMULATION_TOLERANCE:
            emulation += " MISMATCH"
        print(
            f"| {r['case']['name']} | {r['case']['batch']} | {show('needle_int8_error')} | {show('torch_int8_error')} "
            f"| {show('torch_vs_needle_float32')} | {emulation} |"
        )


def format_time(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated case groups: gemm, mlp")
    parser.add_argument(
        "--settle", type=float, help="seconds to pause before each timed turn (default 0.25 with 2+ threads, else 0)"
    )
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--torch-python", help="interpreter that has PyTorch")
    parser.add_argument(
        "--torch-per-channel", action="store_true", help="PyTorch int8 weights with a scale per output channel"
    )
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.torch_worker:
        torch_worker(args.torch_per_channel)
        return 0
    if args.child:
        run_thread_count(args)
        return 0

    torch_python = find_torch_python(args.torch_python)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()}")
    print(f"PyTorch: {torch_python or 'not found (pass --torch-python)'}")
    print(f"median of {args.reps} repetitions after {args.warmups} warm-ups, interleaved")
    for threads in (int(t) for t in args.threads.split(",")):
        child_args = [sys.executable, __file__, "--child", "--reps", str(args.reps), "--warmups", str(args.warmups)]
        for flag, value in (("--only", args.only), ("--torch-python", args.torch_python), ("--settle", args.settle)):
            if value is not None:
                child_args += [flag, str(value)]
        if args.torch_per_channel:
            child_args.append("--torch-per-channel")
        out = subprocess.run(child_args, env=thread_env(threads), capture_output=True, text=True)
        sys.stderr.write(out.stderr)
        if out.returncode != 0:
            return out.returncode
        records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        for record in records:
            if "torch_info" in record:
                info = record["torch_info"]
                scheme = "per-channel" if args.torch_per_channel else "default (per-tensor)"
                print(f"PyTorch {info['torch']}, quantized engine {info['engine']}, weight scales {scheme}")
        print_tables([r for r in records if "case" in r], threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
