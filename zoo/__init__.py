"""zoo: faithful, readable, tested PyTorch implementations of the classic convolutional networks.

    import zoo
    model = zoo.create_model("lenet5", num_classes=10)   # a plain nn.Module, no hooks
    zoo.list_models("resnet*")
    zoo.check_input(model, (1, 28, 28))                  # opt-in: names the layer an input is too small for
    model = zoo.create_model("lenet5", weights="mnist")  # weights shipped with the package
    model = zoo.load_checkpoint("outputs/train/runs/...") # a trained run as a plain model
    zoo.save_weights(model, "lenet5.safetensors", name="lenet5", kwargs={"num_classes": 10})

``import zoo`` needs only torch and torchvision: it loads the models, their
metadata, the factory, interop, diagnostics and counting, and nothing of the
training pipeline (:mod:`zoo.training`, :mod:`zoo.data`: the ``train`` extra)
or the report (:mod:`zoo.report`: the ``report`` extra). It changes no global
torch state.
"""

from zoo._registry import (
    ModelArgumentError,
    ModelArgumentTypeError,
    ModelInfo,
    Paper,
    TorchvisionPair,
    UnknownModelError,
    list_models,
    model_info,
    register_model,
)
import zoo.models  # noqa: E402,F401  (registers every family; see zoo/models/__init__.py)
from zoo.factory import create_model, from_torchvision
from zoo.interop import torchvision_pairs
from zoo.diagnostics import check_input
from zoo.ops.shape import InputTooSmallError
from zoo.profiling import count_macs, count_params
from zoo.trained import CheckpointError, load_checkpoint
from zoo.weights import WeightsError, list_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    "ModelInfo",
    "Paper",
    "TorchvisionPair",
    "UnknownModelError",
    "ModelArgumentError",
    "ModelArgumentTypeError",
    "InputTooSmallError",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
    "from_torchvision",
    "torchvision_pairs",
    "check_input",
    "count_macs",
    "count_params",
    "load_checkpoint",
    "save_weights",
    "list_weights",
    "CheckpointError",
    "WeightsError",
]
