"""Reference operations and the output-size arithmetic shared by the whole zoo.

* :mod:`zoo.ops.shape`: ``conv_output_size`` / ``conv_transpose_output_size`` and
  :class:`InputTooSmallError` (the hooks that raise it live in :mod:`zoo.diagnostics`).
* :mod:`zoo.ops.im2col`: im2col and its adjoint col2im.
* :mod:`zoo.ops.conv`: ``conv2d`` (im2col + matmul, hand-derived backward) and
  ``conv_transpose2d`` (conv2d's input gradient).
* :mod:`zoo.ops.pool`: ``max_pool2d`` (arg-max routing) and ``avg_pool2d`` (even spread).
* ``python -m zoo.ops.bench``: times the reference ops against PyTorch's.
"""

from zoo.ops.shape import (
    InputTooSmallError,
    conv_output_size,
    conv_transpose_output_size,
)
from zoo.ops.im2col import col2im, im2col
from zoo.ops.conv import Conv2dFunction, ConvTranspose2dFunction, conv2d, conv_transpose2d
from zoo.ops.pool import AvgPool2dFunction, MaxPool2dFunction, avg_pool2d, max_pool2d

__all__ = [
    "InputTooSmallError",
    "conv_output_size",
    "conv_transpose_output_size",
    "im2col",
    "col2im",
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "Conv2dFunction",
    "ConvTranspose2dFunction",
    "MaxPool2dFunction",
    "AvgPool2dFunction",
]
