"""needle.torch's edges, which real PyTorch cannot check: names outside the supported surface raise
NotImplementedError naming them (and still behave as missing attributes for hasattr/getattr), the layer's
errors are the kinds PyTorch raises, and PyTorch's layouts are views of Needle's."""

import pytest

import needle as ndl
import needle.torch as torch


@pytest.mark.parametrize(
    ("get", "name"),
    [
        (lambda: torch.fft, "torch.fft"),
        (lambda: torch.nn.Conv3d, "torch.nn.Conv3d"),
        (lambda: torch.nn.functional.interpolate, "torch.nn.functional.interpolate"),
        (lambda: torch.zeros(2).retain_grad, "Tensor.retain_grad"),
    ],
)
def test_unsupported_names_say_so(get: object, name: str) -> None:
    with pytest.raises(NotImplementedError, match=f"{name} is not supported by needle.torch"):
        get()  # type: ignore[operator]


def test_unsupported_names_are_still_missing_attributes() -> None:
    assert not hasattr(torch, "fft")
    assert getattr(torch.zeros(1), "retain_grad", None) is None
    assert hasattr(torch, "tensor")


def test_shape_errors_are_both_value_and_runtime_errors() -> None:
    with pytest.raises(RuntimeError, match="matmul"):
        torch.ones(2, 3) @ torch.ones(4, 3)
    with pytest.raises(ValueError, match="matmul"):
        torch.ones(2, 3) @ torch.ones(4, 3)


def test_fast_methods_raise_python_errors_on_broken_receivers() -> None:
    # +, sum() and backward() read the Needle tensor straight from the `_t` slot: a tensor whose slot is gone,
    # a receiver of another class and a wrong argument of the C++ convolution raise, never crash.
    from needle import _core

    t = torch.ones(2)
    del t._t
    for call in (lambda: t + 1, lambda: torch.ones(2) * t, lambda: t.sum(), lambda: t.backward()):
        with pytest.raises(AttributeError, match="_t"):
            call()
    with pytest.raises(TypeError):
        torch.Tensor.__add__(1.0, torch.ones(2))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"conv2d: weight must be a torch\.Tensor"):
        _core.torch_conv2d(torch.ones(1, 1, 3, 3), ndl.Tensor([[1.0]]), None, 1, 0)
    with pytest.raises(RuntimeError, match="installed"):
        _core.torch_install(torch.Tensor)


def test_fast_methods_keep_the_general_methods_documentation() -> None:
    assert "integers and bools sum to int64" in (torch.Tensor.sum.__doc__ or "")
    assert "retain_graph" in (torch.Tensor.backward.__doc__ or "")


def test_conv_and_linear_weights_are_views_of_needle_layouts() -> None:
    conv = torch.nn.Conv2d(3, 8, (3, 5))
    assert conv.weight.shape == (8, 3, 3, 5)
    # The memory is (kH, kW, C_in, C_out): the permute to Needle's layout is contiguous.
    assert conv.weight.permute(2, 3, 1, 0).is_contiguous()
    linear = torch.nn.Linear(4, 6)
    assert linear.weight.shape == (6, 4)
    assert linear.weight.t().is_contiguous()


def test_a_pytorch_step_is_traced_down_to_kernels() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 3)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(2, 1, 4, 4), torch.tensor([0, 2])
    with ndl.trace() as trace:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    names = {(e["cat"], e["name"]) for e in trace.events}
    assert ("op", "conv") in names
    assert any(cat == "kernel" and name == "sgd_update" for cat, name in names)


def test_script_boilerplate_runs() -> None:
    model = torch.nn.Linear(2, 2)
    assert torch.compile(model) is model
    assert torch.cuda.is_available() in (True, False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert model.to(device) is model
    torch.backends.cudnn.benchmark = True
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(torch.get_num_threads())
    with torch.inference_mode():
        assert not model(torch.ones(1, 2)).requires_grad
