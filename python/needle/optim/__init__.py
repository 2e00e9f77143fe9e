"""Optimizers, learning-rate schedulers and gradient clipping (``needle.optim``)."""

from needle.optim.lr_scheduler import CosineAnnealingLR, LinearWarmup, LRScheduler, StepLR
from needle.optim.optimizer import SGD, Adam, AdamW, CppOptimizer, Optimizer, clip_grad_norm, clip_grad_norm_

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "CppOptimizer",
    "LRScheduler",
    "LinearWarmup",
    "Optimizer",
    "StepLR",
    "clip_grad_norm",
    "clip_grad_norm_",
]
