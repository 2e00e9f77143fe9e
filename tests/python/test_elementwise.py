"""Element-wise operations against NumPy: unary, binary (array/array and scalar on either side), comparisons,
where; every layout, device and dtype, with PyTorch's promotion rules."""

import operator
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from ndarray_helpers import (
    ALL_DTYPES,
    LAYOUTS,
    NUMERIC_DTYPES,
    SHAPES,
    check,
    float_result,
    make_input,
    promote,
    promote_scalar,
    random_array,
)

from needle import backend_ndarray as nd


@pytest.fixture(autouse=True)
def _quiet_numpy() -> Iterator[None]:
    # NumPy reference results may divide by zero (bool/int divisors); Needle's results are compared as they are.
    with np.errstate(divide="ignore", invalid="ignore"):
        yield


FLOAT_UNARY: dict[str, tuple[Callable[[nd.NDArray], nd.NDArray], Callable[[np.ndarray], np.ndarray]]] = {
    "exp": (nd.exp, np.exp),
    "log": (nd.log, np.log),
    "sqrt": (nd.sqrt, np.sqrt),
    "tanh": (nd.tanh, np.tanh),
    "sigmoid": (nd.sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x))),
}
KEEP_DTYPE_UNARY: dict[str, tuple[Callable[[nd.NDArray], nd.NDArray], Callable[[np.ndarray], np.ndarray]]] = {
    "neg": (nd.neg, np.negative),
    "abs": (nd.abs, np.abs),
    "relu": (nd.relu, lambda x: np.maximum(x, np.zeros((), x.dtype))),
    "-a": (operator.neg, np.negative),
    "abs()": (abs, np.abs),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("name", list(FLOAT_UNARY))
def test_float_unary(
    device: nd.Device, rng: np.random.Generator, name: str, dtype: str, shape: tuple[int, ...], layout: str
) -> None:
    op, ref = FLOAT_UNARY[name]
    kind = "positive" if name in ("log", "sqrt") else "any"
    if dtype == "bool" and name in ("log",):
        kind = "any"  # log(0) = -inf is fine
    x, a = make_input(layout, shape, dtype, rng, device, kind)
    out = float_result(dtype)
    with np.errstate(divide="ignore"):
        check(op(a), ref(x.astype(out)), out)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
@pytest.mark.parametrize("name", list(KEEP_DTYPE_UNARY))
def test_keep_dtype_unary(
    device: nd.Device, rng: np.random.Generator, name: str, dtype: str, shape: tuple[int, ...], layout: str
) -> None:
    op, ref = KEEP_DTYPE_UNARY[name]
    x, a = make_input(layout, shape, dtype, rng, device)
    check(op(a), ref(x), dtype)


@pytest.mark.parametrize("name", ["neg", "abs", "relu"])
def test_integer_unary_refuses_bool(device: nd.Device, name: str) -> None:
    op, _ = KEEP_DTYPE_UNARY[name]
    with pytest.raises(TypeError, match=f"{name}.*bool"):
        op(nd.NDArray([True, False], device=device))


BINARY: dict[str, tuple[Callable[[object, object], object], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "+": (operator.add, np.add),
    "-": (operator.sub, np.subtract),
    "*": (operator.mul, np.multiply),
    "/": (operator.truediv, np.true_divide),
    "maximum": (nd.maximum, np.maximum),
    "minimum": (nd.minimum, np.minimum),
}
COMPARISONS: dict[str, tuple[Callable[[object, object], object], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "==": (operator.eq, np.equal),
    "!=": (operator.ne, np.not_equal),
    "<": (operator.lt, np.less),
    "<=": (operator.le, np.less_equal),
    ">": (operator.gt, np.greater),
    ">=": (operator.ge, np.greater_equal),
}
# Broadcasting pairs, size-0 and 0-d included.
BROADCAST_PAIRS = [
    ((), ()),
    ((5,), (5,)),
    ((3, 4), (4,)),
    ((2, 1, 3), (4, 1)),
    ((1,), (2, 3)),
    ((0, 3), (1, 3)),
    ((3, 1), ()),
]


def binary_result_dtype(name: str, a: str, b: str) -> str:
    dtype = promote(a, b)
    return float_result(dtype) if name == "/" else dtype


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("shape_a", "shape_b"), BROADCAST_PAIRS, ids=str)
@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_same_dtype(
    device: nd.Device,
    rng: np.random.Generator,
    name: str,
    dtype: str,
    shape_a: tuple[int, ...],
    shape_b: tuple[int, ...],
    layout: str,
) -> None:
    op, ref = BINARY[name]
    x, a = make_input(layout, shape_a, dtype, rng, device)
    y, b = make_input("contiguous", shape_b, dtype, rng, device, kind="positive" if name == "/" else "any")
    out = binary_result_dtype(name, dtype, dtype)
    check(op(a, b), ref(x.astype(out), y.astype(out)), out)  # type: ignore[arg-type]
    check(op(b, a), ref(y.astype(out), x.astype(out)), out) if name != "/" else None  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype_b", ALL_DTYPES)
@pytest.mark.parametrize("dtype_a", ALL_DTYPES)
@pytest.mark.parametrize("name", ["+", "*", "/", "maximum"])
def test_binary_promotion(device: nd.Device, rng: np.random.Generator, name: str, dtype_a: str, dtype_b: str) -> None:
    op, ref = BINARY[name]
    x = random_array((3, 4), dtype_a, rng)
    y = random_array((4,), dtype_b, rng, kind="positive")
    out = binary_result_dtype(name, dtype_a, dtype_b)
    result = op(nd.NDArray(x, device=device), nd.NDArray(y, device=device))
    check(result, ref(x.astype(out), y.astype(out)), out)  # type: ignore[arg-type]


def test_promotion_examples(device: nd.Device) -> None:
    i32 = nd.NDArray(np.array([1, 2], dtype=np.int32), device=device)
    i64 = nd.NDArray(np.array([3, 4], dtype=np.int64), device=device)
    f32 = nd.NDArray(np.array([0.5, 1.5], dtype=np.float32), device=device)
    f64 = nd.NDArray(np.array([0.5, 1.5], dtype=np.float64), device=device)
    assert (i32 + i64).dtype == "int64"
    assert (i64 + f32).dtype == "float32"
    assert (i32 / i32).dtype == "float32"
    assert (f32 * f64).dtype == "float64"
    assert (i32 + 2).dtype == "int32"
    assert (i32 + 2.5).dtype == "float32"
    assert (f64 * 2.5).dtype == "float64"
    assert (i32 == i64).dtype == "bool"
    np.testing.assert_array_equal((i32 / i32).numpy(), [1.0, 1.0])


SCALARS = [2, -3, 0.5, -1.25, True]


@pytest.mark.parametrize("scalar", SCALARS, ids=repr)
@pytest.mark.parametrize("layout", ["contiguous", "strided", "broadcast"])
@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("name", ["+", "-", "*", "/", "maximum", "minimum"])
def test_binary_scalar(
    device: nd.Device, rng: np.random.Generator, name: str, dtype: str, layout: str, scalar: bool | int | float
) -> None:
    op, ref = BINARY[name]
    if dtype == "bool" and name == "-" and isinstance(scalar, bool):
        with pytest.raises(TypeError, match="sub: not supported for bool arrays"):
            op(nd.NDArray(np.array([True, False]), device=device), scalar)  # type: ignore[arg-type]
        return
    kind = "positive" if name == "/" else "any"
    x, a = make_input(layout, (3, 5), dtype, rng, device, kind)
    out = promote_scalar(dtype, scalar)
    if name == "/":
        out = float_result(out)
    s = np.asarray(scalar).astype(out)
    check(op(a, scalar), ref(x.astype(out), s), out)  # type: ignore[arg-type]
    if name != "/" or scalar != 0:
        check(op(scalar, a), ref(s, x.astype(out)), out)  # type: ignore[arg-type]


def test_bool_arithmetic_is_logical_or_refused(device: nd.Device) -> None:
    t = nd.NDArray(np.array([True, True, False, False]), device=device)
    u = nd.NDArray(np.array([True, False, True, False]), device=device)
    check(t + u, np.array([True, True, True, False]), "bool")
    check(t * u, np.array([True, False, False, False]), "bool")
    with pytest.raises(TypeError, match="sub: not supported for bool arrays"):
        _ = t - u
    with pytest.raises(TypeError, match="negate: not supported for bool arrays"):
        _ = -t


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_numpy_scalars_are_scalars(device: nd.Device, dtype: str) -> None:
    a = nd.NDArray(np.array([1, 2, 3], dtype=dtype), device=device)
    check(a + np.int64(2), np.array([3, 4, 5], dtype=dtype), dtype)
    check(a * np.float32(0.5), np.array([0.5, 1.0, 1.5]), float_result(dtype))
    check(np.bool_(True) + a, np.array([2, 3, 4], dtype=dtype), dtype)


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_power(device: nd.Device, rng: np.random.Generator, dtype: str) -> None:
    x = random_array((4, 3), dtype, rng, kind="positive")
    a = nd.NDArray(x, device=device)
    check(a**2, x.astype(dtype) ** np.asarray(2, dtype), dtype)
    check(a**0.5, x.astype(float_result(dtype)) ** np.float32(0.5), float_result(dtype))
    check(2**a, np.asarray(2, dtype) ** x, dtype)
    e = random_array((3,), dtype, rng, kind="positive") % 3
    check(a ** nd.NDArray(e, device=device), x**e, dtype)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_power_negative_exponent(device: nd.Device, dtype: str) -> None:
    a = nd.NDArray(np.array([1, 2], dtype=dtype), device=device)
    with pytest.raises(ValueError, match=r"pow"):
        a ** nd.NDArray(np.array([-1, 1], dtype=dtype), device=device)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("shape_a", "shape_b"), BROADCAST_PAIRS, ids=str)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("name", list(COMPARISONS))
def test_comparisons(
    device: nd.Device,
    rng: np.random.Generator,
    name: str,
    dtype: str,
    shape_a: tuple[int, ...],
    shape_b: tuple[int, ...],
    layout: str,
) -> None:
    op, ref = COMPARISONS[name]
    x, a = make_input(layout, shape_a, dtype, rng, device)
    y, b = make_input("contiguous", shape_b, dtype, rng, device)
    if dtype.startswith("int"):  # make equal elements likely
        x, a = x % 3, nd.NDArray(x % 3, device=device)
    check(op(a, b), ref(x, y), "bool")  # type: ignore[arg-type]
    check(op(a, 1), ref(x, np.asarray(1, dtype)), "bool")  # type: ignore[arg-type]
    check(op(0.5, a), ref(np.float64(0.5), x), "bool")  # type: ignore[arg-type]


def test_equality_with_other_objects(device: nd.Device) -> None:
    a = nd.NDArray([1, 2], device=device)
    assert (a == "x") is False
    assert (a != None) is True  # noqa: E711
    with pytest.raises(TypeError):
        hash(a)


@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
@pytest.mark.parametrize(
    ("shape_c", "shape_a", "shape_b"), [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), ()), ((0, 2), (1, 2), (2,))], ids=str
)
def test_where(
    device: nd.Device,
    rng: np.random.Generator,
    dtype: str,
    shape_c: tuple[int, ...],
    shape_a: tuple[int, ...],
    shape_b: tuple[int, ...],
) -> None:
    c = random_array(shape_c, "bool", rng)
    x = random_array(shape_a, dtype, rng)
    y = random_array(shape_b, "float64", rng)
    cond, a, b = (nd.NDArray(v, device=device) for v in (c, x, y))
    check(nd.where(cond, a, b), np.where(c, x, y), promote(dtype, "float64"))
    check(nd.where(cond, a, 0), np.where(c, x, np.zeros((), dtype)), dtype)
    check(nd.where(cond, 1.5, a), np.where(c, 1.5, x), float_result(dtype))
    check(nd.where(cond, 1, 2), np.where(c, 1, 2), "int64")


def test_methods_match_functions(device: nd.Device, rng: np.random.Generator) -> None:
    x = random_array((3, 4), "float32", rng, kind="positive")
    a = nd.NDArray(x, device=device)
    check(a.exp(), np.exp(x))
    check(a.log(), np.log(x))
    check(a.tanh(), np.tanh(x))
    check(a.sqrt(), np.sqrt(x))
    check(a.relu(), x)
    check(a.sigmoid(), 1 / (1 + np.exp(-x)))
    check(a.maximum(1.0), np.maximum(x, np.float32(1.0)))
    check(a.minimum(a * 2), np.minimum(x, x * 2))
    check(nd.add(a, 1), x + 1)
    check(nd.sub(1, a), 1 - x)
    check(nd.mul(a, a), x * x)
    check(nd.div(a, 2), x / 2)
    check(nd.power(a, 2), x**2)
    check(nd.eq(a, a), np.ones(x.shape, bool))
    check(nd.ge(a, 1.0), x >= 1)
