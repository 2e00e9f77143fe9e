"""``torch.utils``: data loading."""

from needle.torch.utils import data

__all__ = ["data"]
