"""sgemm through Needle's Python API against NumPy's `@`, same run, medians of 10 after 3 warm-ups.

    OPENBLAS_NUM_THREADS=1 python benchmarks/sgemm_vs_numpy.py
    OPENBLAS_NUM_THREADS=2 python benchmarks/sgemm_vs_numpy.py

Prints Markdown table rows: n, Needle GFLOP/s, NumPy GFLOP/s, ratio (NumPy time / Needle time).
"""

import statistics
import time
from collections.abc import Callable

import numpy as np

from needle import backend_ndarray as nd


def median_time(f: Callable[[], object], reps: int = 10, warm: int = 3) -> float:
    for _ in range(warm):
        f()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(0)
    for n in (256, 512, 1024):
        a = rng.random((n, n), dtype=np.float32)
        b = rng.random((n, n), dtype=np.float32)
        a_nd = nd.array(a, device=nd.cpu())
        b_nd = nd.array(b, device=nd.cpu())
        t_numpy = median_time(lambda a=a, b=b: a @ b)
        t_needle = median_time(lambda a_nd=a_nd, b_nd=b_nd: a_nd @ b_nd)
        flops = 2 * n**3
        print(f"| sgemm{n} | {flops / t_needle / 1e9:.1f} | {flops / t_numpy / 1e9:.1f} | {t_numpy / t_needle:.2f} |")


if __name__ == "__main__":
    main()
