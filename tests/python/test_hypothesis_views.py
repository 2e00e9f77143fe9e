"""Property-based tests: random chains of views give the same values in NumPy and Needle, on both devices."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from ndarray_helpers import check

import needle as ndl
from needle import backend_ndarray as nd


def devices() -> list[nd.Device]:
    # Created per call: module-level device objects held by hypothesis outlive the extension at exit.
    return [ndl.ref(), ndl.cpu()]


@st.composite
def view_chains(draw: st.DrawFn) -> tuple[tuple[int, ...], list[tuple[str, object]]]:
    """A start shape and a list of view operations valid for the evolving shape."""
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))
    ops: list[tuple[str, object]] = []
    current = shape
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["reshape", "permute", "slice", "index", "broadcast", "newaxis", "compact"]))
        if kind == "reshape":
            size = int(np.prod(current))
            dims = [d for d in range(1, 7) if size % d == 0] if size else [0, 1, 2]
            first = draw(st.sampled_from(dims))
            target = (first, -1) if first and size % first == 0 else (first, 1, 0) if size == 0 else (size,)
            if size == 0 and first == 0:
                target = (0, draw(st.integers(0, 3)))
            ops.append(("reshape", target))
            current = np.empty(current).reshape(target).shape
        elif kind == "permute" and current:
            axes = tuple(draw(st.permutations(range(len(current)))))
            ops.append(("permute", axes))
            current = tuple(current[a] for a in axes)
        elif kind == "slice" and current:
            key = []
            for d in current:
                start = draw(st.none() | st.integers(-d - 1, d + 1))
                stop = draw(st.none() | st.integers(-d - 1, d + 1))
                step = draw(st.sampled_from([1, 1, 2, 3, -1, -2]))
                key.append(slice(start, stop, step))
            ops.append(("getitem", tuple(key)))
            current = np.empty(current)[tuple(key)].shape
        elif kind == "index" and current and all(current):
            axis = draw(st.integers(0, len(current) - 1))
            i = draw(st.integers(-current[axis], current[axis] - 1))
            key2: tuple[object, ...] = (*([slice(None)] * axis), i)
            if draw(st.booleans()):
                key2 = (..., i) if axis == len(current) - 1 else key2
            ops.append(("getitem", key2))
            current = np.empty(current)[key2].shape
        elif kind == "broadcast":
            new = tuple(draw(st.integers(0, 3)) if d == 1 else d for d in current)
            lead = tuple(draw(st.lists(st.integers(1, 3), max_size=1)))
            target = lead + new
            ops.append(("broadcast", target))
            current = target
        elif kind == "newaxis":
            pos = draw(st.integers(0, len(current)))
            key3 = (*([slice(None)] * pos), None)
            ops.append(("getitem", key3))
            current = np.empty(current)[key3].shape
        elif kind == "compact":
            ops.append(("compact", None))
    return shape, ops


def apply_numpy(x: np.ndarray, op: str, arg: object) -> np.ndarray:
    if op == "reshape":
        return x.reshape(arg)  # type: ignore[call-overload]
    if op == "permute":
        return np.transpose(x, arg)  # type: ignore[arg-type]
    if op == "getitem":
        return x[arg]  # type: ignore[index]
    if op == "broadcast":
        return np.broadcast_to(x, arg)  # type: ignore[arg-type]
    return np.array(x, order="C")


def apply_needle(a: nd.NDArray, op: str, arg: object) -> nd.NDArray:
    if op == "reshape":
        return a.reshape(arg)  # type: ignore[arg-type]
    if op == "permute":
        return a.permute(arg)  # type: ignore[arg-type]
    if op == "getitem":
        return a[arg]  # type: ignore[index]
    if op == "broadcast":
        return a.broadcast_to(arg)  # type: ignore[arg-type]
    return a.compact()


@settings(max_examples=150, deadline=None)
@given(chain=view_chains(), dtype=st.sampled_from(["float32", "int64", "bool"]))
def test_view_chains_match_numpy(chain: tuple[tuple[int, ...], list[tuple[str, object]]], dtype: str) -> None:
    shape, ops = chain
    x = (np.arange(int(np.prod(shape))).reshape(shape) % 7).astype(dtype)
    for device in devices():
        expected = x
        a = nd.NDArray(x, device=device)
        for op, arg in ops:
            expected = apply_numpy(expected, op, arg)
            a = apply_needle(a, op, arg)
            check(a, expected, dtype)
        check(a.compact(), np.array(expected, order="C"), dtype)
        assert a.compact().is_compact()
        np.testing.assert_array_equal(a.numpy(), expected)


@settings(max_examples=100, deadline=None)
@given(chain=view_chains())
def test_writes_through_view_chains(chain: tuple[tuple[int, ...], list[tuple[str, object]]]) -> None:
    shape, ops = chain
    stops = [i for i, (op, _) in enumerate(ops) if op in ("broadcast", "compact")]
    ops = ops[: stops[0]] if stops else ops  # the prefix of plain views
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    for device in devices():
        expected = x.copy()
        a = nd.NDArray(x, device=device)
        v, ev = a, expected
        shares = True
        for op, arg in ops:
            v, ev = apply_needle(v, op, arg), apply_numpy(ev, op, arg)
            shares = shares and np.shares_memory(ev, expected)
        if not shares or not v.shares_memory(a):
            continue  # a reshape had to copy
        v[...] = -1.0
        ev[...] = -1.0
        check(a, expected, "float64")


@settings(max_examples=100, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
    data=st.data(),
)
def test_reductions_over_random_axes(shape: tuple[int, ...], data: st.DataObject) -> None:
    axes = tuple(data.draw(st.sets(st.integers(0, len(shape) - 1))))
    keepdims = data.draw(st.booleans())
    x = np.random.default_rng(len(shape)).standard_normal(shape)
    results = []
    for device in devices():
        a = nd.NDArray(x, device=device)
        axis = axes if axes else None
        check(a.sum(axis=axis, keepdims=keepdims), np.sum(x, axis=axis, keepdims=keepdims))
        check(a.max(axis=axis, keepdims=keepdims), np.max(x, axis=axis, keepdims=keepdims))
        results.append(a.mean(axis=axis, keepdims=keepdims).numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)
