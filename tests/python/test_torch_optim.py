"""needle.torch optimizers, schedulers, data loading and short training runs against real PyTorch: every
case of torch_cases/cases_optim.py runs several steps from the same weights and data and gives PyTorch's
losses after every step, learning rates and final parameters."""

import pytest
from torch_reference import NO_REFERENCE, case_names, compare, reference_python

pytestmark = pytest.mark.skipif(reference_python() is None, reason=NO_REFERENCE)


@pytest.mark.parametrize("case", case_names("cases_optim"))
def test_optim_case_matches_pytorch(case: str) -> None:
    compare("cases_optim", case)
