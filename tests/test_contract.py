"""One contract for every registered model, checked across the whole registry.

* Builders take keyword-only ``num_classes``, ``in_chans``, ``small_input`` (strictly a
  bool) and ``dropout``; a model with a single layout accepts the ``small_input`` that
  matches it and refuses the other with a ValueError naming the model, the keyword, the
  value and what it accepts.
* The family classes take ``num_classes`` / ``in_chans`` keyword-only.
* Every model has ``num_classes``, ``num_features``, ``forward_features``,
  ``forward_head(x, pre_logits)``, ``get_classifier`` and ``reset_classifier``, and
  ``forward(x) == forward_head(forward_features(x))`` is one tensor.

Models are built in their cheapest layout (the small-input one, a narrow FC head for
AlexNet and VGG: ``fc_width=64``) on small inputs; ``vit_b_16``, ``vit_b_32`` and
``vit_l_16`` (86-304 M parameters) are checked on the meta device, shapes only; their class
is checked with values through the small ViTs.
"""

from __future__ import annotations

import copy
import functools
import inspect

import pytest
import torch
import torch.nn as nn

import zoo

ALL = zoo.list_models()
#: Models with one layout, built for small images: small_input=True only.
SINGLE_LAYOUT = {"lenet5", "lenet5_modern", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                 "resnet1202", "gated_tcn", "vit_tiny_patch4", "vit_small_patch4"}
#: Dropout given by the paper (the default); every other model defaults to 0.
PAPER_DROPOUT = {"alexnet": 0.5, "alexnet_tv": 0.5, "googlenet": 0.4, "googlenet_bn": 0.2,
                 **{n: 0.5 for n in ALL if n.startswith("vgg")}}
#: Models whose ``dropout`` is not (only) on the classifier's input: the ViTs (the paper's
#: dropout, in the encoder), gated_tcn (residual branches), alexnet_tv (torchvision drops the
#: inputs of fc6 and fc7, not of fc8).
DROPOUT_ELSEWHERE = {"alexnet_tv", "gated_tcn"} | {n for n in ALL if n.startswith("vit")}
#: Checked on the meta device only, shapes: the ViT-B/L (86-304 M parameters) cost too much to
#: initialise here; their class is checked with values through the small ViTs.
META_ONLY = {"vit_b_16", "vit_b_32", "vit_l_16"}


def _params(name: str) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(zoo.model_info(name).builder).parameters)


def _cheap_kwargs(name: str) -> dict:
    """The cheapest layout of ``name``: small-input, and a narrow FC head for AlexNet / VGG."""
    kw: dict = {}
    if _params(name)["small_input"].default is False:
        kw["small_input"] = True
    if name.startswith(("alexnet", "vgg")):
        kw["fc_width"] = 64
    if name in ("vit_b_16", "vit_b_32", "vit_l_16"):
        kw["image_size"] = 16
    if name == "resnet1202":
        kw["zero_init_residual"] = True  # 600 residual sums of a random init overflow in eval mode
    return kw


def _input(name: str) -> torch.Tensor:
    """A small valid input for the cheap layout: ``(2, C, S, S)``, as small as the layout allows."""
    info = zoo.model_info(name)
    size = 16  # the small-input layouts of the CNNs downsample 8x at most
    if name.startswith(("lenet", "vit_tiny", "vit_small")):
        size = 32  # LeNet-5 needs 32 px; the small ViTs are cheap there
    elif name.startswith("gated"):
        size = 28
    elif name.startswith("resnet"):
        size = 8
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, info.input_size[0], size, size, generator=g)
    return x.to("meta") if name in META_ONLY else x


@functools.lru_cache(maxsize=None)
def _model(name: str, **kw) -> nn.Module:
    """The cheap model (cached per process; tests that change it work on a copy)."""
    torch.manual_seed(0)
    if name in META_ONLY:
        with torch.device("meta"):
            return zoo.create_model(name, **_cheap_kwargs(name), **kw).eval()
    return zoo.create_model(name, **_cheap_kwargs(name), **kw).eval()


@functools.lru_cache(maxsize=None)
def _meta(name: str, **kw) -> nn.Module:
    """The model on the meta device (cached per process: do not change it)."""
    with torch.device("meta"):
        return zoo.create_model(name, **kw)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.is_meta or b.is_meta:
        return a.shape == b.shape
    return torch.allclose(a, b, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- keywords


@pytest.mark.parametrize("name", ALL)
def test_builder_takes_the_shared_keywords(name):
    params = _params(name)
    for key in ("num_classes", "in_chans", "small_input", "dropout"):
        assert key in params, f"{name} does not take {key}"
        assert params[key].kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: {key} is not keyword-only"
    assert isinstance(params["small_input"].default, bool)
    assert params["small_input"].default is (name in SINGLE_LAYOUT or name == "gated_cnn")
    assert params["dropout"].default == PAPER_DROPOUT.get(name, 0.0)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad", [1, 0, "yes", None])
def test_small_input_must_be_a_bool(name, bad):
    builder = zoo.model_info(name).builder
    with torch.device("meta"), pytest.raises(TypeError, match="small_input"):
        builder(small_input=bad)


@pytest.mark.parametrize("name", ALL)
def test_small_input_layouts(name):
    """Two-layout models build both; a single-layout model refuses the other value, clearly."""
    small = _meta(name, small_input=True)
    assert small.num_classes == zoo.model_info(name).num_classes
    if name not in SINGLE_LAYOUT:
        _meta(name, small_input=False)
        return
    with pytest.raises(ValueError) as err:
        _meta(name, small_input=False)
    msg = str(err.value)
    assert name in msg and "small_input=False" in msg and "small_input=True" in msg, msg


@pytest.mark.parametrize("name", ALL)
def test_dropout_keyword_builds_dropout(name):
    model = _meta(name, dropout=0.3)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in model.modules()), name


@pytest.mark.parametrize("name", ALL)
def test_class_takes_num_classes_and_in_chans_keyword_only(name):
    cls = type(_meta(name))
    params = inspect.signature(cls.__init__).parameters
    assert "num_classes" in params, cls
    for key in ("num_classes", "in_chans", "small_input", "dropout"):
        if key in params:
            assert params[key].kind is inspect.Parameter.KEYWORD_ONLY, f"{cls.__name__}: {key}"


# ----------------------------------------------------------------------------- interface


@pytest.mark.parametrize("name", ALL)
def test_forward_is_forward_head_of_forward_features(name):
    model, x = _model(name), _input(name)
    with torch.no_grad():
        out = model(x)
        feats = model.forward_features(x)
        split = model.forward_head(feats)
        pooled = model.forward_head(feats, pre_logits=True)
    assert isinstance(out, torch.Tensor) and out.shape == (2, model.num_classes)
    assert _close(out, split)
    assert isinstance(model.num_features, int) and pooled.shape == (2, model.num_features)
    assert isinstance(model.get_classifier(), nn.Module)


@pytest.mark.parametrize("name", ALL)
def test_forward_returns_one_tensor_in_training_mode(name):
    model = _model(name).train()  # (updates the cached model's BN statistics only)
    try:
        out = model(_input(name))
    finally:
        model.eval()
    assert isinstance(out, torch.Tensor) and out.shape == (2, model.num_classes)


@pytest.mark.parametrize("name", ALL)
def test_reset_classifier(name):
    model, x = copy.deepcopy(_model(name)), _input(name)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(0)
        assert isinstance(model.get_classifier(), nn.Identity) and model.num_classes == 0
        features = model(x)
        assert features.shape == (2, model.num_features) and _close(features, pooled)
        model.reset_classifier(5)
        assert model.num_classes == 5 and isinstance(model.get_classifier(), nn.Module)
        logits = model(x)
        assert logits.shape == (2, 5)
        assert _close(logits, model.get_classifier()(pooled))
        assert _close(logits, model.forward_head(model.forward_features(x)))


@pytest.mark.parametrize("name", sorted(set(ALL) - DROPOUT_ELSEWHERE - META_ONLY))
def test_dropout_acts_on_the_classifier_input(name):
    """``dropout`` zeroes, in training mode, the features the final layer reads (and scales the rest).

    AlexNet and VGG also drop fc6's output, which changes fc7's; for them the layer before fc8
    must be the dropout. For the others the pre-logits features are compared with and without it.
    """
    model = _model(name, dropout=0.5)
    if name.startswith(("alexnet", "vgg")):
        layers = list(model.classifier)
        assert isinstance(layers[-2], nn.Dropout) and layers[-2].p == 0.5 and layers[-1] is model.get_classifier()
        return
    with torch.no_grad():
        feats = model.forward_features(_input(name))
        kept = model.forward_head(feats, pre_logits=True)
        model.train()
        try:
            dropped = model.forward_head(feats, pre_logits=True)
        finally:
            model.eval()
    assert ((dropped == 0) & (kept != 0)).any(), "nothing was dropped"
    survived = dropped != 0
    torch.testing.assert_close(dropped[survived], 2 * kept[survived])
