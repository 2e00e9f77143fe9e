"""``torch.optim``: optimizers and learning-rate schedulers with PyTorch's formulas."""

from needle.torch.optim import lr_scheduler
from needle.torch.optim.optimizer import SGD, Adam, AdamW, Optimizer

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "lr_scheduler"]
