"""Deep graphs from Python: dropping the end of a long chain of ops (never differentiated, or after
``backward(retain_graph=True)``), an RNN cell unrolled for tens of thousands of steps, and backward through
a 100,000-op chain. Each case runs in a subprocess, so a stack overflow (which kills the process) is a test
failure rather than the end of the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import needle as ndl
import numpy as np

def chain(x, n):
    y = x
    for _ in range(n):
        y = y * 1.0
    return y

start = ndl.autograd.live_tensor_count()
"""

CASES = {
    "chain_dropped_without_backward": """
x = ndl.Tensor(np.array([2.0], dtype=np.float32), requires_grad=True)
y = chain(x, 200_000)
del y
assert ndl.autograd.live_tensor_count() == start + 1, ndl.autograd.live_tensor_count() - start
""",
    "chain_dropped_after_retain_graph": """
x = ndl.Tensor(np.array([2.0], dtype=np.float32), requires_grad=True)
y = chain(x, 200_000)
y.backward(retain_graph=True)
y.backward(retain_graph=True)
assert x.grad.numpy().tolist() == [2.0]
del y
x.grad = None
assert ndl.autograd.live_tensor_count() == start + 1, ndl.autograd.live_tensor_count() - start
""",
    "backward_through_100k_ops": """
x = ndl.Tensor(np.array([0.5], dtype=np.float32), requires_grad=True)
y = chain(x + 0.0, 99_999)
y.backward()
assert x.grad.numpy().tolist() == [1.0]
del y
""",
    "rnn_cell_unrolled_dropped_without_backward": """
cell = ndl.nn.RNNCell(2, 3)
x = ndl.Tensor(np.full((1, 2), 0.1, dtype=np.float32))
h = None
for _ in range(40_000):
    h = cell(x, h)
del h
""",
    "rnn_cell_unrolled_dropped_after_backward": """
cell = ndl.nn.RNNCell(2, 3)
x = ndl.Tensor(np.full((1, 2), 0.1, dtype=np.float32))
for retain in (True, False):
    h = None
    for _ in range(40_000):
        h = cell(x, h)
    h.sum().backward(retain_graph=retain)
    assert np.isfinite(cell.W_hh.grad.numpy()).all()
    del h
""",
    # Ops written in Python that keep their input: the chain runs through the op objects too.
    "python_ops_holding_their_inputs": """
class Twice(ndl.autograd.TensorOp):
    def __call__(self, a):
        self.kept = a
        return super().__call__(a)

    def compute(self, a):
        return a * 2.0

    def gradient(self, out_grad, node):
        return out_grad * 2.0

x = ndl.Tensor(np.array([1.0], dtype=np.float32), requires_grad=True)
y = x
for _ in range(100_000):
    y = Twice()(y)
del y
assert ndl.autograd.live_tensor_count() == start + 1, ndl.autograd.live_tensor_count() - start
""",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_deep_graph_in_a_subprocess(case: str) -> None:
    script = textwrap.dedent(PRELUDE) + textwrap.dedent(CASES[case]) + "\nprint('ok')\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip() == "ok"
