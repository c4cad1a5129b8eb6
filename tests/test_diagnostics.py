"""Plain models from the factory, and the opt-in input-size diagnosis of ``zoo.check_input``."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.diagnostics import add_size_checks
from zoo.ops.shape import conv_output_size

ALL = zoo.list_models()


def _hooked(model: nn.Module) -> list[str]:
    """Qualified names of the modules that carry forward (pre-)hooks."""
    return [name or "<root>" for name, m in model.named_modules() if m._forward_pre_hooks or m._forward_hooks]


@pytest.mark.parametrize("name", ALL)
def test_create_model_installs_no_hooks(name):
    with torch.device("meta"):
        model = zoo.create_model(name)
    assert _hooked(model) == []


def test_check_input_leaves_no_hooks_and_restores_modes():
    model = zoo.create_model("lenet5")
    model.features.train(False)  # a mixed state must come back as it was
    modes = {n: m.training for n, m in model.named_modules()}
    zoo.check_input(model, (1, 32, 32))
    assert _hooked(model) == []
    assert {n: m.training for n, m in model.named_modules()} == modes


def test_check_input_raises_and_still_cleans_up():
    model = zoo.create_model("lenet5")
    with pytest.raises(zoo.InputTooSmallError) as err:
        zoo.check_input(model, (1, 28, 28))
    msg = str(err.value)
    assert "input too small for lenet5" in msg and "'features.c5'" in msg
    assert "(n + 2p - d(f-1) - 1)/s + 1" in msg
    assert _hooked(model) == [] and model.training
    with torch.no_grad():  # the model itself runs unchecked: PyTorch's own error, not zoo's
        with pytest.raises(RuntimeError):
            model.eval()(torch.zeros(1, 1, 4, 4))


def test_check_input_on_the_meta_device_and_with_a_given_name():
    with torch.device("meta"):
        model = zoo.create_model("vgg11_bn", num_classes=10, in_chans=1)
    with pytest.raises(zoo.InputTooSmallError, match=r"input too small for my-vgg: at layer 'features\.\d+'"):
        zoo.check_input(model, (1, 28, 28), name="my-vgg")
    zoo.check_input(model, (1, 32, 32))
    assert _hooked(model) == []


def test_add_size_checks_handles_remove_them():
    model = zoo.create_model("resnet20")
    handles = add_size_checks(model)
    assert handles and _hooked(model)
    for h in handles:
        h.remove()
    assert _hooked(model) == []


@pytest.mark.parametrize("px", [8, 10])
def test_ceil_mode_pools_are_not_a_false_alarm(px):
    """googlenet_bn's ceil_mode pools take a 2-px map to 1; PyTorch runs it, so the check must too."""
    model = zoo.create_model("googlenet_bn", num_classes=10, small_input=True).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, px, px)).shape == (1, 10)
    zoo.check_input(model, (3, px, px))


def test_check_input_agrees_with_pytorch_on_googlenet_bn():
    model = zoo.create_model("googlenet_bn", num_classes=10, small_input=True).eval()
    for px in range(1, 13):
        try:
            with torch.no_grad():
                model(torch.zeros(1, 3, px, px))
            runs = True
        except RuntimeError:
            runs = False
        if runs:
            zoo.check_input(model, (3, px, px))
        else:
            with pytest.raises(zoo.InputTooSmallError, match="ceil_mode"):
                zoo.check_input(model, (3, px, px))


def test_ceil_mode_arithmetic_matches_pytorch():
    for k in (2, 3, 5):
        for s in (1, 2, 3):
            for p in range(k // 2 + 1):
                for n in range(1, 12):
                    pool = nn.MaxPool1d(k, s, p, ceil_mode=True)
                    try:
                        got = pool(torch.zeros(1, 1, n)).shape[-1]
                    except RuntimeError:
                        got = 0
                    assert max(conv_output_size(n, k, s, p, ceil_mode=True), 0) == got, (n, k, s, p)


def test_count_macs_counts_cpu_attention_without_registering_it():
    from torch.utils import flop_counter

    before = set(flop_counter.flop_registry)
    model = zoo.create_model("vit_tiny_patch4")  # on the CPU: the fused attention kernel
    assert zoo.count_macs(model, (3, 32, 32)) == zoo.model_info("vit_tiny_patch4").macs
    assert set(flop_counter.flop_registry) == before


def test_features_only_must_be_a_bool():
    with pytest.raises(zoo.ModelArgumentTypeError, match="features_only"):
        zoo.create_model("resnet18", features_only="yes")


def test_weights_file_with_another_extension_is_refused():
    with pytest.raises(zoo.ModelArgumentError, match=r"\.safetensors"):
        zoo.create_model("lenet5", weights="model.pth")
