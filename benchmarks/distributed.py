"""Data-parallel training on this machine: Needle's DistributedDataParallel over 2 MPI ranks against one
process using both cores, PyTorch's DDP (Gloo) the same way, the all-reduce itself, and a projection of the
measured step to N machines.

    python benchmarks/distributed.py                          # both workloads, every configuration
    python benchmarks/distributed.py --only mlp --steps 20    # quicker
    python benchmarks/distributed.py --torch-python /path/to/python-with-torch

Workloads (training steps on random float32 inputs, the same global batch in every configuration):

* mlp: the README's MLP (examples/python/train_mlp.py's make_model: 784-512-256-10 with dropout 0), Adam
  lr 1e-3, global batch 128, SoftmaxLoss / PyTorch's cross_entropy;
* gpt_mini: benchmarks/workloads.py's gpt_mini_step (its model, tokens and targets, taken from the step it
  builds), AdamW lr 1e-3 weight decay 0.01, global batch 16 sequences of 128 tokens.

Configurations: Needle 1 process x 2 threads (whole batch); Needle 2 ranks x 1 thread (`mpirun -np 2
--oversubscribe --bind-to none`, half the batch each, DistributedDataParallel with its default buckets: 1 MiB
first, then 25 MiB); Needle 1 process x 1 thread on half the batch (what one rank computes, alone on the
machine); PyTorch 1 process x 2 threads; PyTorch DDP over Gloo, 2 processes x 1 thread (also started by
mpirun, the rendezvous on 127.0.0.1 only). --warmups untimed steps, then the median of --steps timed ones; in
a multi-rank run every step is timed between two barriers and rank 0's median is reported. Every
configuration runs --rounds times (the rounds one after another) and the median of its runs' medians is
the result.

For Needle's DDP, per step: the reducer's counters (comm_stats: the all-reduce span from the first bucket's
start to the last bucket's end, the wait at the end of backward, and its hidden fraction 1 - wait / span) and
its bucket timeline (when each bucket was launched, started and finished, and when backward's walk of the
graph ended): the time the all-reduces ran, the backward time between the first and the last bucket's launch,
and the time from the last bucket's launch (every gradient ready) to the end of backward. That last one is
near zero when a rank has a core to spare; with 2 ranks on 2 cores the communication threads hold both cores
while the last bucket is reduced, the compute thread only gets to the end of backward after it, and the
time is exposed without showing as wait, so it counts as exposed here: t_c = rank step - (wait + that time).

All-reduce: `needle.distributed.all_reduce` of a float32 buffer of 4 bytes, 1, 4 and 25 MiB between 2 ranks
(median of --reps after 5 warm-ups, each call between barriers), op "sum" and "average", and Gloo's
all_reduce (sum) alongside. For 2 ranks a ring all-reduce sends and receives about the buffer once, so
bytes / time is the effective bandwidth B, and half the 4-byte time is the latency of one ring hop.

Projection to N machines (each with the per-rank batch of the 2-rank run, so the global batch grows with N):
step(N) = t_c + exposed(N), with T(N, bytes, buckets) = 2 (N-1)/N * bytes / B + 2 (N-1) * hop latency *
buckets for a ring all-reduce, B the measured local bandwidth, 10 Gbit/s or 100 Gbit/s, and the measured
local hop latency throughout. Two estimates of what overlaps: A, exposed = max(0, T(N, all) - hidden fraction
* span), assuming that as much backward as overlapped in the 2-rank run overlaps at every N; B, the last
bucket (whose last gradient comes at the end of backward) fully exposed and the other buckets hidden up to the
backward time between the first and the last launch: exposed = T(N, last) + max(0, T(N, others) - window).

Other processes on the machine are measured during each run (CPU time of the machine less the run's own); a
run during which they used more than --max-others cores is repeated (--retries) and the least disturbed kept.
Thread pools are sized by NEEDLE_NUM_THREADS, OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS,
set before each process starts. The tables are Markdown, ready for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from workloads import find_torch_python, needle_workload, thread_env, torch_env, torch_workload

WORKLOADS = ("mlp", "gpt_mini")
GLOBAL_BATCH = {"mlp": 128, "gpt_mini": 16}
BATCH_UNIT = {"mlp": "images", "gpt_mini": "sequences"}
ALL_REDUCE_BYTES = (4, 1 << 20, 4 << 20, 25 << 20)
NODES = (2, 4, 8, 16)
LINKS = (("10 Gbit/s", 10e9 / 8), ("100 Gbit/s", 100e9 / 8))
MIB = 1 << 20
REPO = Path(__file__).resolve().parent.parent

Step = Callable[[], None]


def closure_values(fn: Callable[..., Any]) -> dict[str, Any]:
    """The variables `fn` closes over, and those of the functions among them (workloads.py builds each step
    as closures over its model and data; this is how the model definitions there are reused)."""
    found: dict[str, Any] = {}
    stack: list[Any] = [fn]
    while stack:
        function = stack.pop()
        for name, cell in zip(function.__code__.co_freevars, function.__closure__ or (), strict=True):
            value = cell.cell_contents
            if name not in found:
                found[name] = value
                if hasattr(value, "__code__"):
                    stack.append(value)
    return found


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Each rank's result as a JSON file in the driver's folder (the ranks' stdout lines could interleave)."""
    Path(args.out, f"rank{result['rank']}.json").write_text(json.dumps(result))


def shard(rank: int, shards: int, batch: int) -> slice:
    part = batch // shards
    return slice(rank * part, (rank + 1) * part)


# ---- one process's part: the training step, timed ----------------------------------------------------------


def time_steps(
    step: Step, barrier: Callable[[], None] | None, per_step: Callable[[], dict[str, float]] | None, args: Any
) -> dict[str, Any]:
    """--warmups untimed steps, then --steps timed ones (between barriers when there are several ranks);
    the step times and, per timed step, whatever `per_step` reads after it."""
    result: dict[str, Any] = {"seconds": [], "affinity": sorted(os.sched_getaffinity(0))}
    for i in range(args.warmups + args.steps):
        if barrier is not None:
            barrier()
        start = time.perf_counter()
        step()
        if barrier is not None:
            barrier()
        elapsed = time.perf_counter() - start
        if i < args.warmups:
            continue
        result["seconds"].append(elapsed)
        for key, value in (per_step() if per_step is not None else {}).items():
            result.setdefault(key, []).append(value)
    return result


def ddp_measurements(wrapped: Any) -> Callable[[], dict[str, float]]:
    """What the reducer saw in the last step: its counters (all-reduce span from the first bucket's start to
    the last one's end, and the wait at the end of backward) and, from its bucket timeline, the seconds the
    buckets' all-reduces ran, the backward time between the first and the last bucket's launch, and the time
    from the last bucket's launch (every gradient ready) to the end of backward's walk of the graph."""

    def read() -> dict[str, float]:
        stats = wrapped.comm_stats()
        buckets, backward_end = wrapped._reducer.last_timeline()  # (queued, started, finished) per bucket
        return {
            "span": stats["last_comm_seconds"],
            "wait": stats["last_wait_seconds"],
            "busy": sum(finished - started for _, started, finished in buckets),
            "window": buckets[-1][0] - buckets[0][0],
            "tail": max(0.0, backward_end - buckets[-1][0]),
        }

    return read


def needle_worker(args: argparse.Namespace) -> None:
    import needle as ndl
    import needle.distributed as dist
    from needle import nn

    ndl.set_num_threads(int(os.environ["NEEDLE_NUM_THREADS"]))
    world, rank = (dist.init().size, dist.init().rank) if args.ddp else (1, 0)
    part = shard(rank % args.shards, args.shards, GLOBAL_BATCH[args.workload])

    def constant(values: np.ndarray) -> Any:
        return ndl.Tensor(np.ascontiguousarray(values), requires_grad=False)

    if args.workload == "mlp":
        sys.path.insert(0, str(REPO / "examples" / "python"))
        from train_mlp import make_model

        rng = np.random.default_rng(0)
        model = make_model(512, 0.0)
        images = rng.standard_normal((GLOBAL_BATCH["mlp"], 784)).astype(np.float32)
        classes = rng.integers(0, 10, GLOBAL_BATCH["mlp"]).astype(np.float32)
        x, y = constant(images[part]), constant(classes[part])
        loss_fn = nn.SoftmaxLoss()
        wrapped = dist.DistributedDataParallel(model) if args.ddp else model
        opt = ndl.optim.Adam(wrapped.parameters(), lr=1e-3)

        def forward() -> Any:
            return loss_fn(wrapped(x), y)

    else:
        parts = closure_values(needle_workload("gpt_mini_step"))
        model, vocab = parts["model"], parts["vocab"]
        context = parts["tokens"].shape[1]
        tokens = constant(parts["tokens"].numpy()[part])
        targets = constant(parts["targets"].numpy()[part.start * context : part.stop * context])
        loss_fn = parts["loss_fn"]
        wrapped = dist.DistributedDataParallel(model) if args.ddp else model
        opt = ndl.optim.AdamW(wrapped.parameters(), lr=1e-3, weight_decay=0.01)
        rows = (part.stop - part.start) * context

        def forward() -> Any:
            return loss_fn(wrapped(tokens).reshape((rows, vocab)), targets)

    def step() -> None:
        opt.reset_grad()
        loss = forward()
        loss.backward()
        opt.step()
        loss.numpy()

    barrier = dist.barrier if world > 1 else None
    result = time_steps(step, barrier, ddp_measurements(wrapped) if args.ddp else None, args)
    if args.ddp:
        sizes = {name: p.numpy().nbytes for name, p in model.named_parameters()}
        result["bucket_bytes"] = [sum(sizes[name] for name in names) for names in wrapped.bucket_names()]
    report(args, {"rank": rank, "world": world} | result)


def torch_worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as tdist
    from torch import nn

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    world, rank = 1, 0
    if args.ddp:
        world, rank = int(os.environ["OMPI_COMM_WORLD_SIZE"]), int(os.environ["OMPI_COMM_WORLD_RANK"])
        tdist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world)
    part = shard(rank % args.shards, args.shards, GLOBAL_BATCH[args.workload])

    if args.workload == "mlp":
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        model: nn.Module = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 512),
            nn.ReLU(),
            nn.Dropout(0.0),
            nn.Linear(512, 256),
            nn.ReLU(),
            nn.Dropout(0.0),
            nn.Linear(256, 10),
        )
        images = rng.standard_normal((GLOBAL_BATCH["mlp"], 784)).astype(np.float32)
        classes = rng.integers(0, 10, GLOBAL_BATCH["mlp"])
        x, y = torch.from_numpy(images[part].copy()), torch.from_numpy(classes[part].copy())
        wrapped = nn.parallel.DistributedDataParallel(model) if args.ddp else model
        opt = torch.optim.Adam(wrapped.parameters(), lr=1e-3)

        def forward() -> Any:
            return nn.functional.cross_entropy(wrapped(x), y)

    else:
        parts = closure_values(torch_workload("gpt_mini_step"))
        model, vocab = parts["model"], parts["vocab"]
        context = parts["tokens"].shape[1]
        tokens = parts["tokens"][part].contiguous()
        targets = parts["targets"][part.start * context : part.stop * context].contiguous()
        wrapped = nn.parallel.DistributedDataParallel(model) if args.ddp else model
        opt = torch.optim.AdamW(wrapped.parameters(), lr=1e-3, weight_decay=0.01)

        def forward() -> Any:
            return nn.functional.cross_entropy(wrapped(tokens).reshape(-1, vocab), targets)

    def step() -> None:
        opt.zero_grad()
        loss = forward()
        loss.backward()
        opt.step()
        loss.item()

    barrier = tdist.barrier if world > 1 else None
    result = time_steps(step, barrier, None, args)
    report(args, {"rank": rank, "world": world, "torch": torch.__version__} | result)
    if args.ddp:
        tdist.destroy_process_group()


# ---- the all-reduce itself -------------------------------------------------------------------------------


def time_all_reduce(all_reduce: Callable[[int], None], barrier: Callable[[], None], reps: int) -> dict[str, float]:
    medians = {}
    for size in ALL_REDUCE_BYTES:
        times = []
        for i in range(5 + reps):
            barrier()
            start = time.perf_counter()
            all_reduce(size)
            elapsed = time.perf_counter() - start
            if i >= 5:
                times.append(elapsed)
        medians[str(size)] = statistics.median(times)
    return medians


def needle_all_reduce_worker(args: argparse.Namespace) -> None:
    import needle.distributed as dist
    from needle import backend_ndarray as nd

    group = dist.init()
    buffers = {n: nd.array(np.ones(n // 4, dtype=np.float32), device=nd.cpu()) for n in ALL_REDUCE_BYTES}
    result = {}
    for op in ("sum", "average"):
        result[op] = time_all_reduce(lambda n, op=op: dist.all_reduce(buffers[n], op=op), dist.barrier, args.reps)
    report(args, {"rank": group.rank, "world": group.size} | result)


def torch_all_reduce_worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as tdist

    rank, world = int(os.environ["OMPI_COMM_WORLD_RANK"]), int(os.environ["OMPI_COMM_WORLD_SIZE"])
    tdist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world)
    buffers = {n: torch.ones(n // 4) for n in ALL_REDUCE_BYTES}
    result = {"sum": time_all_reduce(lambda n: tdist.all_reduce(buffers[n]), tdist.barrier, args.reps)}
    report(args, {"rank": rank, "world": world, "torch": torch.__version__} | result)
    tdist.destroy_process_group()


# ---- the driver: launches the processes, prints the tables ------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def busy_cpu_seconds() -> float:
    """CPU time every process on the machine has used so far (user, nice, system, irq, softirq)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:8]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(limit: float) -> None:
    """Waits (at most `limit` seconds) for a second in which other processes use under 0.2 cores."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = busy_cpu_seconds()
        time.sleep(1.0)
        if busy_cpu_seconds() - before < 0.2:
            return


def launch(
    python: str, worker_args: list[str], ranks: int, threads: int, torch_side: bool, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Runs this script's worker in `ranks` processes of `threads` threads; every rank's result, by rank, each
    with "others": the cores other processes kept busy on average meanwhile (the machine's CPU time less the
    run's own, over the run's wall time). A run during which others used more than --max-others cores is
    repeated, up to --retries times, and the least disturbed one kept."""
    env = thread_env(threads)
    if torch_side:
        env = {**torch_env(), **{k: env[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    command = [python, __file__, *worker_args]
    if ranks > 1:
        if os.geteuid() == 0:
            env |= {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
        env |= {"MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}
        exported = ["NEEDLE_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"]
        exported += ["MASTER_ADDR", "MASTER_PORT", "GLOO_SOCKET_IFNAME"]
        flags = [f for var in exported for f in ("-x", var)]
        command = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none", *flags, *command]
    best: list[dict[str, Any]] = []
    for _ in range(1 + args.retries):
        if ranks > 1:
            env["MASTER_PORT"] = str(free_port())
        wait_for_quiet(args.quiet_wait)
        with tempfile.TemporaryDirectory() as folder:
            busy, ours, start = busy_cpu_seconds(), children_cpu_seconds(), time.perf_counter()
            out = subprocess.run([*command, "--out", folder], env=env, capture_output=True, text=True, timeout=900)
            wall = time.perf_counter() - start
            others = max(0.0, (busy_cpu_seconds() - busy) - (children_cpu_seconds() - ours)) / wall
            if out.returncode != 0:
                sys.stderr.write(out.stdout + out.stderr)
                raise RuntimeError(f"{' '.join(command)} failed with exit status {out.returncode}")
            records = [json.loads(path.read_text()) | {"others": others} for path in Path(folder).glob("rank*.json")]
        if len(records) != ranks:
            raise RuntimeError(f"{' '.join(command)}: {len(records)} results from {ranks} ranks")
        if not best or others < best[0]["others"]:
            best = sorted(records, key=lambda r: r["rank"])
        if others <= args.max_others:
            break
    return best


def merge_rounds(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One rank's results of every round: the per-step lists joined, each round's median step kept, and the
    most other processes used in any round."""
    merged = dict(records[0])
    for key, value in records[0].items():
        if key != "affinity" and isinstance(value, list) and value and isinstance(value[0], float):
            merged[key] = [v for r in records for v in r[key]]
    merged["round_medians"] = [statistics.median(r["seconds"]) for r in records]
    merged["others"] = max(r["others"] for r in records)
    return merged


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    except OSError:
        return "?"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} µs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated: mlp, gpt_mini, allreduce (default: all three)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--reps", type=int, default=10, help="timed all-reduces per buffer size")
    parser.add_argument("--torch-python", help="interpreter that has PyTorch")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each run, wait up to this many seconds for other processes to use under 0.2 cores",
    )
    parser.add_argument(
        "--max-others",
        type=float,
        default=0.25,
        help="repeat a run during which other processes used more cores than this on average (default 0.25)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of every configuration (default 3)")
    parser.add_argument("--retries", type=int, default=2, help="repetitions of a disturbed run (default 2)")
    parser.add_argument(
        "--worker", choices=("needle", "torch", "needle-allreduce", "torch-allreduce"), help=argparse.SUPPRESS
    )
    parser.add_argument("--workload", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--shards", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--ddp", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    workers = {
        "needle": needle_worker,
        "torch": torch_worker,
        "needle-allreduce": needle_all_reduce_worker,
        "torch-allreduce": torch_all_reduce_worker,
    }
    if args.worker:
        workers[args.worker](args)
        return 0
    if shutil.which("mpirun") is None:
        print("mpirun not found (install OpenMPI)", file=sys.stderr)
        return 2

    selected = (args.only or "mlp,gpt_mini,allreduce").split(",")
    torch_python = find_torch_python(args.torch_python)
    needle_python = sys.executable
    load_start = os.getloadavg()
    common = ["--steps", str(args.steps), "--warmups", str(args.warmups), "--reps", str(args.reps)]
    torch_version = "not found (pass --torch-python)"

    # (label, python, ranks, threads, shards, ddp, torch_side)
    configs = [
        ("Needle, 1 process x 2 threads", needle_python, 1, 2, 1, False, False),
        ("Needle DDP, 2 ranks x 1 thread", needle_python, 2, 1, 2, True, False),
        ("Needle, 1 process x 1 thread, half batch", needle_python, 1, 1, 2, False, False),
    ]
    if torch_python:
        configs += [
            ("PyTorch, 1 process x 2 threads", torch_python, 1, 2, 1, False, True),
            ("PyTorch DDP (Gloo), 2 ranks x 1 thread", torch_python, 2, 1, 2, True, True),
        ]

    # Every configuration once per round, the rounds one after another, so that a slow spell of the machine
    # lands on one round of several configurations rather than on every round of one.
    runs: dict[tuple[str, int], list[list[dict[str, Any]]]] = {}
    chosen = [w for w in WORKLOADS if w in selected]
    for _ in range(args.rounds):
        for workload in chosen:
            for index, (_, python, ranks, threads, shards, ddp, torch_side) in enumerate(configs):
                worker = ["--worker", "torch" if torch_side else "needle", "--workload", workload]
                worker += ["--shards", str(shards), *(["--ddp"] if ddp else [])]
                records = launch(python, [*worker, *common], ranks, threads, torch_side, args)
                torch_version = records[0].get("torch", torch_version)
                runs.setdefault((workload, index), []).append(records)
    steps: dict[str, list[tuple[str, int, dict[str, Any], list[dict[str, Any]]]]] = {}
    for workload in chosen:
        steps[workload] = []
        for index, (label, _, ranks, _, shards, _, _) in enumerate(configs):
            merged = [merge_rounds([records[rank] for records in runs[(workload, index)]]) for rank in range(ranks)]
            steps[workload].append((label, shards, merged[0], merged))
    all_reduce: dict[str, dict[str, float]] = {}
    if "allreduce" in selected:
        all_reduce = launch(needle_python, ["--worker", "needle-allreduce", *common], 2, 1, False, args)[0]
        if torch_python:
            gloo = launch(torch_python, ["--worker", "torch-allreduce", *common], 2, 1, True, args)[0]
            all_reduce["gloo"] = gloo["sum"]
            torch_version = gloo.get("torch", torch_version)
    load_end = os.getloadavg()

    command = "python benchmarks/distributed.py" + "".join(
        f" {flag} {value}"
        for flag, value in (
            ("--only", args.only),
            ("--steps", args.steps),
            ("--warmups", args.warmups),
            ("--reps", args.reps),
            ("--rounds", args.rounds),
            ("--quiet-wait", args.quiet_wait or None),
        )
        if value is not None
    )
    print(f"Command: `{command}` (PyTorch: `{torch_python or 'none'}`)\n")
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; load average {load_start[0]:.2f} at the start, "
        f"{load_end[0]:.2f} at the end. PyTorch {torch_version}. Each configuration run {args.rounds} times "
        f"(rounds one after another), each run the median of {args.steps} timed steps after {args.warmups} "
        "warm-ups, and the table gives the median of the runs; 2-rank runs: `mpirun -np 2 --oversubscribe "
        "--bind-to none`, every step between barriers, rank 0's times. DDP details: medians over every timed step."
    )

    # Steps per second, every configuration.
    for workload, rows in steps.items():
        base = statistics.median(rows[0][2]["round_medians"])
        print(f"\n**{workload}** (global batch {GLOBAL_BATCH[workload]} {BATCH_UNIT[workload]}):\n")
        print(
            "| configuration | batch per process | step, rank 0 (rounds' range) | rank 1 | steps/s | "
            "speed vs Needle 1x2 | other processes' CPU use (most in a round) |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for label, shards, record, records in rows:
            step = statistics.median(record["round_medians"])
            spread = ""
            if len(record["round_medians"]) > 1:
                spread = f" ({ms(min(record['round_medians']))} to {ms(max(record['round_medians']))})"
            per_process = GLOBAL_BATCH[workload] // shards
            rank1 = ms(statistics.median(records[1]["round_medians"])) if len(records) > 1 else ""
            alone_on_half = shards > 1 and record["world"] == 1
            relative = "n/a (half the work)" if alone_on_half else f"{base / step:.2f}"
            print(
                f"| {label} | {per_process} | {ms(step)}{spread} | {rank1} | {1 / step:.1f} | {relative} | "
                f"{record['others']:.2f} cores |"
            )
        affinity = {tuple(r["affinity"]) for _, _, _, rs in rows for r in rs}
        print(f"\nCPUs each process may run on: {', '.join(str(list(a)) for a in sorted(affinity))}")

    # Needle's DDP: what the reducer measured.
    ddp: dict[str, dict[str, Any]] = {}
    for workload, rows in steps.items():
        record = rows[1][2]
        exposed = [w + t for w, t in zip(record["wait"], record["tail"], strict=True)]
        step = statistics.median(record["round_medians"])
        ddp[workload] = {
            "step": step,
            "span": statistics.median(record["span"]),
            "busy": statistics.median(record["busy"]),
            "wait": statistics.median(record["wait"]),
            "tail": statistics.median(record["tail"]),
            "window": statistics.median(record["window"]),
            "hidden": max(0.0, 1 - sum(record["wait"]) / sum(record["span"])) if sum(record["span"]) > 0 else 0.0,
            "bucket_bytes": record["bucket_bytes"],
            "t_c": step - statistics.median(exposed),
            "alone": statistics.median(rows[2][2]["round_medians"]),
        }
    if ddp:
        print("\nNeedle DistributedDataParallel, 2 ranks x 1 thread (rank 0, medians over the timed steps):\n")
        print(
            "| workload | gradient bytes / step (buckets) | all-reduce span | all-reduces running | wait at the end of "
            "backward | last bucket's launch to the end of backward | hidden fraction | t_c | rank step | "
            "1 rank alone, half batch |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for workload, d in ddp.items():
            buckets = " + ".join(f"{n / MIB:.2f}" for n in d["bucket_bytes"])
            print(
                f"| {workload} | {sum(d['bucket_bytes']) / MIB:.2f} MiB ({buckets}) | {ms(d['span'])} | "
                f"{ms(d['busy'])} | {ms(d['wait'])} | {ms(d['tail'])} | {d['hidden']:.2f} | {ms(d['t_c'])} | "
                f"{ms(d['step'])} | {ms(d['alone'])} |"
            )
        print(
            "\nSpan: the reducer's all-reduce time (first bucket's start to last bucket's end); running: the sum of "
            "the buckets' all-reduce times; hidden fraction: the reducer's 1 - wait / span over the timed steps; "
            "t_c = rank step - (wait + last bucket's launch to the end of backward)."
        )

    # The all-reduce.
    bandwidth = latency = None
    if all_reduce:
        print(f"\nAll-reduce of a float32 buffer between 2 ranks (median of {args.reps}, each between barriers):\n")
        print("| buffer | Needle sum | Needle average | Gloo sum | Needle sum: bytes / time | Gloo: bytes / time |")
        print("| --- | --- | --- | --- | --- | --- |")
        for size in ALL_REDUCE_BYTES:
            key = str(size)
            label = f"{size} B" if size < MIB else f"{size // MIB} MiB"
            needle_sum, needle_avg = all_reduce["sum"][key], all_reduce["average"][key]
            gloo = all_reduce.get("gloo", {}).get(key)
            print(
                f"| {label} | {ms(needle_sum)} | {ms(needle_avg)} | {ms(gloo) if gloo else 'n/a'} | "
                f"{size / needle_sum / 1e9:.2f} GB/s | {f'{size / gloo / 1e9:.2f} GB/s' if gloo else 'n/a'} |"
            )
        bandwidth = (25 << 20) / all_reduce["sum"][str(25 << 20)]
        latency = all_reduce["sum"]["4"] / 2  # a 2-rank ring: 2 (N - 1) = 2 hops
        print(
            f"\nLocal link for the projection: B = {bandwidth / 1e9:.2f} GB/s (Needle, 25 MiB, sum), hop latency "
            f"= {ms(latency)} (half the 4-byte all-reduce)."
        )

    # The projection.
    if ddp and bandwidth and latency:
        hop = latency

        def ring(n: int, nbytes: float, buckets: int, link: float) -> float:
            return 2 * (n - 1) / n * nbytes / link + 2 * (n - 1) * hop * buckets

        links = [(f"measured local ({bandwidth / 1e9:.1f} GB/s)", bandwidth), *LINKS]
        models = {
            "A: hidden = hidden fraction x all-reduce span": lambda d, n, b: max(
                0.0, ring(n, sum(d["bucket_bytes"]), len(d["bucket_bytes"]), b) - d["hidden"] * d["span"]
            ),
            "B: the last bucket exposed, the others hidden behind the backward between the first and last launch": (
                lambda d, n, b: (
                    ring(n, d["bucket_bytes"][-1], 1, b)
                    + max(0.0, ring(n, sum(d["bucket_bytes"][:-1]), len(d["bucket_bytes"]) - 1, b) - d["window"])
                )
            ),
        }
        for title, exposed_time in models.items():
            print(
                f"\nProjection {title}; step time and t_c / step for N machines of one rank each (per-rank batch as "
                "in the 2-rank run):\n"
            )
            print("| workload | link | " + " | ".join(f"N = {n}" for n in NODES) + " |")
            print("| --- | --- | " + " | ".join("---" for _ in NODES) + " |")
            for workload, d in ddp.items():
                for name, b in links:
                    cells = []
                    for n in NODES:
                        step = d["t_c"] + exposed_time(d, n, b)
                        cells.append(f"{ms(step)}, {d['t_c'] / step:.0%}")
                    print(f"| {workload} | {name} | " + " | ".join(cells) + " |")
        print(
            "\nInputs, from the 2-rank run: "
            + "; ".join(
                f"{w}: t_c {ms(d['t_c'])}, buckets of "
                + " + ".join(f"{n / MIB:.2f}" for n in d["bucket_bytes"])
                + f" MiB, A's hidden time {ms(d['hidden'] * d['span'])}, B's window {ms(d['window'])}"
                for w, d in ddp.items()
            )
            + f"; hop latency {ms(hop)} for every link. The model's T(2) on the local link: "
            + ", ".join(
                f"{w} {ms(ring(2, sum(d['bucket_bytes']), len(d['bucket_bytes']), bandwidth))} "
                f"(all-reduces running in the 2-rank run: {ms(d['busy'])})"
                for w, d in ddp.items()
            )
            + "."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
