"""Feature extraction (zoo.features): feature_info of the staged models and features_only."""

from __future__ import annotations

import functools
import inspect

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.features import feature_info_from_taps, features_only

ALL = zoo.list_models()
STAGED_PREFIXES = ("resnet", "vgg", "alexnet", "googlenet", "mobilenet", "shufflenet")
STAGED = [n for n in ALL if n.startswith(STAGED_PREFIXES)]
UNSTAGED = [n for n in ALL if n not in STAGED]
#: Run on CPU tensors: on the meta device every one of its 1,202 layers costs a dispatch of its own.
REAL = {"resnet1202"}


def _layouts(name: str) -> list[bool]:
    """The ``small_input`` values ``name`` builds: both, or its single layout."""
    default = inspect.signature(zoo.model_info(name).builder).parameters["small_input"].default
    return [True] if default else [False, True]


@functools.lru_cache(maxsize=None)
def _model(name: str, small_input: bool) -> nn.Module:
    """The model in eval mode, on the meta device unless in :data:`REAL` (cached: do not change it)."""
    if name in REAL:
        return zoo.create_model(name, small_input=small_input).eval()
    with torch.device("meta"):
        return zoo.create_model(name, small_input=small_input).eval()


def _size(name: str, small_input: bool) -> int:
    """A small input side at which every map is ``size // reduction``.

    The padded networks halve exactly at multiples of their largest reduction (32 px). AlexNet's
    unpadded 3x3/2 pools give ``floor((n - 1) / 2)``, which is ``n // 2`` at every pool for
    ``n = 8c + 7`` (39 px, small-input layout); its ImageNet layout (unpadded 11x11/4 conv1) is
    checked against Figure 2 instead.
    """
    if name.startswith("alexnet"):
        return 39
    if name in REAL:
        return 16
    return 32 if small_input else 64


def test_staged_and_unstaged_models():
    assert {n.split("_")[0].rstrip("0123456789") for n in STAGED} >= {"resnet", "vgg", "alexnet", "googlenet",
                                                                       "mobilenet", "shufflenet"}
    for name in UNSTAGED:
        with torch.device("meta"):
            assert not getattr(zoo.create_model(name), "feature_info", None), name


@pytest.mark.parametrize("name", STAGED)
def test_feature_info_format(name):
    for small in _layouts(name):
        info = _model(name, small).feature_info
        assert info and all(set(f) == {"module", "num_chs", "reduction"} for f in info), info
        reductions = [f["reduction"] for f in info]
        assert reductions == sorted(set(reductions)), reductions  # one entry per reduction, increasing
        modules = dict(_model(name, small).named_modules())
        assert all(f["module"] in modules for f in info)


@pytest.mark.parametrize("name", STAGED)
def test_features_only_shapes_follow_feature_info(name):
    """Every map is ``(B, num_chs, size // reduction, size // reduction)``; the last is forward_features'."""
    for small in _layouts(name):
        if name.startswith("alexnet") and not small:
            continue  # rounds down at every layer: see test_alexnet_features_are_figure_2s_maps
        model, size = _model(name, small), _size(name, small)
        extractor = features_only(model)
        device = next(model.parameters()).device
        x = torch.randn(2, zoo.model_info(name).input_size[0], size, size, device=device)
        with torch.no_grad():
            maps = extractor(x)
            last = model.forward_features(x)
        assert isinstance(maps, list) and len(maps) == len(model.feature_info)
        got = [tuple(m.shape) for m in maps]
        expected = [(2, f["num_chs"], size // f["reduction"], size // f["reduction"]) for f in model.feature_info]
        assert got == expected, (small, got, expected)
        assert got[-1] == tuple(last.shape)


@pytest.mark.parametrize("name, size, sides", [("alexnet", 227, [55, 27, 13, 6]), ("alexnet_tv", 224, [55, 27, 13, 6])])
def test_alexnet_features_are_figure_2s_maps(name, size, sides):
    """The unpadded 11x11/4 conv1 and 3x3/2 pools round down: the maps of Figure 2, at reductions 4-32."""
    model = _model(name, False)
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    maps = features_only(model)(torch.empty(1, 3, size, size, device="meta"))
    assert [m.shape[-1] for m in maps] == sides
    assert [m.shape[1] for m in maps] == [f["num_chs"] for f in model.feature_info]


def test_small_input_layouts_change_the_reductions():
    big, small = _model("resnet50", False), _model("resnet50", True)
    assert [(f["module"], f["reduction"]) for f in big.feature_info] == [
        ("stem.act", 2), ("stages.0", 4), ("stages.1", 8), ("stages.2", 16), ("stages.3", 32)]
    assert [(f["module"], f["reduction"]) for f in small.feature_info] == [
        ("stages.0", 1), ("stages.1", 2), ("stages.2", 4), ("stages.3", 8)]
    assert [f["num_chs"] for f in big.feature_info] == [64, 256, 512, 1024, 2048]
    assert [f["reduction"] for f in _model("resnet20", True).feature_info] == [1, 2, 4]
    assert [f["reduction"] for f in _model("vgg16", True).feature_info] == [1, 2, 4, 8, 16]
    assert [f["reduction"] for f in _model("googlenet", True).feature_info] == [1, 2, 4, 8]


def test_out_indices_select_stages():
    model = _model("resnet18", True)
    extractor = features_only(model, out_indices=(1, -1))
    assert [f["module"] for f in extractor.feature_info] == ["stages.1", "stages.3"]
    maps = extractor(torch.empty(2, 3, 32, 32, device="meta"))
    assert [tuple(m.shape) for m in maps] == [(2, 128, 16, 16), (2, 512, 4, 4)]
    for bad in [(4,), (-5,), (2, 1), (1, 1)]:
        with pytest.raises(ValueError, match="out_indices|stage"):
            features_only(model, out_indices=bad)


def test_features_match_the_models_own_computation_and_share_its_weights():
    torch.manual_seed(0)
    model = zoo.create_model("resnet18", small_input=True).eval()
    extractor = features_only(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        maps = extractor(x)
        torch.testing.assert_close(maps[-1], model.forward_features(x))
        torch.testing.assert_close(maps[0], model.stages[0](model.stem(x)))
    assert set(extractor.state_dict()) <= set(model.state_dict())
    assert "fc.weight" not in extractor.state_dict()
    assert extractor.state_dict()["stem.conv.weight"].data_ptr() == model.stem.conv.weight.data_ptr()
    g = zoo.create_model("googlenet", small_input=True).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(features_only(g, out_indices=[-1])(x)[0], g.forward_features(x))


def test_features_only_keeps_the_models_mode():
    model = zoo.create_model("shufflenet_v2_x0_5", small_input=True)
    assert features_only(model).training
    assert not features_only(model.eval()).training


@pytest.mark.parametrize("name", UNSTAGED)
def test_unstaged_models_are_refused_by_name(name):
    with torch.device("meta"):
        model = zoo.create_model(name)
    with pytest.raises(ValueError, match=f"{type(model).__name__}.*no feature stages"):
        features_only(model)


def test_feature_info_from_taps_keeps_the_last_module_per_reduction():
    taps = [("a", 8, 1), ("b", 8, 2), ("c", 16, 2), ("d", 16, 4)]
    assert feature_info_from_taps(taps) == [
        {"module": "a", "num_chs": 8, "reduction": 1}, {"module": "c", "num_chs": 16, "reduction": 2},
        {"module": "d", "num_chs": 16, "reduction": 4}]
    with pytest.raises(ValueError, match="decrease"):
        feature_info_from_taps([("a", 8, 2), ("b", 8, 1)])
