"""A tour of Needle's array layer from Python: views, kernels on two devices, NumPy interop, errors.

Run it with ``python examples/python/arrays_demo.py`` after ``bash scripts/setup.sh``.
"""

import time

import numpy as np

from needle import backend_ndarray as nd


def show(label: str, a: nd.NDArray) -> None:
    values = np.array2string(a.numpy(), precision=3, separator=", ").replace("\n", "")
    print(f"  {label:<22} shape={a.shape!s:<10} strides={a.strides!s:<10} {values}")


def tour(device: nd.Device) -> None:
    print(f"device {device} (enabled: {device.enabled()})")
    a = nd.array(np.arange(6, dtype=np.float32).reshape(2, 3), device=device)
    print(repr(a))
    show("a", a)
    t = a.permute((1, 0))
    show("a.permute((1, 0))", t)
    print(f"  {'':<22} a view: compact={t.is_compact()}, shares memory with a={np.shares_memory(t.numpy(), a.numpy())}")
    show("a @ a.T", a @ t)
    show("a[:, 1:].sum(axis=1)", a[:, 1:].sum(axis=1))
    show("exp(a) / 10", nd.exp(a) / 10)
    show("broadcast a[:, None]", a[:, None].broadcast_to((2, 2, 3))[1])
    show("pad rows by 1", a.pad(((1, 1), (0, 0))))
    show("argmax(axis=0)", a.argmax(axis=0))


def matmul_speed(device: nd.Device, n: int = 256) -> float:
    x = nd.randn(n, n, device=device)
    y = nd.randn(n, n, device=device)
    start = time.perf_counter()
    x @ y
    return 2 * n**3 / (time.perf_counter() - start) / 1e9


def main() -> None:
    print("Needle arrays: the same operations on the readable `ref` backend and the default `cpu` backend\n")
    for device in (nd.ref(), nd.cpu()):
        tour(device)
        print()

    nd.manual_seed(0)
    on_ref = nd.randn(3, device=nd.ref()).numpy()
    nd.manual_seed(0)
    on_cpu = nd.randn(3, device=nd.cpu()).numpy()
    same = bool((on_ref == on_cpu).all())
    print(f"seeded randn on ref {on_ref.tolist()} and on cpu {on_cpu.tolist()}: identical={same}")

    print(
        f"256x256 matmul, one run: ref {matmul_speed(nd.ref()):.2f} GFLOP/s, cpu {matmul_speed(nd.cpu()):.2f} GFLOP/s"
    )

    try:
        nd.array(np.ones((2, 3))) @ nd.array(np.ones((2, 3)))
    except ValueError as error:
        print(f"bad input gives a clear error: ValueError: {error}")


if __name__ == "__main__":
    main()
