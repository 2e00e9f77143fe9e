"""Normalization layers of ``needle.nn``: BatchNorm1d/2d (with running statistics) and LayerNorm1d."""

from __future__ import annotations

from needle import _core
from needle._core import Tensor
from needle.nn._layer import CppAttribute, Layer, placement
from needle.nn.module import DeviceLike


class _BatchNorm(Layer):
    _cpp: _core.BatchNorm

    dim = CppAttribute[int]("Number of channels.", cpp_name="num_features")
    eps = CppAttribute[float]("Added to the variance; writable (ValueError unless finite and >= 0).")
    momentum = CppAttribute[float]("Weight of the batch in the running statistics; writable (in [0, 1]).")
    weight = CppAttribute[Tensor]("(dim,), ones at first.")
    bias = CppAttribute[Tensor]("(dim,), zeros at first.")
    running_mean = CppAttribute[Tensor]("(dim,) buffer.")
    running_var = CppAttribute[Tensor]("(dim,) buffer.")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of x (N, dim) over the batch; running statistics for eval mode."""

    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(_core.BatchNorm1d, dim, eps, momentum, *placement(device, dtype))


class BatchNorm2d(_BatchNorm):
    """Batch normalization of x (N, C, H, W) over every axis but C."""

    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        device: DeviceLike = None,
        dtype: str | None = "float32",
    ) -> None:
        super().__init__(_core.BatchNorm2d, dim, eps, momentum, *placement(device, dtype))


class LayerNorm1d(Layer):
    """Normalization over the last axis of x (..., dim), then * weight + bias."""

    _cpp: _core.LayerNorm1d

    def __init__(self, dim: int, eps: float = 1e-5, device: DeviceLike = None, dtype: str | None = "float32") -> None:
        super().__init__(_core.LayerNorm1d, dim, eps, *placement(device, dtype))

    dim = CppAttribute[int]("Size of the normalized (last) axis.")
    eps = CppAttribute[float]("Added to the variance; writable (ValueError unless finite and >= 0).")
    weight = CppAttribute[Tensor]("(dim,), ones at first.")
    bias = CppAttribute[Tensor]("(dim,), zeros at first.")


#: PyTorch's name for LayerNorm1d (normalizing over the last axis only).
LayerNorm = LayerNorm1d
