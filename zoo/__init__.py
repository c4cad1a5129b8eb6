"""zoo: faithful, readable, tested PyTorch implementations of the classic convolutional networks.

    import zoo
    model = zoo.create_model("lenet5", num_classes=10)
    zoo.list_models("resnet*")
"""

from zoo._registry import (
    ModelInfo,
    Paper,
    UnknownModelError,
    create_model,
    list_models,
    model_info,
    register_model,
)
from zoo.interop import from_torchvision, torchvision_pairs
from zoo.ops.shape import InputTooSmallError
from zoo.profiling import count_macs, count_params

import zoo.models  # noqa: E402,F401  (registers every family; see zoo/models/__init__.py)

__version__ = "0.1.0"

__all__ = [
    "ModelInfo",
    "Paper",
    "UnknownModelError",
    "InputTooSmallError",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
    "from_torchvision",
    "torchvision_pairs",
    "count_macs",
    "count_params",
]
