"""Neural-network modules (``needle.nn``): ``Module``, ``Parameter`` and the built-in layers.

``Module`` is plain Python, as in Needle: subclass it, assign parameters and submodules as attributes and
write ``forward``. The built-in layers hold Needle's C++ layers, which do their math.
"""

from needle.nn import functional
from needle.nn.conv import AvgPool2d, Conv, Conv2d, MaxPool2d
from needle.nn.layers import (
    GELU,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    Linear,
    MSELoss,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    SoftmaxLoss,
    Tanh,
)
from needle.nn.module import CppModule, Module, Parameter
from needle.nn.norm import BatchNorm1d, BatchNorm2d, LayerNorm, LayerNorm1d
from needle.nn.rnn import LSTM, RNN, LSTMCell, RNNCell
from needle.nn.transformer import KVCache, MultiHeadAttention, Transformer, TransformerLayer

__all__ = [
    "GELU",
    "LSTM",
    "RNN",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv",
    "Conv2d",
    "CppModule",
    "CrossEntropyLoss",
    "Dropout",
    "Embedding",
    "Flatten",
    "Identity",
    "KVCache",
    "LSTMCell",
    "LayerNorm",
    "LayerNorm1d",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "MultiHeadAttention",
    "Parameter",
    "RNNCell",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "SoftmaxLoss",
    "Tanh",
    "Transformer",
    "TransformerLayer",
    "functional",
]
