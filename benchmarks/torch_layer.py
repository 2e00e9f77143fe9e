"""What the ``needle.torch`` layer costs: each standard workload written against Needle's own API
(benchmarks/workloads.py's ``needle_workload``) and the same model written against PyTorch's API run on
``needle.torch`` (``torch_workload`` with ``needle.torch`` as its torch), interleaved repetition by
repetition in one process. Both run on the same engine, so the difference is the layer: PyTorch's
layouts (NCHW convolutions around Needle's NHWC kernel), argument handling and Python wrappers.

    python benchmarks/torch_layer.py                 # every workload, 1 thread
    python benchmarks/torch_layer.py --threads 2 --only cnn,gpt

"overhead" is needle.torch's median step time over Needle's, minus 1 (the goal: at most +10%).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads

import needle as ndl
import needle.torch

WORKLOADS = ["mlp_step", "resnet9_step", "lstm_lm_step", "gpt_mini_step", "cnn_fmnist_step", "tiny_add", "tiny_graph"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--only", default=None, help="comma-separated workload name prefixes")
    args = parser.parse_args()
    ndl.set_num_threads(args.threads)
    chosen = [w for w in WORKLOADS if args.only is None or any(w.startswith(p) for p in args.only.split(","))]
    print(f"threads {args.threads}, median of {args.reps} repetitions after {args.warmups} warm-ups\n")
    print("| workload | needle (ms) | needle.torch (ms) | overhead |")
    print("| --- | --- | --- | --- |")
    for name in chosen:
        steps = {"needle": workloads.needle_workload(name), "torch": workloads.torch_workload(name, needle.torch)}
        times: dict[str, list[float]] = {"needle": [], "torch": []}
        for rep in range(args.warmups + args.reps):
            for key, step in steps.items():
                seconds = workloads.timed(step)
                if rep >= args.warmups:
                    times[key].append(seconds)
        tiny = name.startswith("tiny")
        # Step times in ms; the tiny workloads' times per op in us.
        scale = 1e6 / workloads.TINY_OPS_PER_REP if tiny else 1e3
        native, layer = (statistics.median(times[k]) * scale for k in ("needle", "torch"))
        unit = " per op (us)" if tiny else ""
        print(f"| {name}{unit} | {native:.3f} | {layer:.3f} | {layer / native - 1:+.0%} |", flush=True)


if __name__ == "__main__":
    main()
