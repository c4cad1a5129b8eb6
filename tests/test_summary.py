"""zoo.summary: per-layer shapes, parameters and MACs agree with the papers' tables and with the totals."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.summary import format_summary, main, summarize


def _leaf_rows(summary, type_name: str):
    return [r for r in summary.rows if r.type == type_name]


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "vgg16", "googlenet"])
def test_totals_equal_the_registry_figures(name):
    info = zoo.model_info(name)
    s = summarize(name, device="meta")
    assert s.total_params == info.params
    assert s.total_macs == info.macs
    # The table adds up: every trainable tensor is held by exactly one module.
    assert sum(r.own_params for r in s.rows) == s.total_params
    assert s.rows[0].params == s.total_params and s.rows[0].macs == s.total_macs
    assert s.output_shape == (1, info.num_classes)


def test_lenet5_rows_match_the_paper():
    """LeCun et al. 1998, Sec. II.B: C1 156 params 28x28x6, C3 1,516 10x10x16, C5 48,120 1x1x120, F6 10,164."""
    s = summarize("lenet5")
    model = zoo.create_model("lenet5")
    assert s.total_params == zoo.count_params(model)
    assert s.total_macs == zoo.count_macs(model, (1, 32, 32))
    expected = {"features.c1": (156, (1, 6, 28, 28)), "features.c3": (1_516, (1, 16, 10, 10)),
                "features.c5": (48_120, (1, 120, 1, 1)), "f6": (10_164, (1, 84))}
    for name, (params, shape) in expected.items():
        row = s.row(name)
        assert (row.params, row.output_shape) == (params, shape), name
    assert s.row("features.s2").output_shape == (1, 6, 14, 14)
    assert s.row("features.s4").output_shape == (1, 16, 5, 5)
    # C1: 6 maps of 28x28, 25 multiply-adds each; C5: 120 x 400.
    assert s.row("features.c1").macs == 6 * 28 * 28 * 25
    assert s.row("features.c5").macs == 120 * 400
    with pytest.raises(KeyError):
        s.row("no.such.layer")


def test_alexnet_and_vgg16_layer_shapes_match_the_papers():
    alex = summarize("alexnet", device="meta")
    convs = [r.output_shape[1:] for r in _leaf_rows(alex, "Conv2d")]
    assert convs == [(96, 55, 55), (256, 27, 27), (384, 13, 13), (384, 13, 13), (256, 13, 13)]
    assert [r.output_shape[1] for r in _leaf_rows(alex, "Linear")] == [4096, 4096, 1000]

    vgg = summarize("vgg16", device="meta")
    convs = _leaf_rows(vgg, "Conv2d")
    # Simonyan & Zisserman, Table 1 column D: 2-2-3-3-3 3x3 convolutions, 64..512 channels.
    assert [r.output_shape[1:] for r in convs] == (
        [(64, 224, 224)] * 2 + [(128, 112, 112)] * 2 + [(256, 56, 56)] * 3 + [(512, 28, 28)] * 3
        + [(512, 14, 14)] * 3)
    for r in convs:  # MACs of a 3x3 convolution: C_out x H x W x (C_in x 9), with C_in from its weight count
        c_out, h, w = r.output_shape[1:]
        c_in = (r.params - c_out) // (9 * c_out)
        assert r.macs == c_out * h * w * c_in * 9


def test_googlenet_inception_rows_match_table1():
    """Szegedy et al. 2014, Table 1: inception(3a) 159K params; ops 128M, 304M, 73M, 88M, 100M, 119M, 170M."""
    s = summarize("googlenet", device="meta")
    assert s.row("blocks.inception3a").output_shape == (1, 256, 28, 28)
    assert s.row("blocks.inception4e").output_shape == (1, 832, 14, 14)
    assert s.row("blocks.inception5b").output_shape == (1, 1024, 7, 7)
    assert s.row("blocks.inception3a").params // 1024 == 159  # the table's K is 1024
    paper_mops = {"3a": 128, "3b": 304, "4a": 73, "4b": 88, "4c": 100, "4d": 119, "4e": 170}
    for block, mops in paper_mops.items():
        assert abs(s.row(f"blocks.inception{block}").macs / 1e6 - mops) < 1, block
    # Auxiliary heads hold parameters but do not run at inference.
    assert s.row("aux1").output_shape is None and s.row("aux1").macs == 0 and s.row("aux1").params > 0


def test_summary_of_a_plain_module_and_the_cli(capsys):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    s = summarize(net, (3, 8, 8))
    assert s.total_params == zoo.count_params(net)
    assert s.total_macs == zoo.count_macs(net, (3, 8, 8)) == 4 * 36 * 27 + 144 * 5
    assert s.row("0").output_shape == (1, 4, 6, 6)
    with pytest.raises(ValueError):
        summarize(net)
    text = format_summary(s)
    assert "Total params: 837" in text and "4x6x6" in text

    main(["lenet5", "--depth", "1"])
    out = capsys.readouterr().out
    assert "Total params: 60,000" in out and "Total MACs:   325,680" in out
    assert "features" in out and "c1" not in out  # depth 1 hides nested layers
    main(["lenet5", "--input", "1,32,32", "--meta"])
    assert "c3" in capsys.readouterr().out


def test_summary_restores_training_mode():
    net = nn.Sequential(nn.Linear(3, 2), nn.Dropout())
    net.train()
    summarize(net, (3,))
    assert net.training
    assert not net[0]._forward_hooks
