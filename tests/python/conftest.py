"""Fixtures of the NDArray tests."""

import numpy as np
import pytest
from ndarray_helpers import DEVICES

from needle import backend_ndarray as nd


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> nd.Device:
    return nd.Device(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
