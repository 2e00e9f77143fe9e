"""sgemm through Needle's Python API against NumPy's `@`, same run, medians of 10 after 3 warm-ups.

    OPENBLAS_NUM_THREADS=1 python benchmarks/sgemm_vs_numpy.py
    OPENBLAS_NUM_THREADS=2 python benchmarks/sgemm_vs_numpy.py

Needle runs with as many threads as OpenBLAS (OPENBLAS_NUM_THREADS, 1 when unset). Prints Markdown table
rows: workload, threads, Needle GFLOP/s, NumPy GFLOP/s, ratio (NumPy time / Needle time). The two
libraries alternate within each size, so a change in the machine's load hits both.
"""

import os
import statistics
import time
from collections.abc import Callable

import numpy as np

import needle
from needle import backend_ndarray as nd


def median_times(fs: list[Callable[[], object]], reps: int = 10, warm: int = 3) -> list[float]:
    for _ in range(warm):
        for f in fs:
            f()
    times: list[list[float]] = [[] for _ in fs]
    for _ in range(reps):
        for f, t in zip(fs, times, strict=True):
            start = time.perf_counter()
            f()
            t.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    needle.set_num_threads(threads)
    rng = np.random.default_rng(0)
    for n in (256, 512, 1024, 2048):
        a = rng.random((n, n), dtype=np.float32)
        b = rng.random((n, n), dtype=np.float32)
        a_nd = nd.array(a, device=nd.cpu())
        b_nd = nd.array(b, device=nd.cpu())

        def run_needle(a_nd: nd.NDArray = a_nd, b_nd: nd.NDArray = b_nd) -> object:
            return a_nd @ b_nd

        def run_numpy(a: np.ndarray = a, b: np.ndarray = b) -> object:
            return a @ b

        t_needle, t_numpy = median_times([run_needle, run_numpy])
        flops = 2 * n**3
        print(
            f"| sgemm{n} | {threads} | {flops / t_needle / 1e9:.1f} | {flops / t_numpy / 1e9:.1f} "
            f"| {t_numpy / t_needle:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
