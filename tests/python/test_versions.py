"""In-place writes and autograd: every write to a tensor's storage counts in its version (``_version``),
and backward() raises instead of computing a wrong gradient when a tensor it saved was written since."""

from __future__ import annotations

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import nn, optim


def tensor(values: list[float], device: nd.Device, requires_grad: bool = True) -> ndl.Tensor:
    return ndl.Tensor(np.array(values), device=device, dtype="float64", requires_grad=requires_grad)


def test_each_kind_of_in_place_write_increments_the_version(device: nd.Device) -> None:
    x = tensor([1.0, 2.0, 3.0], device, requires_grad=False)
    assert x._version == 0
    x[:] = 10
    assert x._version == 1
    x[0] = np.array(5.0)
    assert x._version == 2
    x.cached_data.fill(0)
    assert x._version == 3
    x.cached_data[1:] = nd.array([1.0, 2.0], device=device)
    assert x._version == 4
    x.detach()[0] = 7  # a detached tensor shares the storage and its counter
    assert x._version == 5
    assert (x + x)._version == 0  # results are fresh


def test_optimizer_steps_increment_the_versions_of_parameters(device: nd.Device) -> None:
    for make in (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.Adam(ps, lr=0.1)):
        p = nn.Parameter(np.array([1.0, 2.0]), device=device, dtype="float64")
        opt = make([p])
        (p * p).sum().backward()
        before = p._version
        opt.step()
        assert p._version == before + 1


def test_setitem_after_forward_raises(device: nd.Device) -> None:
    x = tensor([1.0, 2.0, 3.0], device, requires_grad=False)
    w = tensor([4.0, 5.0, 6.0], device)
    y = (x * w).sum()
    x[:] = 10
    with pytest.raises(
        RuntimeError,
        match=r"modified by an inplace operation: input 0 of multiply \(shape \(3,\)\) is at version 1, "
        r"expected version 0",
    ):
        y.backward()
    assert w.grad is None


def test_leaf_written_under_no_grad_after_forward_raises(device: nd.Device) -> None:
    x = tensor([1.0, 2.0, 3.0], device)
    w = tensor([4.0, 5.0, 6.0], device)
    y = (x * w).sum()
    with ndl.no_grad():
        w[1] = 0.0
    with pytest.raises(RuntimeError, match=r"input 1 of multiply \(shape \(3,\)\) is at version 1"):
        y.backward()


def test_write_through_detach_after_forward_raises(device: nd.Device) -> None:
    x = tensor([1.0, 2.0, 3.0], device)
    w = tensor([4.0, 5.0, 6.0], device)
    y = (x * w).sum()
    w.detach()[:] = 1.0
    with pytest.raises(RuntimeError, match="inplace operation"):
        y.backward()


def test_assigning_data_after_forward_raises(device: nd.Device) -> None:
    x = tensor([1.0, 2.0, 3.0], device)
    w = tensor([4.0, 5.0, 6.0], device)
    y = (x * w).sum()
    x.data = np.array([7.0, 8.0, 9.0])
    with pytest.raises(RuntimeError, match=r"input 0 of multiply \(shape \(3,\)\) was given a new value"):
        y.backward()


def test_writes_no_gradient_reads_are_allowed(device: nd.Device) -> None:
    x = tensor([1.0, 2.0, 3.0], device, requires_grad=False)
    w = tensor([4.0, 5.0, 6.0], device)
    y = (x + w).sum() + (-w).reshape((3, 1)).sum()  # add, neg, sum and reshape save nothing
    x[:] = 10
    w.detach()[:] = 10
    y.backward()
    assert w.grad is not None
    np.testing.assert_allclose(w.grad.numpy(), [0.0, 0.0, 0.0])


def test_writing_after_backward_is_allowed(device: nd.Device) -> None:
    x = tensor([1.0, 2.0, 3.0], device)
    w = tensor([4.0, 5.0, 6.0], device)
    (x * w).sum().backward()
    w.detach()[:] = 0
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 5.0, 6.0])


def test_optimizer_step_before_a_second_backward_raises(device: nd.Device) -> None:
    layer = nn.Linear(2, 1, device=device, dtype="float64")
    opt = optim.SGD(layer.parameters(), lr=0.1)
    x = ndl.Tensor(np.array([[1.0, 2.0]]), device=device, dtype="float64")
    loss = layer(x).sum()
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match=r"input 1 of linear \(shape \(2, 1\)\) is at version 1"):
        loss.backward()


def test_load_state_dict_before_backward_raises(device: nd.Device) -> None:
    layer = nn.Linear(2, 1, device=device, dtype="float64")
    x = ndl.Tensor(np.array([[1.0, 2.0]]), device=device, dtype="float64")
    loss = layer(x).sum()
    layer.load_state_dict(layer.state_dict())
    with pytest.raises(RuntimeError, match="was given a new value"):
        loss.backward()


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_training_loop_still_works(device: nd.Device, kind: str) -> None:
    x = ndl.Tensor(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]]), device=device, dtype="float64")
    target = ndl.Tensor(np.array([[3.0], [0.0], [2.0], [6.0]]), device=device, dtype="float64")
    model = nn.Sequential(
        nn.Linear(2, 4, device=device, dtype="float64"), nn.Linear(4, 1, device=device, dtype="float64")
    )
    opt = (
        optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
        if kind == "sgd"
        else optim.Adam(model.parameters(), lr=0.05)
    )
    losses = []
    for _ in range(30):
        opt.reset_grad()
        loss = ((model(x) - target) ** 2).sum()
        loss.backward()
        opt.step()
        losses.append(float(loss.numpy()))
    assert losses[-1] < losses[0] / 2


def test_batch_norm_running_statistics_do_not_trip_the_check(device: nd.Device) -> None:
    norm = nn.BatchNorm1d(2, device=device, dtype="float64")
    x = ndl.Tensor(np.array([[1.0, 2.0], [3.0, 5.0], [8.0, 13.0]]), device=device, dtype="float64")
    first = norm(x)
    second = norm(x)  # replaces the running statistics again
    (first * first + second).sum().backward()
    assert x.grad is not None
