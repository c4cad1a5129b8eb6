"""The registry contract, swept over every registered model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import zoo
from zoo._registry import _REGISTRY

ROOT = Path(__file__).resolve().parents[1]
ALL = zoo.list_models()


def test_registry_is_populated_and_sorted():
    assert "lenet5" in ALL and "lenet5_modern" in ALL
    assert ALL == sorted(ALL)


def test_list_models_fnmatch():
    assert zoo.list_models("lenet5*") == ["lenet5", "lenet5_modern"]
    assert zoo.list_models("no_such_*") == []


def test_unknown_model_suggests_close_matches():
    with pytest.raises(zoo.UnknownModelError, match=r"Did you mean: lenet5"):
        zoo.create_model("lenett5")
    with pytest.raises(KeyError):  # it is also a KeyError, as for any missing name
        zoo.model_info("definitely-not-a-model")


def test_duplicate_registration_raises():
    info = zoo.model_info("lenet5")
    with pytest.raises(ValueError, match="already registered"):
        zoo.register_model("lenet5", paper=info.paper, input_size=info.input_size,
                           num_classes=10, params=1, macs=1)(lambda **kw: nn.Identity())
    assert _REGISTRY["lenet5"] is info


def test_every_model_has_metadata_and_a_config():
    for name in ALL:
        info = zoo.model_info(name)
        assert info.paper.title and info.paper.year > 1980, name
        assert info.paper.arxiv or info.paper.venue, name
        assert info.params > 0 and info.macs > 0, name
        cfg = ROOT / "configs" / "model" / f"{name}.yaml"
        assert cfg.is_file(), f"{name} has no configs/model/{name}.yaml"
        text = cfg.read_text()
        assert "zoo.create_model" in text and f"name: {name}" in text, cfg


@pytest.mark.parametrize("name", ALL)
def test_metadata_params_and_macs_are_recomputed(name):
    """The hand-kept numbers in the registry equal what the code builds (on the meta device)."""
    info = zoo.model_info(name)
    with torch.device("meta"):
        model = zoo.create_model(name, num_classes=info.num_classes, in_chans=info.input_size[0])
    assert zoo.count_params(model) == info.params
    assert zoo.count_macs(model, info.input_size, device="meta") == info.macs


@pytest.mark.parametrize("name", ALL)
def test_sweep_forward_backward(name):
    """Every model: logits of shape (B, num_classes), finite, and a gradient for every parameter."""
    torch.manual_seed(0)
    info = zoo.model_info(name)
    num_classes = 7
    model = zoo.create_model(name, num_classes=num_classes, in_chans=info.input_size[0])
    model.train()
    x = torch.randn(2, *info.input_size)
    if hasattr(model, "forward_train"):
        out, aux = model.forward_train(x)
        loss = out.logsumexp(1).sum() + sum(a.logsumexp(1).sum() for a in aux)
    else:
        out = model(x)
        loss = out.logsumexp(1).sum()
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()
    loss.backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name}: {pname} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, num_classes)
