"""Convolution and pooling layers of ``needle.nn`` (NCHW in and out)."""

from __future__ import annotations

from needle import _core
from needle._core import Tensor
from needle.nn._layer import CppAttribute, Layer, placement
from needle.nn.module import DeviceLike


class Conv(Layer):
    """Needle's Conv: NCHW in and out, "same" padding kernel_size // 2; weight (k, k, in, out)."""

    _cpp: _core.Conv

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(_core.Conv, in_channels, out_channels, kernel_size, stride, bias, *placement(device, dtype))

    in_channels = CppAttribute[int]("Channels of the input.")
    out_channels = CppAttribute[int]("Channels of the output.")
    kernel_size = CppAttribute[int]("Side of the square kernel.")
    stride = CppAttribute[int]("Step between windows.")
    padding = CppAttribute[int]("Zeros added on each side of H and W.")
    weight = CppAttribute[Tensor]("(kernel_size, kernel_size, in_channels, out_channels).")
    bias = CppAttribute[Tensor | None]("(out_channels,), or None.")


class Conv2d(Conv):
    """Conv with PyTorch's explicit ``padding`` (default 0)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        Layer.__init__(
            self, _core.Conv2d, in_channels, out_channels, kernel_size, stride, padding, bias, *placement(device, dtype)
        )


class MaxPool2d(Layer):
    """Maximum over kernel_size x kernel_size windows of x (N, C, H, W); stride defaults to kernel_size."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__(_core.MaxPool2d, kernel_size, stride, padding)


class AvgPool2d(Layer):
    """Mean over kernel_size x kernel_size windows of x (N, C, H, W); stride defaults to kernel_size."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__(_core.AvgPool2d, kernel_size, stride, padding)
