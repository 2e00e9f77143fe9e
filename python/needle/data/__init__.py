"""Data loading (``needle.data``): datasets, transforms, the DataLoader and the Penn Treebank helpers."""

from needle.data.dataloader import DataLoader
from needle.data.datasets import CIFAR10Dataset, CppDataset, Dataset, MNISTDataset, NDArrayDataset
from needle.data.ptb import Corpus, Dictionary, batchify, get_batch
from needle.data.transforms import RandomCrop, RandomFlipHorizontal, Transform

__all__ = [
    "CIFAR10Dataset",
    "Corpus",
    "CppDataset",
    "DataLoader",
    "Dataset",
    "Dictionary",
    "MNISTDataset",
    "NDArrayDataset",
    "RandomCrop",
    "RandomFlipHorizontal",
    "Transform",
    "batchify",
    "get_batch",
]
