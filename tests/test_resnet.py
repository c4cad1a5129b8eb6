"""ResNet family: the paper's architectures, options, torchvision equality and the CIFAR recipe configs."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision

import zoo
from hydra_helpers import make_cfg
from zoo.models.resnet import BasicBlock, Bottleneck, ResNet, ZeroPadShortcut

ROOT = Path(__file__).resolve().parents[1]
IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
# name -> (n, exact trainable parameters at 10 classes; Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M)
CIFAR = {
    "resnet20": (3, 269_722),
    "resnet32": (5, 464_154),
    "resnet44": (7, 658_586),
    "resnet56": (9, 853_018),
    "resnet110": (18, 1_727_962),
    "resnet1202": (200, 19_421_274),
}
CIFAR_PAPER_ERR = {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97,
                   "resnet110": 6.43, "resnet1202": 7.93}


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return zoo.create_model(name, **kwargs)


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def _stage_sizes(model: ResNet, x: torch.Tensor) -> list[tuple[int, int]]:
    """(channels, height) after the stem and after every stage."""
    sizes = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append((o.shape[1], o.shape[2])))
             for m in [model.stem, *model.stages]]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return sizes


# --------------------------------------------------------------------------- parameter counts, MACs


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_param_count_equals_torchvision(name):
    with torch.device("meta"):
        tv = torchvision.models.get_model(name)
    expected = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                "resnet101": 44_549_160, "resnet152": 60_192_808}[name]
    assert zoo.count_params(tv) == expected
    assert zoo.count_params(_meta(name)) == expected
    assert zoo.model_info(name).params == expected


@pytest.mark.parametrize("name,n_params", [(k, v[1]) for k, v in CIFAR.items()])
def test_cifar_param_count_exact(name, n_params):
    assert zoo.count_params(_meta(name, num_classes=10)) == n_params
    assert zoo.model_info(name).params == n_params
    assert zoo.model_info(name).paper_results == {"cifar10/top1_err": CIFAR_PAPER_ERR[name]}


@pytest.mark.parametrize("name,paper_gmacs", [("resnet18", 1.8), ("resnet34", 3.6), ("resnet50", 3.8),
                                              ("resnet101", 7.6), ("resnet152", 11.3)])
def test_paper_layout_macs_match_table1(name, paper_gmacs):
    """Table 1's FLOPs (multiply-adds) hold for the paper's stride placement; v1.5 costs more."""
    paper = _meta(name, stride_in_1x1=True)
    macs = zoo.count_macs(paper, (3, 224, 224), device="meta")
    assert abs(macs / 1e9 - paper_gmacs) < 0.1, macs
    default = zoo.model_info(name).macs
    if name in ("resnet18", "resnet34"):  # no bottlenecks: the option changes nothing
        assert default == macs
    else:
        assert default > macs and abs(default / 1e9 - paper_gmacs) > 0.1


# --------------------------------------------------------------------------- CIFAR architecture


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "resnet110"])
def test_cifar_layout(name):
    """6n+2 weighted layers; 16/32/64 filters at 32/16/8 px; option A has no shortcut parameters."""
    n = CIFAR[name][0]
    model = zoo.create_model(name, num_classes=10)
    convs = _convs(model)
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(fcs) == 6 * n + 2
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, ZeroPadShortcut) for m in model.modules()) == 2
    assert _stage_sizes(model, torch.randn(1, 3, 32, 32)) == [(16, 32), (16, 32), (32, 16), (64, 8)]
    assert model.fc.in_features == 64 and model.fc.out_features == 10


def test_zero_pad_shortcut_subsamples_and_pads():
    x = torch.randn(2, 16, 7, 7)
    y = ZeroPadShortcut(16, 32, stride=2)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0
    # the subsampled grid is the one a 3x3/2 conv with padding 1 produces
    conv = nn.Conv2d(16, 32, 3, stride=2, padding=1)
    assert conv(x).shape == y.shape


# --------------------------------------------------------------------------- options


def test_shortcut_options_a_b_c():
    projections = {}
    for option in "ABC":
        model = _meta("resnet34", shortcut=option)
        projections[option] = [name for name, m in model.named_modules()
                               if name.endswith("shortcut") and isinstance(m, nn.Sequential)]
        assert zoo.count_params(model) > 0
    assert projections["A"] == []
    assert len(projections["B"]) == 3  # conv3_1, conv4_1, conv5_1
    assert len(projections["C"]) == 16  # every block
    b = zoo.count_params(_meta("resnet34", shortcut="B"))
    a = zoo.count_params(_meta("resnet34", shortcut="A"))
    # B adds three 1x1 projections + BN: 64->128, 128->256, 256->512
    assert b - a == sum(i * o + 2 * o for i, o in [(64, 128), (128, 256), (256, 512)])
    # option A also works where a bottleneck widens without a stride (64 -> 256 in ResNet-50's conv2_1)
    model = ResNet("bottleneck", (2, 2), (8, 16), stem_width=8, shortcut="A", num_classes=5)
    assert isinstance(model.stages[0][0].shortcut, ZeroPadShortcut)
    assert isinstance(model.stages[0][1].shortcut, nn.Identity)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(ValueError, match="shortcut"):
        zoo.create_model("resnet18", shortcut="D")


def test_stride_placement_in_bottleneck():
    v15 = _meta("resnet50", num_classes=10)
    paper = _meta("resnet50", num_classes=10, stride_in_1x1=True)
    for model, (s1, s3) in [(v15, (1, 2)), (paper, (2, 1))]:
        first = model.stages[1][0]
        assert isinstance(first, Bottleneck)
        assert first.conv1.stride == (s1, s1) and first.conv2.stride == (s3, s3)
    assert zoo.count_params(v15) == zoo.count_params(paper)
    x = torch.empty(1, 3, 64, 64, device="meta")
    assert _stage_sizes(v15, x) == _stage_sizes(paper, x) == [
        (64, 16), (256, 16), (512, 8), (1024, 4), (2048, 2)]


def test_zero_init_residual_makes_blocks_identity():
    model = zoo.create_model("resnet18", zero_init_residual=True, num_classes=10).eval()
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert all(torch.count_nonzero(b.norm2.weight) == 0 for b in blocks)
    block = model.stages[0][1]  # identity shortcut
    x = torch.rand(2, 64, 8, 8)  # non-negative, as after a ReLU
    with torch.no_grad():
        assert torch.equal(block(x), x)
    default = ResNet("bottleneck", (1, 1), (8, 16), stem_width=8)
    assert all(torch.all(m.norm3.weight == 1) for m in default.modules() if isinstance(m, Bottleneck))
    zeroed = ResNet("bottleneck", (1, 1), (8, 16), stem_width=8, zero_init_residual=True)
    assert all(torch.count_nonzero(m.norm3.weight) == 0 for m in zeroed.modules() if isinstance(m, Bottleneck))


def test_group_norm_option():
    model = zoo.create_model("resnet18", norm="gn", num_classes=10, small_input=True)
    gns = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert gns and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(m.num_groups == 32 for m in gns)
    assert zoo.count_params(model) == zoo.count_params(zoo.create_model("resnet18", num_classes=10,
                                                                        small_input=True))
    # GroupNorm is per sample: a sample's logits do not depend on the rest of the batch, even in training
    cifar = zoo.create_model("resnet20", norm="gn").train()
    assert {m.num_groups for m in cifar.modules() if isinstance(m, nn.GroupNorm)} == {16, 32}
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(cifar(x)[:1], cifar(x[:1]), atol=1e-5, rtol=1e-5)
    bn = zoo.create_model("resnet20").train()
    with torch.no_grad():
        assert not torch.allclose(bn(x)[:1], bn(x[:1]), atol=1e-3)


def test_small_input_stem():
    small = zoo.create_model("resnet18", small_input=True, num_classes=10)
    assert _stage_sizes(small, torch.randn(1, 3, 32, 32)) == [(64, 32), (64, 32), (128, 16), (256, 8), (512, 4)]
    assert not any(isinstance(m, nn.MaxPool2d) for m in small.modules())
    assert small.stem.conv.kernel_size == (3, 3) and small.stem.conv.stride == (1, 1)
    big = _meta("resnet18", num_classes=10)
    assert _stage_sizes(big, torch.empty(1, 3, 32, 32, device="meta"))[-1] == (512, 1)
    assert zoo.count_params(big) - zoo.count_params(small) == 3 * 64 * (49 - 9)
    # one input channel (MNIST) works at 28 px
    mono = zoo.create_model("resnet18", small_input=True, in_chans=1, num_classes=10)
    assert mono(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert _meta("resnet50", stem="cifar").stem.conv.kernel_size == (3, 3)
    with pytest.raises(ValueError, match="small_input"):
        _meta("resnet18", small_input=True, stem="imagenet")


def test_features_and_head():
    big = _meta("resnet50", num_classes=7)
    assert big.forward_features(torch.empty(2, 3, 64, 64, device="meta")).shape == (2, 2048, 2, 2)
    assert big.num_features == 2048
    model = zoo.create_model("resnet20", num_classes=7).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 64, 8, 8) and model.num_features == 64
        assert model.forward_head(feats, pre_logits=True).shape == (2, 64)
        torch.testing.assert_close(model.forward_head(feats), model(x))


@pytest.mark.parametrize("name", sorted(CIFAR))
def test_cifar_networks_are_32px_only(name):
    assert _meta(name, small_input=True).feature_info[0]["reduction"] == 1
    with pytest.raises(ValueError, match=rf"'{name}'.*accepts only small_input=True.*got small_input=False"):
        _meta(name, small_input=False)


def test_dropout_before_fc_and_reset_classifier():
    model = zoo.create_model("resnet20", num_classes=7, dropout=0.25)
    assert isinstance(model.drop, nn.Dropout) and model.drop.p == 0.25
    assert isinstance(zoo.create_model("resnet20").drop, nn.Identity)  # the paper has none
    assert isinstance(_meta("resnet18", dropout=0.1).drop, nn.Dropout)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), pooled)
        model.reset_classifier(3)
        assert model.get_classifier() is model.fc and model(x).shape == (2, 3) and model.num_classes == 3


def test_init_is_the_shared_fan_out_helper(monkeypatch):
    """ResNet's init is zoo.layers.init.kaiming_fan_out_init, the fc left at PyTorch's default: same draws."""
    from zoo.layers.init import kaiming_fan_out_init

    torch.manual_seed(0)
    model = zoo.create_model("resnet20")
    monkeypatch.setattr(ResNet, "_init_weights", lambda self, zero_init_residual=False: None)
    torch.manual_seed(0)
    bare = zoo.create_model("resnet20")
    kaiming_fan_out_init(bare, linear_std=None)
    for (name, a), b in zip(model.state_dict().items(), bare.state_dict().values()):
        assert torch.equal(a, b), name


def test_init_is_kaiming_fan_out():
    model = zoo.create_model("resnet56")
    conv = model.stages[2][3].conv1  # 64 -> 64, 3x3: fan_out = 576
    std = conv.weight.std().item()
    assert abs(std - (2 / (64 * 9)) ** 0.5) < 0.005
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0)
               for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_resnet20_learns():
    """A few SGD steps on a fixed batch bring the loss down."""
    torch.manual_seed(0)
    model = zoo.create_model("resnet20", num_classes=4)
    x, y = torch.randn(16, 3, 16, 16), torch.randint(0, 4, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(12):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


# --------------------------------------------------------------------------- torchvision interop


def _calibrate_bn(tv: nn.Module, size: int) -> None:
    """Random affine BN parameters and running statistics gathered on random data (not 0/1)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batches
        tv.train()
        for _ in range(2):
            tv(torch.randn(2, 3, size, size))
    tv.eval()


@pytest.mark.parametrize("name,size", [("resnet18", 224), ("resnet50", 224),
                                       ("resnet34", 64), ("resnet101", 64), ("resnet152", 64)])
def test_from_torchvision_gives_same_logits(name, size):
    assert zoo.torchvision_pairs()[name] == name
    torch.manual_seed(0)
    tv = torchvision.models.get_model(name, num_classes=1000)
    _calibrate_bn(tv, min(size, 64))
    bn = tv.bn1
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    model = zoo.from_torchvision(name, tv.state_dict()).eval()
    assert model.fc.out_features == 1000
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected, got = tv(x), model(x)
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_from_torchvision_rejects_other_architecture():
    sd = torchvision.models.resnet34().state_dict()
    with pytest.raises(RuntimeError, match="do not fit"):
        zoo.from_torchvision("resnet18", sd)
    with pytest.raises(KeyError, match="no torchvision counterpart"):
        zoo.from_torchvision("resnet20", sd)


def test_from_torchvision_reads_class_count():
    tv = torchvision.models.resnet18(num_classes=10)
    model = zoo.from_torchvision("resnet18", tv.state_dict())
    assert model.fc.out_features == 10
    assert torch.equal(model.stages[3][1].norm2.running_var, tv.layer4[1].bn2.running_var)
    assert torch.equal(model.stages[1][0].shortcut.conv.weight, tv.layer2[0].downsample[0].weight)


# --------------------------------------------------------------------------- the paper's CIFAR-10 recipe


def _lr_trajectory(cfg, steps_per_epoch: int, epochs: int) -> tuple[list[float], list[float]]:
    """Learning rates under the configured warmup and schedule.

    Returns:
        The lr of every optimizer step of the first two epochs (the warmup is shorter), and the
        lr at the start of every epoch.
    """
    import hydra
    import pytorch_lightning as pl

    from zoo.training import ClassificationModule

    module = ClassificationModule(model=nn.Linear(2, 2), optimizer=hydra.utils.instantiate(cfg.optim),
                                  scheduler=hydra.utils.instantiate(cfg.sched), num_classes=10)
    module.trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                                enable_checkpointing=False, enable_progress_bar=False)
    out = module.configure_optimizers()
    optimizers, entries = out if isinstance(out, tuple) else ([out["optimizer"]], [out["lr_scheduler"]])
    optimizer = optimizers[0]
    step_lrs, epoch_lrs = [], []
    for epoch in range(epochs):
        epoch_lrs.append(optimizer.param_groups[0]["lr"])
        for _ in range(steps_per_epoch if epoch < 2 else 0):  # step schedulers only act in the warmup
            step_lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            for e in entries:
                if e["interval"] == "step":
                    e["scheduler"].step()
        for e in entries:
            if e["interval"] == "epoch":
                e["scheduler"].step()
    return step_lrs, epoch_lrs


def test_cifar10_recipes_follow_the_paper(tmp_path, cifar10_root):
    """Every depth: the paper's optimiser, batch, augmentation, and 32k/48k/64k iterations as epochs."""
    import hydra

    steps_per_epoch = math.ceil(45_000 / 128)  # 352 on the 45k/5k split
    for name in CIFAR:
        cfg = make_cfg(tmp_path, [f"experiment={name}_cifar10", f"data.root={cifar10_root}"])
        assert cfg.model.name == name and cfg.data._target_.endswith("CIFAR10DataModule")
        assert (cfg.data.batch_size, cfg.data.augment, cfg.data.val_size) == (128, "pad_crop_flip", 5000)
        assert cfg.optim._target_ == "torch.optim.SGD"
        assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (0.1, 0.9, 1e-4)
        milestones = list(cfg.sched.scheduler.milestones)
        # each lr drop and the end lie within one epoch of the paper's iteration counts
        for epochs, iters in zip([*milestones, cfg.trainer.max_epochs], [32_000, 48_000, 64_000]):
            assert abs(epochs * steps_per_epoch - iters) < steps_per_epoch, (name, epochs, iters)
        with torch.device("meta"):
            model = hydra.utils.instantiate(cfg.model)
        assert zoo.count_params(model) == CIFAR[name][1]
        assert cfg.sched.warmup_steps == (400 if name in ("resnet110", "resnet1202") else 0), name


@pytest.mark.parametrize("name", ["resnet20", "resnet110"])
def test_cifar10_recipe_lr_schedule(tmp_path, name):
    """lr 0.1 (ResNet-110: 0.01 for 400 iterations first), /10 after epochs 91 and 136."""
    cfg = make_cfg(tmp_path, [f"experiment={name}_cifar10"])
    step_lrs, epoch_lrs = _lr_trajectory(cfg, steps_per_epoch=352, epochs=140)
    first = 0.01 if name == "resnet110" else 0.1
    assert step_lrs[0] == pytest.approx(first) and step_lrs[399] == pytest.approx(first)
    assert step_lrs[400] == pytest.approx(0.1) and step_lrs[-1] == pytest.approx(0.1)
    assert epoch_lrs[90] == pytest.approx(0.1) and epoch_lrs[91] == pytest.approx(0.01)
    assert epoch_lrs[135] == pytest.approx(0.01) and epoch_lrs[136] == pytest.approx(0.001)


@pytest.mark.parametrize("name", ["resnet20", "resnet110"])
def test_cifar10_recipe_fast_dev_run(tmp_path, cifar10_root, name):
    """The recipe runs end to end (one train/val/test batch) on CIFAR-10 files in the real pickle format."""
    from zoo.training import train

    cfg = make_cfg(tmp_path, [f"experiment={name}_cifar10", "debug=fdr", f"data.root={cifar10_root}",
                              "data.val_size=16", "data.verify_checksums=false",
                              "data.batch_size=8", "data.eval_batch_size=8"])
    res = train(cfg)
    assert res["model"] == name and res["params"] == CIFAR[name][1]
    assert res["global_steps"] == 1
    assert 0.0 <= res["test/acc"] <= 1.0 and math.isfinite(res["test/loss"])
    assert (tmp_path / "results.json").is_file()
