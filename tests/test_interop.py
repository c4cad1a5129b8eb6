"""torchvision interop of AlexNet, VGG and GoogLeNet: same logits from the same weights.

torchvision models are built with random weights and randomised BN statistics;
nothing is downloaded. Full-model checks run at 224 px with batch 1; the VGG
feature stacks of every depth are compared at 64 px.
"""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.nn as nn
import torchvision

import zoo
from zoo.models.googlenet import _tv_keys

PAIRS = {
    "alexnet_tv": "alexnet",
    "vgg11": "vgg11", "vgg13": "vgg13", "vgg16": "vgg16", "vgg19": "vgg19",
    "vgg11_bn": "vgg11_bn", "vgg13_bn": "vgg13_bn", "vgg16_bn": "vgg16_bn", "vgg19_bn": "vgg19_bn",
    "googlenet_bn": "googlenet",
}
# torchvision's GoogLeNet as used here: no aux heads, its own init (no scipy warning), raw inputs.
TV_GOOGLENET = dict(aux_logits=False, init_weights=True, transform_input=False)


@torch.no_grad()
def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fills every parameter with random values of sensible scale and gives BN non-trivial statistics."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            bound = (3 / m.weight[0].numel()) ** 0.5  # unit-variance outputs for unit-variance inputs
            m.weight.uniform_(-bound, bound, generator=g)
            if m.bias is not None:
                m.bias.uniform_(-0.1, 0.1, generator=g)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.uniform_(-0.2, 0.2, generator=g)
            m.running_mean.uniform_(-0.5, 0.5, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
            m.num_batches_tracked.fill_(7)
    return model


def _tv(tv_name: str, **kwargs) -> nn.Module:
    """A torchvision model with random weights, built on the meta device and then materialised."""
    with torch.device("meta"):
        model = torchvision.models.get_model(tv_name, weights=None, **kwargs)
    return _randomise(model.to_empty(device="cpu")).eval()


def test_every_pair_is_registered():
    pairs = zoo.torchvision_pairs()
    for name, tv_name in PAIRS.items():
        assert pairs.get(name) == tv_name, name
    assert "alexnet" not in pairs and "vgg11_lrn" not in pairs and "vgg16_1x1" not in pairs


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_state_dicts_fit_key_for_key(name):
    """Every torchvision tensor finds its place (strict, on the meta device: no compute)."""
    googlenet = name == "googlenet_bn"
    with torch.device("meta"):
        tv = torchvision.models.get_model(PAIRS[name], weights=None, **(TV_GOOGLENET if googlenet else {}))
        ours = zoo.from_torchvision(name, tv.state_dict(), **({"aux_logits": False} if googlenet else {}))
    tv_sd = _tv_keys(tv.state_dict()) if googlenet else tv.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in tv_sd.items()}
    assert zoo.count_params(ours) == zoo.count_params(tv)


@pytest.mark.parametrize("name", ["alexnet_tv", "vgg16_bn"])
def test_same_logits_at_224(name):
    tv = _tv(PAIRS[name])
    ours = zoo.from_torchvision(name, tv.state_dict()).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = tv(x), ours(x)
    assert expected.abs().max() > 1e-2  # non-trivial logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"])
def test_vgg_feature_stacks_match_at_every_depth(name):
    with torch.device("meta"):
        tv = torchvision.models.get_model(name, weights=None)
        ours = zoo.create_model(name)
    tv_features = _randomise(tv.features.to_empty(device="cpu")).eval()
    ours_features = ours.features.to_empty(device="cpu").eval()
    ours_features.load_state_dict(tv_features.state_dict())
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours_features(x), tv_features(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("aux", [False, True])
def test_googlenet_bn_same_logits_at_224(aux):
    tv = _tv("googlenet", aux_logits=aux, init_weights=True, transform_input=False)
    ours = zoo.from_torchvision("googlenet_bn", tv.state_dict(), aux_logits=aux, transform_input=False).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), atol=1e-4, rtol=0)
        if aux:  # the auxiliary heads hold the same weights too
            tv_x = tv.maxpool3(tv.inception3b(tv.inception3a(tv.maxpool2(tv.conv3(tv.conv2(tv.maxpool1(tv.conv1(x))))))))
            tv_4a = tv.inception4a(tv_x)
            ours_4a = ours.blocks["inception4a"](ours.blocks["maxpool3"](ours.blocks["inception3b"](
                ours.blocks["inception3a"](ours.stem(x)))))
            torch.testing.assert_close(ours.aux1(ours_4a), tv.aux1(tv_4a), atol=1e-4, rtol=0)


def test_googlenet_bn_pretrained_path_sets_transform_input(monkeypatch):
    """weights="torchvision" builds the model as torchvision's pretrained one (transform_input=True)."""
    tv = _tv("googlenet", aux_logits=True, init_weights=True, transform_input=True)
    sd = tv.state_dict()
    monkeypatch.setattr(zoo.interop, "load_checkpoint", lambda url, **k: sd)
    ours = zoo.create_model("googlenet_bn", weights="torchvision").eval()
    assert ours.transform_input
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["googlenet_bn", "alexnet_tv"])
def test_pretrained_weights_offline_fail_clearly(name, monkeypatch, tmp_path):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # an empty cache: the file must be fetched
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with torch.device("meta"), pytest.raises(RuntimeError) as err:
        zoo.create_model(name, weights="torchvision")
    msg = str(err.value)
    assert "could not fetch torchvision weights" in msg and "URLError" in msg
    assert "internet" in msg and "zoo.from_torchvision" in msg and ".pth" in msg


def test_models_without_a_torchvision_twin_say_so():
    with pytest.raises(KeyError, match="no torchvision counterpart"):
        zoo.create_model("vgg16_1x1", weights="torchvision")
