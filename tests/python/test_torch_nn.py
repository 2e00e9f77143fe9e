"""needle.torch layers, losses and modules against real PyTorch: every case of torch_cases/cases_nn.py (layouts,
defaults, options, state dicts and their errors) gives PyTorch's outputs, gradients, running
statistics and error types."""

import pytest
from torch_reference import NO_REFERENCE, case_names, compare, reference_python

pytestmark = pytest.mark.skipif(reference_python() is None, reason=NO_REFERENCE)


@pytest.mark.parametrize("case", case_names("cases_nn"))
def test_nn_case_matches_pytorch(case: str) -> None:
    compare("cases_nn", case)
