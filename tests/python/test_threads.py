"""needle.set_num_threads / get_num_threads: the cpu kernels give the same products at 1 and 2 threads."""

from collections.abc import Iterator

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    previous = ndl.get_num_threads()
    yield
    ndl.set_num_threads(previous)


def test_set_and_get() -> None:
    ndl.set_num_threads(1)
    assert ndl.get_num_threads() == 1
    ndl.set_num_threads(2)
    assert ndl.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -3, 100000])
def test_bad_counts_raise_value_error(bad: int) -> None:
    before = ndl.get_num_threads()
    with pytest.raises(ValueError, match="set_num_threads"):
        ndl.set_num_threads(bad)
    assert ndl.get_num_threads() == before


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("m", "k", "n", "transpose_b"),
    [(300, 200, 250, False), (20, 300, 700, False), (257, 129, 65, True), (1, 500, 300, False), (400, 300, 1, False)],
)
def test_matmul_same_at_one_and_two_threads(m: int, k: int, n: int, transpose_b: bool, dtype: str) -> None:
    rng = np.random.default_rng(m * 7 + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(dtype)
    a_nd = nd.array(a, device=nd.cpu())
    b_nd = nd.array(b, device=nd.cpu())
    if transpose_b:
        b_nd = b_nd.permute((1, 0))
        b = b.T
    results = []
    for threads in (1, 2):
        ndl.set_num_threads(threads)
        results.append((a_nd @ b_nd).numpy())
    expected = a.astype(np.float64) @ b.astype(np.float64)
    tolerance = 1e-4 if dtype == "float32" else 1e-11
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=tolerance, atol=tolerance * np.sqrt(k))
    # Each element is computed by one thread in a fixed order: the thread count changes nothing.
    np.testing.assert_array_equal(results[0], results[1])


def test_batched_matmul_at_two_threads() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((16, 33, 20)).astype(np.float32)
    b = rng.standard_normal((20, 17)).astype(np.float32)
    ndl.set_num_threads(2)
    result = (nd.array(a, device=nd.cpu()) @ nd.array(b, device=nd.cpu())).numpy()
    np.testing.assert_allclose(result, a @ b, rtol=1e-4, atol=1e-4)
