"""needle.torch tensors against real PyTorch: every case of torch_cases/cases_tensor.py (factories, dtype
promotion, reductions, shapes, indexing, in-place ops and their errors) gives PyTorch's values, gradients,
dtypes and error types."""

import pytest
from torch_reference import NO_REFERENCE, case_names, compare, reference_python

pytestmark = pytest.mark.skipif(reference_python() is None, reason=NO_REFERENCE)


@pytest.mark.parametrize("case", case_names("cases_tensor"))
def test_tensor_case_matches_pytorch(case: str) -> None:
    compare("cases_tensor", case)
