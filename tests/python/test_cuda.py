"""The ``cuda`` device from Python.

Without a visible GPU (or in a build without CUDA) ``ndl.cuda().enabled()`` is False and using the device
raises RuntimeError naming it; the tests that need a GPU skip with "no CUDA device visible". With a GPU,
arrays, tensors and modules move to it and compute what NumPy and the ``cpu`` device compute.
"""

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd

CUDA_ENABLED = ndl.cuda().enabled()
needs_gpu = pytest.mark.skipif(not CUDA_ENABLED, reason="no CUDA device visible")


def test_enabled_is_a_bool_and_matches_device_list() -> None:
    assert isinstance(ndl.cuda().enabled(), bool)
    assert ndl.cuda() in nd.all_devices()
    assert ndl.cuda().name == "cuda"
    assert ndl.cuda(1).name == "cuda:1"


@pytest.mark.skipif(CUDA_ENABLED, reason="a CUDA device is visible")
def test_without_a_device_enabled_is_false_and_use_raises() -> None:
    assert ndl.cuda().enabled() is False
    with pytest.raises(RuntimeError, match=r"^cuda"):
        nd.array(np.ones((2, 3), dtype=np.float32), device=ndl.cuda())
    with pytest.raises(RuntimeError, match=r"^cuda"):
        nd.array([1.0, 2.0]).to(ndl.cuda())
    with pytest.raises(RuntimeError, match=r"^cuda"):
        ndl.Tensor([1.0, 2.0], device=ndl.cuda())


def test_a_device_index_beyond_the_visible_ones_is_disabled() -> None:
    assert ndl.cuda(64).enabled() is False
    with pytest.raises(RuntimeError, match="cuda"):
        nd.array([1.0]).to(ndl.cuda(64))


@needs_gpu
def test_arrays_round_trip_and_compute_like_numpy() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((33, 17)).astype(np.float32)
    b = rng.standard_normal((17, 65)).astype(np.float32)
    x = nd.array(a, device=ndl.cuda())
    y = nd.array(b, device=ndl.cuda())
    assert x.device == ndl.cuda()
    np.testing.assert_array_equal(x.numpy(), a)
    np.testing.assert_allclose((x @ y).numpy(), a @ b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose((x + 1.5).exp().numpy(), np.exp(a + 1.5), rtol=1e-5)
    np.testing.assert_allclose(x.sum(axis=1).numpy(), a.sum(axis=1), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(x.max(axis=0).numpy(), a.max(axis=0))
    np.testing.assert_array_equal(x.permute((1, 0)).numpy(), a.T)
    assert "cuda" in repr(x)


@needs_gpu
def test_tensor_and_module_move_and_train_like_cpu() -> None:
    cpu_model = ndl.nn.Sequential(ndl.nn.Linear(6, 8), ndl.nn.ReLU(), ndl.nn.Linear(8, 3))
    gpu_model = ndl.nn.Sequential(ndl.nn.Linear(6, 8), ndl.nn.ReLU(), ndl.nn.Linear(8, 3))
    gpu_model.load_state_dict(cpu_model.state_dict())
    gpu_model.to(ndl.cuda())
    for p in gpu_model.parameters():
        assert p.device == ndl.cuda()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    labels = rng.integers(0, 3, size=16)
    losses = []
    for model, device in ((cpu_model, ndl.cpu()), (gpu_model, ndl.cuda())):
        opt = ndl.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            opt.reset_grad()
            loss = ndl.nn.SoftmaxLoss()(model(ndl.Tensor(x, device=device)), ndl.Tensor(labels, device=device))
            loss.backward()
            opt.step()
        losses.append(float(loss.numpy()))
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    for p_cpu, p_gpu in zip(cpu_model.parameters(), gpu_model.parameters(), strict=True):
        np.testing.assert_allclose(p_gpu.numpy(), p_cpu.numpy(), rtol=1e-4, atol=1e-5)
