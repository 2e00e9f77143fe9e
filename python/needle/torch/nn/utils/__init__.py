"""``torch.nn.utils``: gradient clipping and parameter/vector conversion."""

from needle.torch.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_"]
