"""Every registered model compiles with ``torch.jit.script`` and matches eager mode."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
import torch.nn as nn

import zoo

SMALL_SIDE = 32


def _build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    """The model with 10 classes in eval mode, in its small-input layout where it has one, and its input shape."""
    info = zoo.model_info(name)
    kwargs: dict[str, object] = {"num_classes": 10}
    shape = tuple(info.input_size)
    if "small_input" in inspect.signature(info.builder).parameters:
        kwargs["small_input"] = True
        if len(shape) == 3 and shape[1] > SMALL_SIDE:
            shape = (shape[0], SMALL_SIDE, SMALL_SIDE)
    model = zoo.create_model(name, **kwargs).eval()
    return model, shape


def _script(model: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script's deprecation notice
        return torch.jit.script(model)


@pytest.mark.parametrize("name", zoo.list_models())
def test_script_matches_eager(name: str) -> None:
    model, shape = _build(name)
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
        if not torch.isfinite(expected).all():
            # Very deep untrained stacks (ResNet-1202) overflow; damp the residual branches.
            for m in model.modules():
                if hasattr(m, "last_norm"):
                    m.last_norm.weight.mul_(0.1)
            expected = model(x)
        assert torch.isfinite(expected).all()
        scripted = _script(model)
        torch.testing.assert_close(scripted(x), expected)


def test_scripted_lenet_rejects_other_sizes() -> None:
    model, _ = _build("lenet5")
    scripted = _script(model)
    with pytest.raises(torch.jit.Error, match="input was not 32x32"):
        scripted(torch.randn(1, 1, 36, 36))  # C5 is 2x2


def test_lenet_reference_ops_are_eager_only() -> None:
    model = zoo.create_model("lenet5", conv_impl="reference").eval()
    scripted = _script(model)  # the default ("native") path compiles; the reference ops do not
    with pytest.raises(torch.jit.Error, match="eager mode only"):
        scripted(torch.randn(1, 1, 32, 32))


def test_scripted_vit_rejects_partial_patches() -> None:
    model, _ = _build("vit_tiny_patch4")
    scripted = _script(model)
    with pytest.raises(torch.jit.Error, match="multiples of the patch size"):
        scripted(torch.randn(1, 3, 30, 30))
