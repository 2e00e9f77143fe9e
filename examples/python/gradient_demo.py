"""Reverse-mode differentiation from Python: the gradient of a small two-layer network's loss, checked
against a central finite difference, on each device; then an op written in Python joining the graph.

Run it with ``python examples/python/gradient_demo.py`` (after ``pip install .``).
"""

import numpy as np

import needle as ndl
from needle import backend_ndarray as nd
from needle import ops


def loss_of(w1: ndl.Tensor, w2: ndl.Tensor, x: ndl.Tensor, labels: ndl.Tensor) -> ndl.Tensor:
    """Softmax loss of relu(x @ w1) @ w2."""
    return ops.cross_entropy(ops.relu(x @ w1) @ w2, labels)


def mlp_gradient(device: nd.Device) -> None:
    ndl.manual_seed(0)  # needle.init draws from NumPy's global state, as in Needle
    rng = np.random.default_rng(0)
    x = ndl.Tensor(rng.standard_normal((8, 4)), device=device, requires_grad=False)  # float64 inputs
    labels = ndl.Tensor(rng.integers(0, 3, 8), device=device)
    w1 = ndl.init.kaiming_uniform(4, 16, device=device, dtype="float64", requires_grad=True)
    w2 = ndl.init.kaiming_uniform(16, 3, device=device, dtype="float64", requires_grad=True)

    loss = loss_of(w1, w2, x, labels)
    loss.backward()
    assert w1.grad is not None
    print(f"device {device}: loss = {loss.item():.6f}")
    print(f"  dloss/dw1[0, :4] = {np.array2string(w1.grad.numpy()[0, :4], precision=6)}")

    # The same entry by a central finite difference of the loss (no graph needed for that).
    eps = 1e-6
    bump = np.zeros(w1.shape)
    bump[0, 1] = eps
    with ndl.no_grad():
        up = loss_of(ndl.Tensor(w1.numpy() + bump, device=device), w2, x, labels).item()
        down = loss_of(ndl.Tensor(w1.numpy() - bump, device=device), w2, x, labels).item()
    numeric = (up - down) / (2 * eps)
    analytic = float(w1.grad.numpy()[0, 1])
    print(f"  dloss/dw1[0, 1]: backward {analytic:.9f}, finite difference {numeric:.9f}")
    assert abs(analytic - numeric) <= 1e-6 * max(1.0, abs(numeric)), "gradient mismatch"


class Cube(ndl.TensorOp):
    """x ** 3, written in Python: compute on NDArrays, gradient with Tensor ops."""

    def compute(self, a: nd.NDArray) -> nd.NDArray:  # type: ignore[override]
        return a * a * a

    def gradient(self, out_grad: ndl.Tensor, node: ndl.Tensor) -> ndl.Tensor:
        (a,) = node.inputs
        return out_grad * a * a * 3


def python_op() -> None:
    x = ndl.Tensor([1.0, 2.0, 3.0])
    y = (Cube()(x) + x).sum()
    y.backward()
    assert x.grad is not None
    print(f"op written in Python: d/dx sum(x**3 + x) at {x.numpy()} = {x.grad.numpy()} (3 x**2 + 1)")


def main() -> None:
    for device in (ndl.cpu(), ndl.ref()):
        mlp_gradient(device)
    python_op()


if __name__ == "__main__":
    main()
