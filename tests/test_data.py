"""Datamodules, splits, normalisation, augmentation recipes, data errors and the data configs."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchvision import datasets as tvd

import zoo.data
from zoo.data import (
    DatasetNotFoundError,
    DigitsDataModule,
    MNISTDataModule,
    UnknownDataModuleError,
    UnknownRecipeError,
    create_datamodule,
    list_datamodules,
)
from zoo.data.stats import DATASET_STATS, IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC, channel_stats, padded_stats
from zoo.data.transforms import (
    BatchPadCropFlip,
    PCALighting,
    TransformSpec,
    build_eval_transform,
    build_train_transform,
    list_augmentations,
)

from conftest import FIXTURE_TEST, FIXTURE_TRAIN, FIXTURE_VAL, class_images

ROOT = Path(__file__).resolve().parents[1]
ALL = ["cifar10", "cifar100", "cifar10_jpeg", "digits", "fashion_mnist", "imagefolder", "kmnist", "mnist", "svhn"]

# name -> (fixture, channels, classes, torchvision class, folder under root)
FILE_SETS = {
    "mnist": ("mnist_root", 1, 10),
    "fashion_mnist": ("fashion_mnist_root", 1, 10),
    "kmnist": ("kmnist_root", 1, 10),
    "cifar10": ("cifar10_root", 3, 10),
    "cifar100": ("cifar100_root", 3, 100),
    "svhn": ("svhn_root", 3, 10),
}


def _fixture_dm(request: pytest.FixtureRequest, name: str, **kw):
    fixture = FILE_SETS[name][0]
    if name in ("cifar10", "cifar100", "svhn"):
        kw.setdefault("verify_checksums", False)
    return create_datamodule(name, root=request.getfixturevalue(fixture), download=False,
                             val_size=FIXTURE_VAL, batch_size=16, **kw)


def _whole(loader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


# --------------------------------------------------------------------------- registry


def test_list_datamodules_and_unknown_name():
    assert list_datamodules() == ALL
    assert list_datamodules("*mnist") == ["fashion_mnist", "kmnist", "mnist"]
    with pytest.raises(UnknownDataModuleError, match=r"Did you mean: mnist") as info:
        create_datamodule("mnsit")
    for name in ALL:  # the message lists what exists
        assert name in str(info.value)
    with pytest.raises(KeyError):
        zoo.data.get_datamodule_class("imagenet21k")


def test_unknown_augmentation_is_rejected_at_construction():
    with pytest.raises(UnknownRecipeError, match=r"Did you mean: pad_crop_flip"):
        create_datamodule("digits", augment="pad_crop_flp")
    assert {"none", "pad_crop", "pad_crop_flip", "alexnet", "vgg_scale_jitter"} <= set(list_augmentations())


# --------------------------------------------------------------------------- digits


def test_digits_split_is_fixed_disjoint_and_independent_of_the_global_seed():
    from sklearn.datasets import load_digits

    results = []
    for seed in (1, 12345):
        torch.manual_seed(seed)
        np.random.seed(seed)
        dm = DigitsDataModule(batch_size=32)
        dm.setup()
        results.append((dm, dm.split_indices()))
    (dm, idx), (dm2, idx2) = results
    assert {k: len(v) for k, v in idx.items()} == {"train": 1257, "val": 180, "test": 360}
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (1257, 180, 360)
    for k in idx:
        np.testing.assert_array_equal(idx[k], idx2[k])
    assert torch.equal(dm.val_set.images, dm2.val_set.images)
    everything = np.concatenate(list(idx.values()))
    assert len(np.unique(everything)) == 1797  # disjoint and complete
    labels = load_digits().target
    for part, ds in (("train", dm.train_set), ("val", dm.val_set), ("test", dm.test_set)):
        np.testing.assert_array_equal(ds.targets.numpy(), labels[idx[part]])
    # another split seed gives another split
    other = DigitsDataModule(split_seed=1).split_indices()
    assert not np.array_equal(other["test"], idx["test"])


def test_digits_shapes_dtypes_and_normalisation():
    dm = DigitsDataModule(batch_size=64)
    assert dm.input_size == (1, 32, 32) and dm.num_classes == 10 and dm.small_input
    dm.setup()
    assert dm.train_set.images.dtype == torch.uint8 and dm.train_set.images.shape == (1257, 1, 32, 32)
    assert dm.train_set.images.max() == 255  # values 0..16 scaled to the full uint8 range
    # the published statistics are the training split's
    mean, std = channel_stats(dm.train_set.images)
    assert mean == pytest.approx(DATASET_STATS["digits"][0], abs=1e-5)
    assert std == pytest.approx(DATASET_STATS["digits"][1], abs=1e-5)
    x, y = _whole(dm.train_dataloader())
    assert x.shape == (1257, 1, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-3
    xb, yb = next(iter(dm.val_dataloader()))
    assert xb.dtype == torch.float32 and dm.val_set.images.dtype == torch.float32  # pre-normalised
    assert set(y.tolist()) == set(range(10))


# --------------------------------------------------------------------------- file datasets


@pytest.mark.parametrize("name", list(FILE_SETS))
def test_fixture_files_load_through_the_datamodule(request, name):
    _, chans, classes = FILE_SETS[name]
    dm = _fixture_dm(request, name)
    assert dm.num_classes == classes and dm.in_chans == chans and dm.input_size == (chans, 32, 32)
    assert dm.small_input is True
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (
        FIXTURE_TRAIN - FIXTURE_VAL, FIXTURE_VAL, FIXTURE_TEST)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, chans, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    xt, yt = _whole(dm.test_dataloader())
    assert xt.shape == (FIXTURE_TEST, chans, 32, 32)
    assert yt.min() >= 0 and yt.max() < classes and len(dm.classes) == classes


def test_mnist_test_images_are_torchvisions_padded_and_normalised(mnist_root):
    dm = MNISTDataModule(root=mnist_root, val_size=FIXTURE_VAL)
    dm.setup("test")
    ref = tvd.MNIST(str(mnist_root), train=False, download=False)
    mean, std = padded_stats(DATASET_STATS["mnist"], 28, 32)
    assert dm.mean == pytest.approx(mean) and dm.std == pytest.approx(std)
    expected = (torch.nn.functional.pad(ref.data.float() / 255, (2, 2, 2, 2)) - mean[0]) / std[0]
    torch.testing.assert_close(dm.test_set.images[:, 0], expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(dm.test_set.targets, ref.targets)
    assert dm.test_set.images[:, 0, :2].unique().tolist() == pytest.approx([-mean[0] / std[0]])  # border = zero


def test_mnist_resize_mode_and_native_size(mnist_root):
    dm = MNISTDataModule(root=mnist_root, val_size=FIXTURE_VAL, image_size=28)
    assert dm.mean == DATASET_STATS["mnist"][0]
    dm.setup("test")
    assert dm.test_set.images.shape[-2:] == (28, 28)
    dm = MNISTDataModule(root=mnist_root, val_size=FIXTURE_VAL, image_size=32, resize_mode="resize")
    dm.setup("test")
    assert dm.test_set.images.shape[-2:] == (32, 32)
    with pytest.raises(ValueError, match="resize_mode='resize'"):
        MNISTDataModule(root=mnist_root, image_size=24)


def test_cifar_images_match_torchvision(cifar10_root):
    dm = create_datamodule("cifar10", root=cifar10_root, val_size=FIXTURE_VAL, verify_checksums=False)
    dm.setup("fit")
    ref = torchvision.datasets.CIFAR10  # the real loader, through the unverified subclass
    data = dm._open(True, download=False)
    assert isinstance(data, ref)
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2)  # (N, 3, 32, 32)
    pos = dm.split_positions
    assert torch.equal(dm.train_set.images, images[torch.from_numpy(pos["train"])])
    assert len(np.intersect1d(pos["train"], pos["val"])) == 0
    assert sorted(np.concatenate([pos["train"], pos["val"]]).tolist()) == list(range(FIXTURE_TRAIN))


def test_keyword_validation(mnist_root):
    with pytest.raises(ValueError, match=r"num_classes=10.*num_classes=100 was requested"):
        MNISTDataModule(root=mnist_root, num_classes=100)
    with pytest.raises(ValueError, match=r"in_chans=1.*in_chans=3"):
        MNISTDataModule(root=mnist_root, in_chans=3)
    with pytest.raises(ValueError, match="num_classes=100"):
        create_datamodule("cifar100", num_classes=10)
    dm = MNISTDataModule(root=mnist_root, num_classes=10, in_chans=1, small_input=False)
    assert dm.small_input is False  # an explicit choice is kept
    with pytest.raises(ValueError, match="leaves no samples"):
        MNISTDataModule(root=mnist_root, val_size=FIXTURE_TRAIN).setup("fit")


def test_split_indices_counts_and_fractions():
    train, val = zoo.data.split_indices(100, 0.1, seed=0)
    assert len(val) == 10 and len(train) == 90 and len(np.intersect1d(train, val)) == 0
    train2, val2 = zoo.data.split_indices(100, 10, seed=0)
    np.testing.assert_array_equal(val, val2)
    _, val3 = zoo.data.split_indices(100, 10, seed=1)
    assert not np.array_equal(val, val3)
    with pytest.raises(ValueError):
        zoo.data.split_indices(100, 1.5, seed=0)


# --------------------------------------------------------------------------- augmentation


def _crop_offsets(out: torch.Tensor, img: torch.Tensor, padding: int, flips: bool) -> set[tuple[int, int, bool]]:
    """All (dy, dx, mirrored) for which ``out`` is that crop of the zero-padded ``img``."""
    h, w = img.shape[-2:]
    padded = torch.nn.functional.pad(img, (padding,) * 4)
    found = set()
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[..., dy:dy + h, dx:dx + w]
            for mirrored in ((False, True) if flips else (False,)):
                if torch.equal(crop.flip(-1) if mirrored else crop, out):
                    found.add((dy, dx, mirrored))
    return found


@pytest.mark.parametrize("flip", [False, True])
def test_batched_pad_crop_is_a_crop_of_the_padded_image(flip):
    torch.manual_seed(0)
    labels = np.arange(24) % 10
    imgs = torch.from_numpy(class_images(labels, 32, 3, seed=5)).permute(0, 3, 1, 2).contiguous()  # (24, 3, 32, 32)
    aug = BatchPadCropFlip(4, flip, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    seen = set()
    for _ in range(3):
        out = (aug(imgs) * 255).round().to(torch.uint8)
        for o, img in zip(out, imgs):
            offsets = _crop_offsets(o, img, 4, flips=True)
            assert offsets, "output is not a crop of the padded input"
            if not flip:
                assert any(not m for _, _, m in offsets)
            seen |= offsets
    assert len({(dy, dx) for dy, dx, _ in seen}) > 20  # offsets vary per image
    if flip:
        assert {m for _, _, m in seen} == {False, True}


def test_augmentation_changes_train_images_not_eval(request):
    dm = _fixture_dm(request, "cifar10", augment="pad_crop_flip")
    plain = _fixture_dm(request, "cifar10", augment="none")
    dm.setup("fit")
    plain.setup("fit")
    idx = list(range(len(dm.train_set)))
    torch.manual_seed(0)
    a, ya = dm.train_set.__getitems__(idx)
    b, _ = dm.train_set.__getitems__(idx)
    c, yc = plain.train_set.__getitems__(idx)
    assert torch.equal(ya, yc) and a.shape == c.shape
    assert not torch.equal(a, b) and not torch.equal(a, c)
    # the un-augmented path is exactly the normalised stored image
    torch.testing.assert_close(c, zoo.data.transforms.Normalize(dm.mean, dm.std)(dm.train_set.images))
    # evaluation is deterministic and has no augmentation
    v1, _ = _whole(dm.val_dataloader())
    v2_, _ = _whole(dm.val_dataloader())
    assert torch.equal(v1, v2_)
    torch.testing.assert_close(v1, _whole(plain.val_dataloader())[0])
    # single-sample access uses the same recipe
    x, y = dm.train_set[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    # recipes without a batched version run per image inside the batch fetch
    per_image = _fixture_dm(request, "cifar10", augment="alexnet")
    per_image.setup("fit")
    assert per_image.train_set.batch_transform is None
    xa, ya2 = per_image.train_set.__getitems__(idx[:5])
    assert xa.shape == (5, 3, 32, 32) and xa.dtype == torch.float32 and torch.equal(ya2, ya[:5])


def test_per_sample_recipes_on_tensors():
    torch.manual_seed(0)
    img = torch.from_numpy(class_images(np.array([3]), 48, 3, seed=1)[0]).permute(2, 0, 1).contiguous()
    spec = TransformSpec(image_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), resize_size=40)
    for name in list_augmentations():
        out = build_train_transform(name, spec)(img)
        assert out.shape == (3, 32, 32) and out.dtype == torch.float32, name
    center = build_eval_transform("center", spec)
    assert torch.equal(center(img), center(img))
    ten = build_eval_transform("ten_crop", spec)(img)
    assert ten.shape == (10, 3, 32, 32)
    torch.testing.assert_close(ten[4], center(img))  # the 5th crop is the centre crop
    # then the crops of the mirrored image: its top-left is the mirror of the top-right, ...
    torch.testing.assert_close(ten[5:], ten[[1, 0, 3, 2, 4]].flip(-1))
    # pad_crop on in-memory digits never mirrors: every output is an unflipped crop
    digit = torch.from_numpy(class_images(np.array([2]), 32, 1, seed=2)[0]).permute(2, 0, 1).contiguous()
    pad_crop = build_train_transform("pad_crop", TransformSpec(32, (0.0,), (1.0,)))
    for _ in range(10):
        out = (pad_crop(digit) * 255).round().to(torch.uint8)
        assert any(not m for *_, m in _crop_offsets(out, digit, 4, flips=True))


def test_pca_lighting_matches_alexnet_formula():
    eigvec = torch.tensor(IMAGENET_PCA_EIGVEC)
    torch.testing.assert_close(eigvec.T @ eigvec, torch.eye(3), atol=2e-3, rtol=0)  # orthonormal columns
    torch.manual_seed(0)
    light = PCALighting(std=0.1)
    x = torch.full((3, 4, 4), 0.5)
    deltas = torch.stack([light(x) - x for _ in range(2000)])  # (2000, 3, 4, 4)
    # one RGB offset per image, the same on every pixel
    torch.testing.assert_close(deltas, deltas[:, :, :1, :1].expand_as(deltas), atol=1e-6, rtol=0)
    # offset = eigvec @ (alpha * eigval) with alpha ~ N(0, 0.1^2)
    alphas = torch.linalg.solve(eigvec, deltas[:, :, 0, 0].T).T / torch.tensor(IMAGENET_PCA_EIGVAL)  # (2000, 3)
    assert alphas.std(0) == pytest.approx([0.1, 0.1, 0.1], rel=0.08)
    assert alphas.mean(0).abs().max() < 0.01


# --------------------------------------------------------------------------- imagefolder


def test_imagefolder_loads_and_checks_classes(imagefolder_root):
    dm = create_datamodule("imagefolder", root=imagefolder_root, image_size=32, num_classes=3, val_size=3,
                           num_workers=0, batch_size=4, test_crop="ten_crop")
    assert dm.resize_size == 37 and dm.small_input is True and dm.mean == (0.485, 0.456, 0.406)
    dm.setup()
    assert dm.classes == ["cat", "dog", "fish"] and dm.num_classes == 3
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (21, 3, 9)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    xv, _ = next(iter(dm.val_dataloader()))
    assert xv.shape == (3, 3, 32, 32)
    xt, yt = next(iter(dm.test_dataloader()))
    assert xt.shape == (4, 10, 3, 32, 32)  # ten-crop: (B, ncrops, C, H, W)
    grey = create_datamodule("imagefolder", root=imagefolder_root, image_size=32, in_chans=1, val_size=3)
    grey.setup("test")
    assert grey.test_set[0][0].shape == (1, 32, 32) and grey.num_classes == 3
    wrong = create_datamodule("imagefolder", root=imagefolder_root, image_size=32, num_classes=1000)
    with pytest.raises(ValueError, match=r"3 class folders, but num_classes=1000"):
        wrong.setup("fit")


def test_imagefolder_missing_folder(tmp_path):
    dm = create_datamodule("imagefolder", root=tmp_path, num_classes=10)
    with pytest.raises(DatasetNotFoundError) as info:
        dm.setup("fit")
    msg = str(info.value)
    assert str(tmp_path) in msg and "train/<class>/<images>" in msg and "cannot be downloaded" in msg


# --------------------------------------------------------------------------- errors


def test_missing_dataset_without_download_names_folder_and_files(tmp_path):
    dm = create_datamodule("mnist", root=tmp_path, download=False)
    with pytest.raises(DatasetNotFoundError) as info:
        dm.setup("fit")
    err = info.value
    msg = str(err)
    assert isinstance(err, FileNotFoundError)
    assert str(tmp_path / "MNIST" / "raw") in msg and err.folder == tmp_path / "MNIST" / "raw"
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte"):
        assert f in msg
    assert "download=False" in msg and "data.download=true" in msg and "ZOO_DATA" in msg
    assert "a folder containing MNIST/raw/" in msg


def test_missing_dataset_reports_the_download_error(tmp_path):
    """The error a failed download raises names the folder, the files and the download's own error.

    Built from the datamodule's own error path with the error torchvision raises offline; no test ever
    asks for a download (download stays False).
    """
    dm = create_datamodule("kmnist", root=tmp_path)
    failure = RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried mirror, got: "
                           "<urlopen error [Errno -2] Name or service not known>")
    err = dm._error(dm.missing_files(), download_error=failure)
    msg = str(err)
    assert str(tmp_path / "KMNIST" / "raw") in msg and "t10k-labels-idx1-ubyte" in msg
    assert "download failed (RuntimeError)" in msg and "Name or service not known" in msg
    assert isinstance(err.download_error, RuntimeError) and isinstance(err, DatasetNotFoundError)


def test_the_suite_cannot_reach_the_network():
    """The autouse no_network fixture: any lookup or connection to another host fails before it goes out."""
    import socket
    import urllib.request

    from conftest import NetworkBlocked

    with pytest.raises(NetworkBlocked, match="lookup of 'example.com'"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(NetworkBlocked, match="lookup of '192.0.2.1'"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, \
            pytest.raises(NetworkBlocked, match=r"connect to \('192.0.2.1', 80\)"):
        sock.connect(("192.0.2.1", 80))
    with pytest.raises(OSError):  # urllib wraps the block in a URLError
        urllib.request.urlopen("https://yann.lecun.com/exdb/mnist/", timeout=1)


def test_checksum_mismatch_is_explained(cifar10_root):
    dm = create_datamodule("cifar10", root=cifar10_root, val_size=FIXTURE_VAL)  # verify_checksums=True
    with pytest.raises(DatasetNotFoundError) as info:
        dm.setup("fit")
    msg = str(info.value)
    assert "could not be loaded" in msg and "data.verify_checksums=false" in msg
    assert str(cifar10_root / "cifar-10-batches-py") in msg and info.value.missing == []


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", ALL)
def test_data_config_instantiates(name, tmp_path):
    path = ROOT / "configs" / "data" / f"{name}.yaml"
    raw = OmegaConf.load(path)
    cfg = OmegaConf.merge({"paths": {"data_dir": str(tmp_path), "root_dir": str(ROOT)}}, {"data": raw})
    assert OmegaConf.to_container(raw)["root"].startswith("${paths.data_dir}")
    cls = zoo.data.get_datamodule_class(name)
    assert raw._target_ == f"zoo.data.{cls.__name__}"
    params = set()
    for base in cls.__mro__:
        if "__init__" in vars(base) and issubclass(base, zoo.data.ImageDataModule):
            params |= set(inspect.signature(base.__init__).parameters)
    assert set(raw) - {"_target_"} <= params
    for key in ("root", "download", "batch_size", "num_workers", "image_size", "augment"):
        assert key in raw, key
    # The dataset's facts are the datamodule's, not copies in the YAML: the model is built from them.
    for key in ("num_classes", "in_chans", "small_input"):
        assert key not in raw, key
    dm = instantiate(cfg.data)
    assert type(dm) is cls
    assert dm.root.is_relative_to(tmp_path)
    assert dm.image_size == raw.image_size and dm.in_chans == cls.IN_CHANS
    assert dm.small_input == (raw.image_size <= 32)
    if cls.NUM_CLASSES is not None:
        assert dm.num_classes == cls.NUM_CLASSES
    assert dm.download is False  # configs never download unless asked


def test_configs_exist_for_every_datamodule():
    stems = sorted(p.stem for p in (ROOT / "configs" / "data").glob("*.yaml"))
    assert stems == list_datamodules()


# --------------------------------------------------------------------------- real MNIST


def test_real_mnist_split_and_normalisation(real_mnist_root):
    dm = MNISTDataModule(root=real_mnist_root, download=False, batch_size=1000)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (55_000, 5_000, 10_000)
    assert dm.train_set.images.shape == (55_000, 1, 32, 32) and dm.train_set.images.dtype == torch.uint8
    mean, std = channel_stats(dm.train_set.images)
    assert abs((mean[0] - dm.mean[0]) / dm.std[0]) < 0.01 and abs(std[0] / dm.std[0] - 1) < 0.01
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (1000, 1, 32, 32) and abs(x.mean().item()) < 0.05
    assert np.bincount(dm.train_set.targets.numpy()).min() > 4000  # all ten digits, roughly balanced


@pytest.mark.parametrize("name", ["cifar10", "svhn"])
def test_config_on_fixture_files_serves_augmented_batches(request, name):
    root = request.getfixturevalue(FILE_SETS[name][0])
    cfg = OmegaConf.merge({"paths": {"data_dir": str(root)}},
                          {"data": OmegaConf.load(ROOT / "configs" / "data" / f"{name}.yaml")},
                          {"data": {"val_size": FIXTURE_VAL, "verify_checksums": False, "batch_size": 8}})
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.train_set.batch_transform.padding == 4  # augment_kwargs reached the recipe
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (8,)
