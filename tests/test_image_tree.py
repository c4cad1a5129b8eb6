"""Folder trees decoded once into a uint8 cache: ``zoo.data.cache``, ``data=cifar10_jpeg`` and
``data=imagefolder data.in_memory=true``.

The CIFAR-10 trees are real images copied from ``../shared/data/cifar10-jpeg`` when it is on this
machine (``cifar10_jpeg_root``), else generated JPEG files of the same layout.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets as tvd
from torchvision.io import ImageReadMode, decode_image, encode_png

from hydra_helpers import make_cfg
from conftest import CIFAR10_CLASSES, find_real_cifar10_jpeg, write_imagefolder, write_jpeg_tree
from zoo.data import CIFAR10JPEGDataModule, DatasetNotFoundError, ImageFolderDataModule, InMemoryImageFolderDataModule
from zoo.data.cache import ImageTreeError, cache_dir, load_tree, scan_tree
from zoo.data.stats import DATASET_STATS, channel_stats


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def _decoded_one_by_one(tree: Path) -> tuple[torch.Tensor, list[int]]:
    """The tree as torchvision's ImageFolder orders it, each file decoded on its own."""
    folder = tvd.ImageFolder(str(tree))
    images = [decode_image(str(path), mode=ImageReadMode.RGB) for path, _ in folder.samples]
    return torch.stack(images), [t for _, t in folder.samples]


# ---------------------------------------------------------------------------- the cache


def test_tree_decodes_in_imagefolder_order_bitwise(cifar10_jpeg_root, zoo_cache):
    tree = cifar10_jpeg_root / "cifar10-jpeg" / "test"
    images, targets, classes = load_tree(tree, name="t-order", cache=False)
    expected, labels = _decoded_one_by_one(tree)
    assert classes == list(CIFAR10_CLASSES)
    assert images.dtype == torch.uint8 and images.shape == (200, 3, 32, 32)
    assert torch.equal(images, expected) and targets.tolist() == labels
    assert not list(zoo_cache.glob("t-order-*")), "cache=False writes nothing"


def test_cache_is_written_once_then_read(cifar10_jpeg_root, zoo_cache, caplog):
    tree = cifar10_jpeg_root / "cifar10-jpeg" / "test"
    with caplog.at_level(logging.INFO, logger="zoo.data.cache"):
        first = load_tree(tree, name="t-once")
        written = list(zoo_cache.glob("t-once-*.safetensors"))
        assert len(written) == 1 and "decoded" in caplog.text
        caplog.clear()
        second = load_tree(tree, name="t-once")
    assert "loaded from the cache" in caplog.text and "decoded" not in caplog.text
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1]) and first[2] == second[2]
    assert not list(zoo_cache.glob(".*.tmp")), "the atomic write leaves no temporary file"
    assert cache_dir() == zoo_cache


def test_changed_tree_is_decoded_again_and_the_old_cache_removed(tmp_path, zoo_cache, caplog):
    tree = write_jpeg_tree(tmp_path / "tree", n=4)
    a, _, _ = load_tree(tree, name="t-change")
    old = list(zoo_cache.glob("t-change-*.safetensors"))
    # a file replaced by another image of another size in bytes, and one file added
    victim = tree / "bird" / "0001.jpg"
    shutil.copyfile(tree / "airplane" / "0000.jpg", victim)
    shutil.copyfile(tree / "airplane" / "0000.jpg", tree / "bird" / "0009.jpg")
    with caplog.at_level(logging.INFO, logger="zoo.data.cache"):
        b, targets, _ = load_tree(tree, name="t-change")
    assert "decoded" in caplog.text and "superseded" in caplog.text
    new = list(zoo_cache.glob("t-change-*.safetensors"))
    assert len(new) == 1 and new != old
    assert len(b) == len(a) + 1 and targets.tolist().count(2) == 5
    assert torch.equal(b[8 + 1], decode_image(str(victim), mode=ImageReadMode.RGB))


@pytest.mark.parametrize("damage", ["truncate", "pixels", "garbage"])
def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, zoo_cache, caplog, damage):
    tree = write_jpeg_tree(tmp_path / "tree", n=3)
    good, _, _ = load_tree(tree, name=f"t-{damage}")
    (path,) = zoo_cache.glob(f"t-{damage}-*.safetensors")
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "pixels":  # one pixel changed inside the tensor data, the header intact
        data[-200] ^= 0xFF
    else:
        data = bytearray(b"not a cache file" * 10)
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.INFO, logger="zoo.data.cache"):
        again, _, _ = load_tree(tree, name=f"t-{damage}")
    assert "is not usable" in caplog.text and "decoding the images again" in caplog.text
    assert torch.equal(again, good)
    (rebuilt,) = zoo_cache.glob(f"t-{damage}-*.safetensors")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="zoo.data.cache"):
        load_tree(tree, name=f"t-{damage}")
    assert "loaded from the cache" in caplog.text


def test_unwritable_cache_folder_still_loads(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("ZOO_CACHE", str(blocker / "cache"))
    tree = write_jpeg_tree(tmp_path / "tree", n=2)
    with caplog.at_level(logging.WARNING, logger="zoo.data.cache"):
        images, targets, _ = load_tree(tree, name="t-ro")
    assert images.shape == (6, 3, 32, 32) and "could not write the cache" in caplog.text and "$ZOO_CACHE" in caplog.text


def test_mixed_sizes_need_image_size(tmp_path):
    tree = tmp_path / "mixed"
    write_imagefolder(tree)  # train/ and val/ with 40-60 px PNG and JPEG images
    with pytest.raises(ImageTreeError) as err:
        load_tree(tree / "train", name="t-mixed")
    msg = str(err.value)
    assert "differ in size" in msg and "data.image_size=" in msg and (".png" in msg or ".jpg" in msg)
    images, targets, classes = load_tree(tree / "train", image_size=24, name="t-mixed")
    assert images.shape == (24, 3, 24, 24) and classes == ["cat", "dog", "fish"]
    assert targets.tolist() == [0] * 8 + [1] * 8 + [2] * 8


def test_undecodable_image_is_named(tmp_path):
    tree = write_jpeg_tree(tmp_path / "tree", n=2)
    bad = tree / "bird" / "0001.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageTreeError, match="0001.jpg: cannot be decoded"):
        load_tree(tree, name="t-bad")


def test_empty_tree_is_refused(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ImageTreeError, match="no images"):
        scan_tree(tmp_path / "empty")
    with pytest.raises(ImageTreeError, match="no class folders"):
        scan_tree(tmp_path / "empty" / "cls")


def test_grey_png_tree(tmp_path):
    tree = tmp_path / "grey"
    for c in ("a", "b"):
        (tree / c).mkdir(parents=True)
        for i in range(3):
            img = torch.full((1, 16, 16), 40 * i + (100 if c == "b" else 0), dtype=torch.uint8)
            (tree / c / f"{i}.png").write_bytes(encode_png(img).numpy().tobytes())
    images, targets, _ = load_tree(tree, channels=1, name="t-grey")
    assert images.shape == (6, 1, 16, 16) and int(images[5].max()) == 180 and targets.tolist() == [0, 0, 0, 1, 1, 1]


# ---------------------------------------------------------------------------- data=cifar10_jpeg


def test_cifar10_jpeg_datamodule(cifar10_jpeg_root):
    dm = CIFAR10JPEGDataModule(root=cifar10_jpeg_root, val_size=100, batch_size=50, eval_batch_size=64)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert (dm.num_classes, dm.in_chans, dm.image_size, dm.small_input) == (10, 3, 32, True)
    assert dm.classes == list(CIFAR10_CLASSES)
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (900, 100, 200)
    assert (dm.mean, dm.std) == DATASET_STATS["cifar10_jpeg"]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (50, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    # normalised with the dataset's statistics: undone, the pixels are back in [0, 1] (on the real images, also
    # about zero mean and unit spread; the generated stand-ins are brighter than CIFAR-10)
    mean, std = torch.tensor(dm.mean).view(1, 3, 1, 1), torch.tensor(dm.std).view(1, 3, 1, 1)
    pixels = x * std + mean
    assert float(pixels.min()) > -1e-4 and float(pixels.max()) < 1 + 1e-4 and float(pixels.std()) > 0.05
    if find_real_cifar10_jpeg() is not None:
        assert abs(float(x.mean())) < 0.5 and 0.5 < float(x.std()) < 1.5
    # the same split as split_indices(1000, 100, split_seed) on the ImageFolder order
    from zoo.data import split_indices

    train_idx, val_idx = split_indices(1000, 100, 0)
    assert np.array_equal(dm.split_positions["val"], val_idx)


def test_cifar10_jpeg_missing_tree_names_the_fix(tmp_path):
    dm = CIFAR10JPEGDataModule(root=tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError) as err:
        dm.prepare_data()
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "cifar10-jpeg") in msg and "data.root=" in msg and "train/" in msg


def test_cifar10_jpeg_fixed_keys_are_refused():
    with pytest.raises(ValueError, match="data.mean is fixed for cifar10_jpeg"):
        CIFAR10JPEGDataModule(root="x", mean=(0.5, 0.5, 0.5))


def test_real_cifar10_jpeg_counts_and_statistics(real_cifar10_jpeg_root):
    """The whole copy: 50,000 + 10,000 images, 5,000 / 1,000 per class, and the statistics the config states."""
    tree = real_cifar10_jpeg_root / "cifar10-jpeg"
    train, train_y, classes = load_tree(tree / "train", name="cifar10-jpeg-train")
    test, test_y, _ = load_tree(tree / "test", name="cifar10-jpeg-test")
    assert classes == list(CIFAR10_CLASSES)
    assert train.shape == (50_000, 3, 32, 32) and test.shape == (10_000, 3, 32, 32)
    assert torch.bincount(train_y).tolist() == [5000] * 10 and torch.bincount(test_y).tolist() == [1000] * 10
    mean, std = channel_stats(train)
    expected_mean, expected_std = DATASET_STATS["cifar10_jpeg"]
    assert np.allclose(mean, expected_mean, atol=1e-6) and np.allclose(std, expected_std, atol=1e-6)


# ---------------------------------------------------------------------------- data=imagefolder in_memory


def test_imagefolder_in_memory_builds_the_cached_module(tmp_path):
    tree = tmp_path / "tree"
    write_imagefolder(tree, n_train=20, n_test=5)
    cfg = make_cfg(tmp_path, ["data=imagefolder", f"data.root={tree}", "data.in_memory=true", "data.image_size=32",
                              "data.val_size=6", "data.augment=pad_crop_flip", "data.batch_size=8"])
    import hydra

    dm = hydra.utils.instantiate(cfg.data)
    assert isinstance(dm, InMemoryImageFolderDataModule)
    dm.setup("fit")
    dm.setup("test")
    assert dm.classes == ["cat", "dog", "fish"] and dm.num_classes == 3 and dm.image_size == 32
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (54, 6, 15)
    # statistics computed from the training images and used for the normalised evaluation sets
    assert len(dm.mean) == 3 and all(0 < m < 1 for m in dm.mean) and all(0 < s < 1 for s in dm.std)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
    assert isinstance(ImageFolderDataModule(root=tree), ImageFolderDataModule), "streaming stays the default"


def test_imagefolder_in_memory_mixed_sizes_fail_clearly(tmp_path):
    tree = tmp_path / "tree"
    write_imagefolder(tree)
    dm = ImageFolderDataModule(root=tree, in_memory=True, image_size=None, val_size=3)
    with pytest.raises(ImageTreeError) as err:
        dm.setup("fit")
    assert "differ in size" in str(err.value) and "data.image_size=" in str(err.value)


def test_imagefolder_in_memory_native_size_and_val_dir(tmp_path):
    tree = tmp_path / "tree"
    for split, n in (("train", 6), ("val", 2), ("held", 3)):
        write_jpeg_tree(tree / split, ("a", "b"), n, size=20, seed=len(split))
    dm = ImageFolderDataModule(root=tree, in_memory=True, image_size=None, val_dir="held", augment="flip",
                               batch_size=4)
    dm.setup("fit")
    assert dm.image_size == 20 and dm.small_input and dm.input_size == (3, 20, 20)
    assert (len(dm.train_set), len(dm.val_set)) == (12, 6)
    with pytest.raises(ValueError, match="data.resize_size applies to images streamed"):
        ImageFolderDataModule(root=tree, in_memory=True, resize_size=40)


def test_cifar10_jpeg_trains_through_train_py(cifar10_jpeg_root, tmp_path):
    """The preset composes, and a short run on the small tree learns: its training loss falls."""
    import csv

    from zoo.training import train

    cfg = make_cfg(tmp_path, ["experiment=resnet20_cifar10_jpeg", f"data.root={cifar10_jpeg_root}", "data.val_size=100",
                              "trainer.max_epochs=3", "sched.scheduler.milestones=[2,3]", "data.batch_size=64"])
    assert cfg.trainer.precision == "bf16-mixed" and cfg.channels_last is True
    res = train(cfg)
    assert res["data"] == "cifar10_jpeg" and 0.0 <= res["test/acc"] <= 1.0 and res["epochs"] == 3
    with open(tmp_path / "csv" / "metrics.csv") as f:
        losses = [float(r["train/loss_epoch"]) for r in csv.DictReader(f) if r.get("train/loss_epoch")]
    assert len(losses) == 3 and losses[-1] < losses[0], losses


def test_cache_command_reports_decode_and_cached_load(tmp_path, zoo_cache, capsys):
    from zoo.data.__main__ import main

    tree = write_jpeg_tree(tmp_path / "mytree" / "train", n=3)
    assert main([str(tree), "--rebuild", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "9 images (3, 32, 32), 3 classes; decode + cache write" in out and "cached load" in out
    assert len(list(zoo_cache.glob("mytree-train-*.safetensors"))) == 1
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nowhere")])


@pytest.mark.parametrize("preset", sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "configs" / "experiment")
                                          .glob("*_cifar10.yaml")))
def test_cifar10_presets_run_on_the_jpeg_copy(preset, cifar10_jpeg_root, tmp_path):
    """Every CIFAR-10 paper preset composes with data=cifar10_jpeg and builds its datamodule and model from it."""
    import hydra

    from zoo.training.config_check import validate_config
    from zoo.training.run import data_facts, model_kwargs

    cfg = make_cfg(tmp_path, [f"experiment={preset}", "data=cifar10_jpeg", f"data.root={cifar10_jpeg_root}",
                              "data.val_size=100"])
    validate_config(cfg)
    dm = hydra.utils.instantiate(cfg.data)
    assert isinstance(dm, CIFAR10JPEGDataModule)
    facts = data_facts(dm)
    assert facts == {"num_classes": 10, "in_chans": 3, "image_size": 32, "small_input": True}
    kwargs = model_kwargs(cfg.model, facts, "cifar10_jpeg")
    with torch.device("meta"):
        model = hydra.utils.instantiate(kwargs)
    assert model.num_classes == 10


def test_resnet20_full_recipe_on_the_jpeg_copy_fast_dev_run(cifar10_jpeg_root, tmp_path):
    from zoo.training import train

    cfg = make_cfg(tmp_path, ["experiment=resnet20_cifar10", "data=cifar10_jpeg", f"data.root={cifar10_jpeg_root}",
                              "data.val_size=100", "debug=fdr"])
    assert cfg.trainer.max_epochs == 182 or cfg.trainer.get("fast_dev_run")
    res = train(cfg)
    assert res["data"] == "cifar10_jpeg" and res["model"] == "resnet20"
