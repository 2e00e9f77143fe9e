"""Fixtures of the Python tests.

The engine's tests compare against NumPy in every dtype, so they run with NumPy's dtypes for input given
without one (the course's NEEDLE_BACKEND=np policy): a float64 array stays float64. The default policy
(floating input becomes float32, the course's NDArray backend) has its own tests, which ask for it with the
``course_dtypes`` fixture.
"""

from collections.abc import Iterator

import numpy as np
import pytest
from ndarray_helpers import DEVICES

from needle import _core
from needle import backend_ndarray as nd


@pytest.fixture(autouse=True)
def numpy_input_dtypes() -> Iterator[None]:
    _core.set_float_input_policy("numpy")
    yield
    _core.set_float_input_policy("numpy")


@pytest.fixture
def course_dtypes() -> Iterator[None]:
    """The default policy: floating input without a dtype becomes float32."""
    _core.set_float_input_policy("float32")
    yield
    _core.set_float_input_policy("numpy")


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> nd.Device:
    return nd.Device(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
