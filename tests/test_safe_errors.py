"""Unsafe or wrong inputs fail early with messages that name the argument, the bad value and a fix.

* torchvision weights: a cached file is used only if its sha256 matches the prefix in its name, and
  is read with ``weights_only=True``, so a planted pickle never runs (nothing is downloaded);
* ``create_model`` / ``list_models`` argument checks;
* a ViT refuses inputs (and ``image_size``) that are not a multiple of its patch;
* ``python -m zoo.summary`` argument errors;
* damaged MNIST IDX files raise ``DatasetNotFoundError`` naming the file.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

import zoo
import zoo.interop as interop
from zoo._registry import ModelArgumentError, ModelArgumentTypeError
from zoo.data.base import DatasetNotFoundError
from zoo.data.torchvision_sets import MNISTDataModule
from zoo.interop import WeightsFileError, load_checkpoint
from zoo.models.vit import PatchSizeError, VisionTransformer
from zoo.summary import input_size_arg, main

from conftest import FIXTURE_VAL

# --------------------------------------------------------------------------------------------------
# torchvision weights from torch's hub cache


class Evil:
    """Unpickling this object opens (creates) ``marker``: a stand-in for code planted in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache under ``$TORCH_HOME`` in tmp; any download attempt fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # get_dir() follows $TORCH_HOME

    def no_download(url, dst, *args, **kwargs):
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    assert Path(torch.hub.get_dir()) / "checkpoints" == folder
    return folder


def _url(name: str) -> str:
    return torchvision.models.get_model_weights(zoo.torchvision_pairs()[name]).DEFAULT.url


@pytest.mark.parametrize("filename, prefix", [
    ("resnet18-f37072fd.pth", "f37072fd"),
    ("shufflenetv2_x0.5-f707e7126e.pth", "f707e7126e"),
    ("weights.pth", None),  # no prefix
    ("weights-0123456.pth", None),  # too short to verify anything
])
def test_hash_prefix_is_read_from_the_file_name(filename, prefix):
    assert interop._hash_prefix(filename) == prefix


def test_planted_file_with_the_wrong_hash_is_refused_before_unpickling(checkpoints, tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    planted = checkpoints / "resnet18-f37072fd.pth"
    assert _url("resnet18").endswith("/" + planted.name)
    torch.save({"x": Evil(marker)}, planted)
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    with torch.device("meta"), pytest.raises(WeightsFileError) as err:
        zoo.create_model("resnet18", weights="torchvision")
    msg = str(err.value)
    assert str(planted) in msg and "'f37072fd'" in msg and _sha256(planted) in msg
    assert "Delete it" in msg and f"rm {planted}" in msg
    assert loads == [] and not marker.exists()


@pytest.mark.parametrize("how", ["name", "argument", "create_model"])
def test_hash_matching_malicious_file_is_refused_by_weights_only_loading(how, checkpoints, tmp_path, monkeypatch):
    """Even a file that passes the hash check is read weights-only: the planted object never runs."""
    marker = tmp_path / "marker"
    payload = tmp_path / "payload.pth"
    torch.save({"x": Evil(marker)}, payload)
    digest = _sha256(payload)
    if how == "name":  # a file whose name carries its true hash prefix
        planted = checkpoints / f"evil-{digest[:8]}.pth"
        shutil.copy(payload, planted)
        call = lambda: load_checkpoint(f"https://example.invalid/models/{planted.name}")  # noqa: E731
    elif how == "argument":
        planted = checkpoints / "resnet18-f37072fd.pth"
        shutil.copy(payload, planted)
        call = lambda: load_checkpoint(_url("resnet18"), hash_prefix=digest[:8])  # noqa: E731
    else:
        planted = checkpoints / "resnet18-f37072fd.pth"
        shutil.copy(payload, planted)
        monkeypatch.setattr(interop, "_hash_prefix", lambda filename: digest[:8])

        def call():
            with torch.device("meta"):
                zoo.create_model("resnet18", weights="torchvision")
    with pytest.raises(WeightsFileError) as err:
        call()
    msg = str(err.value)
    assert str(planted) in msg and "weights_only=True" in msg and "holds objects other than tensors" in msg
    assert "io.open" in msg and f"rm {planted}" in msg
    assert not marker.exists()


@pytest.mark.parametrize("prefix", ["", "f3707", "F37072FD", "not-hex!"])
def test_load_checkpoint_refuses_a_prefix_that_verifies_nothing(prefix, checkpoints):
    with pytest.raises(ValueError) as err:
        load_checkpoint(_url("resnet18"), hash_prefix=prefix)
    msg = str(err.value)
    assert "hash_prefix" in msg and repr(prefix) in msg and 'hash_prefix="f37072fd"' in msg


def test_hash_matching_garbage_file_is_refused_clearly(checkpoints):
    planted = checkpoints / "garbage.pth"
    planted.write_bytes(b"not a torch checkpoint")
    digest = _sha256(planted)
    named = planted.rename(checkpoints / f"garbage-{digest[:8]}.pth")
    with pytest.raises(WeightsFileError, match="could not be read as a torch checkpoint") as err:
        load_checkpoint(f"https://example.invalid/{named.name}")
    assert str(named) in str(err.value)


def test_good_planted_file_loads_offline(checkpoints, monkeypatch):
    """A real state dict in the cache, its hash prefix matching, loads into the zoo model without a download."""
    name = "shufflenet_v2_x0_5"
    torch.manual_seed(0)
    tv = torchvision.models.shufflenet_v2_x0_5().eval()
    with torch.no_grad():  # non-trivial BN statistics, so a missed tensor would show
        for m in tv.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    planted = checkpoints / _url(name).rsplit("/", 1)[-1]
    torch.save(tv.state_dict(), planted)
    monkeypatch.setattr(interop, "_hash_prefix", lambda filename: _sha256(planted)[:8])
    ours = zoo.create_model(name, weights="torchvision").eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), atol=1e-5, rtol=0)


def test_missing_file_is_downloaded_with_its_hash_prefix(checkpoints, monkeypatch):
    """An absent file goes through torch.hub.download_url_to_file with the prefix from its name."""
    calls = []

    def download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix, progress))
        torch.save({"w": torch.ones(2)}, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    sd = load_checkpoint("https://example.invalid/models/tiny-0123abcd.pth")
    assert calls == [("https://example.invalid/models/tiny-0123abcd.pth",
                      str(checkpoints / "tiny-0123abcd.pth"), "0123abcd", False)]
    torch.testing.assert_close(sd["w"], torch.ones(2))


# --------------------------------------------------------------------------------------------------
# create_model / list_models arguments


@pytest.mark.parametrize("model, key, value, error", [
    ("lenet5", "num_classes", True, ModelArgumentTypeError),
    ("lenet5", "num_classes", 2.5, ModelArgumentTypeError),
    ("lenet5", "num_classes", "x", ModelArgumentTypeError),
    ("lenet5", "num_classes", 0, ModelArgumentError),
    ("lenet5", "num_classes", -3, ModelArgumentError),
    ("resnet18", "in_chans", False, ModelArgumentTypeError),
    ("resnet18", "in_chans", 2.5, ModelArgumentTypeError),
    ("resnet18", "in_chans", "x", ModelArgumentTypeError),
    ("resnet18", "in_chans", 0, ModelArgumentError),
    ("resnet18", "in_chans", -3, ModelArgumentError),
    ("resnet18", "small_input", "no", ModelArgumentTypeError),
    ("resnet18", "small_input", 1, ModelArgumentTypeError),
    ("vgg11", "dropout", 1.0, ModelArgumentError),
    ("vgg11", "dropout", -0.1, ModelArgumentError),
    ("vgg11", "dropout", "0.5", ModelArgumentTypeError),
    ("vit_tiny_patch4", "attn_dropout", 1.5, ModelArgumentError),
    ("googlenet", "aux_dropout", True, ModelArgumentTypeError),
    ("resnet18", "drop_path_rate", 2, ModelArgumentError),
])
def test_create_model_checks_its_keywords(model, key, value, error):
    with pytest.raises(error) as err:
        zoo.create_model(model, **{key: value})
    msg = str(err.value)
    assert key in msg and repr(value) in msg and repr(model) in msg
    assert f"zoo.create_model({model!r}, {key}=" in msg  # a corrected example
    assert isinstance(err.value, TypeError if error is ModelArgumentTypeError else ValueError)


@pytest.mark.parametrize("model, kwargs", [
    ("lenet5", {"num_classes": np.int64(5), "in_chans": 3}),
    ("resnet18", {"small_input": True, "num_classes": 10}),
    ("vgg11", {"dropout": 0}),
    ("googlenet", {"aux_dropout": 0.7}),
])
def test_valid_keywords_still_build(model, kwargs):
    with torch.device("meta"):
        m = zoo.create_model(model, **kwargs)
    assert m.training


@pytest.mark.parametrize("model, family_keyword", [
    ("lenet5", "conv_impl"),
    ("resnet20", "stem"),  # **kwargs reach ResNet: its keywords are listed too
    ("vit_tiny_patch4", "image_size"),
])
def test_a_keyword_a_model_does_not_take_names_the_model(model, family_keyword):
    with pytest.raises(ModelArgumentTypeError) as err:
        zoo.create_model(model, widen=2)
    msg = str(err.value)
    assert repr(model) in msg and "widen=2" in msg
    assert "Accepted keywords:" in msg and "num_classes" in msg and family_keyword in msg
    assert f"zoo.create_model({model!r}, num_classes=" in msg


def test_create_model_name_must_be_a_str():
    with pytest.raises(TypeError) as err:
        zoo.create_model(5)
    msg = str(err.value)
    assert "name" in msg and "5" in msg and 'zoo.create_model("resnet18")' in msg


@pytest.mark.parametrize("pattern", [5, ["resnet*"], b"resnet*"])
def test_list_models_pattern_must_be_a_str(pattern):
    with pytest.raises(TypeError) as err:
        zoo.list_models(pattern)
    msg = str(err.value)
    assert "pattern" in msg and repr(pattern) in msg and 'zoo.list_models("resnet*")' in msg


# --------------------------------------------------------------------------------------------------
# ViT: image sides must be multiples of the patch


@pytest.mark.parametrize("size, shown, nearest", [
    ((30, 30), "30x30", "28 or 32"),
    ((28, 30), "28x30", "width 30 -> 28 or 32"),
    ((33, 32), "33x32", "height 33 -> 32 or 36"),
    ((6, 32), "6x32", "height 6 -> 4 or 8"),
])
def test_vit_refuses_inputs_not_divisible_by_the_patch(size, shown, nearest):
    m = zoo.create_model("vit_tiny_patch4")
    with pytest.raises(PatchSizeError) as err:
        m(torch.randn(1, 3, *size))
    msg = str(err.value)
    assert shown in msg and "patch size 4" in msg and nearest in msg
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("size", [28, 32, 40])
def test_vit_accepts_multiples_of_the_patch(size):
    m = zoo.create_model("vit_tiny_patch4", num_classes=3).eval()
    with torch.no_grad():
        assert m(torch.randn(2, 3, size, size)).shape == (2, 3)


@pytest.mark.parametrize("model, image_size, nearest", [
    ("vit_tiny_patch4", 30, "image_size=28 or image_size=32"),
    ("vit_b_16", 200, "image_size=192 or image_size=208"),
    ("vit_b_16", 10, "image_size=16"),
    ("vit_tiny_patch4", 0, "image_size=32"),
])
def test_vit_refuses_an_image_size_not_divisible_by_the_patch(model, image_size, nearest):
    with torch.device("meta"), pytest.raises(PatchSizeError) as err:
        zoo.create_model(model, image_size=image_size)
    msg = str(err.value)
    assert "image_size" in msg and str(image_size) in msg and "patch_size" in msg and nearest in msg


def test_vit_set_image_size_refuses_a_size_not_divisible_by_the_patch():
    m = VisionTransformer(image_size=32, patch_size=4, dim=16, depth=1, num_heads=2, mlp_dim=32, num_classes=2)
    with pytest.raises(PatchSizeError, match=r"image_size=30 .* e\.g\. image_size=28 or image_size=32"):
        m.set_image_size(30)
    assert m.grid == (8, 8)  # unchanged


# --------------------------------------------------------------------------------------------------
# python -m zoo.summary


@pytest.mark.parametrize("argv, expected", [
    (["lenet5", "--input", "abc"], ["--input", "'abc'", "C,H,W", "--input 1,32,32"]),
    (["lenet5", "--input", "1,0,32"], ["--input", "'1,0,32'", "C,H,W", "--input 1,32,32"]),
    (["lenet5", "--input", "1,32,32,3"], ["--input", "'1,32,32,3'", "C,H,W", "--input 1,32,32"]),
    (["lenet5", "--input", "1,32"], ["--input 1,32", "C,H,W", "--input 1,32,32"]),
    (["lenet5", "--depth", "x"], ["--depth", "'x'", "--depth 2"]),
    (["lenet5", "--depth", "-1"], ["--depth", "'-1'", "--depth 2"]),
    (["lenet5", "--num-classes", "0"], ["--num-classes", "'0'", "--num-classes 10"]),
    (["lenet5", "--num-classes", "ten"], ["--num-classes", "'ten'", "--num-classes 10"]),
    (["lenett5"], ["unknown model 'lenett5'", "Did you mean: lenet5"]),
    (["lenet5", "--num-classes", "-3"], ["--num-classes", "'-3'", "--num-classes 10"]),
    (["lenet5", "--input", "1,4,4"], ["input too small", "features.c1"]),
    (["vit_tiny_patch4", "--input", "3,30,30"], ["30x30", "patch size 4", "28 or 32"]),
])
def test_summary_cli_rejects_bad_arguments_clearly(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m zoo.summary" in err and "Traceback" not in err
    for text in expected:
        assert text in err, (text, err)


def test_summary_input_type_parses_and_refuses():
    assert input_size_arg("1,32,32") == (1, 32, 32)
    assert input_size_arg(" 3, 224, 224 ") == (3, 224, 224)
    assert input_size_arg("64,100") == (64, 100)  # C,L of sequence models
    with pytest.raises(argparse.ArgumentTypeError, match=r"C,H,W.*'1,-2,3'.*--input 1,32,32"):
        input_size_arg("1,-2,3")


# --------------------------------------------------------------------------------------------------
# damaged MNIST files


def _truncate(n: int) -> Callable[[bytes], bytes]:
    """Keeps the first ``n`` bytes (drops the last ``-n`` for negative ``n``)."""
    return lambda data: data[:n]


def _set_magic(magic: int) -> Callable[[bytes], bytes]:
    """Overwrites the 4-byte magic number."""
    return lambda data: struct.pack(">I", magic) + data[4:]


def _relabel(position: int, label: int) -> Callable[[bytes], bytes]:
    """Sets the label at ``position`` of an IDX1 file."""
    return lambda data: data[:8 + position] + bytes([label]) + data[9 + position:]


def _drop_labels(k: int) -> Callable[[bytes], bytes]:
    """A consistent label file with ``k`` labels fewer than there are images."""
    def fn(data: bytes) -> bytes:
        n = struct.unpack(">I", data[4:8])[0] - k
        return struct.pack(">II", 2049, n) + data[8:8 + n]
    return fn


@pytest.mark.parametrize("stage, file, damage, reason", [
    ("fit", "train-labels-idx1-ubyte", _truncate(-5), "truncated"),
    ("fit", "train-images-idx3-ubyte", _truncate(100), "truncated"),
    ("fit", "train-images-idx3-ubyte", _truncate(10), "shorter than its 16-byte IDX header"),
    ("fit", "train-labels-idx1-ubyte", _truncate(0), "too short for the 4-byte magic number"),
    ("fit", "train-images-idx3-ubyte", lambda d: d + b"\0" * 7, "7 bytes too many"),
    ("fit", "train-images-idx3-ubyte", _set_magic(2049), "magic number 2049 (0x00000801)"),
    ("fit", "train-labels-idx1-ubyte", _set_magic(0x1F8B0800), "gzip-compressed"),
    ("fit", "train-labels-idx1-ubyte", _drop_labels(4), "holds 60 labels but train-images-idx3-ubyte holds 64"),
    ("fit", "train-labels-idx1-ubyte", _relabel(3, 12), "label 12 at position 3"),
    ("test", "t10k-labels-idx1-ubyte", _relabel(0, 255), "label 255 at position 0"),
    ("test", "t10k-images-idx3-ubyte", _truncate(-1), "truncated"),
])
def test_damaged_mnist_files_name_the_file(stage, file, damage, reason, mnist_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(mnist_root, root)
    path = root / "MNIST" / "raw" / file
    path.write_bytes(damage(path.read_bytes()))
    dm = MNISTDataModule(root=root, val_size=FIXTURE_VAL)
    with pytest.raises(DatasetNotFoundError) as err:
        dm.setup(stage)
    msg = str(err.value)
    assert "could not be loaded" in msg and f"damaged file: {file}" in msg and reason in msg, msg
    assert str(root / "MNIST" / "raw") in msg and "Replace the files with an intact copy" in msg
    assert err.value.missing == []


def test_intact_mnist_copy_still_loads(mnist_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(mnist_root, root)
    dm = MNISTDataModule(root=root, val_size=FIXTURE_VAL)
    dm.setup()
    assert len(dm.train_set) + len(dm.val_set) == 64 and len(dm.test_set) == 32
