"""Reference operations and the output-size arithmetic shared by the whole zoo."""

from zoo.ops.shape import (
    InputTooSmallError,
    conv_output_size,
    conv_transpose_output_size,
    install_size_checks,
)

__all__ = [
    "InputTooSmallError",
    "conv_output_size",
    "conv_transpose_output_size",
    "install_size_checks",
]
