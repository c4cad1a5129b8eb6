"""Device-resident in-memory data: the same batches on every device, one copy of the data, exact resume.

The in-memory datamodules keep their tensors on the training device (``data.device``; by default the
trainer's) and make batches there. What must hold, and is checked here on the CPU:

* the random choices (epoch order, crop offsets, flips) are drawn on the CPU from the generators seeded
  by ``batch_seed(seed, epoch, i)``, so the batches are bitwise those of the loader before the data could
  live on a device (:func:`_reference_epoch` re-implements it) and those of ``device="cpu"``;
* the datasets are moved to the device once, at setup, and iterating copies no images from the host: only
  the epoch's order and each batch's small draws. The ``meta`` device (shapes, no values) stands in for an
  accelerator to check placement and copies; values are compared on the CPU;
* Lightning's transfer of a batch already on the device is a no-op;
* ``state_dict`` / ``load_state_dict`` mid-epoch gives the remaining batches bitwise.

The CUDA test runs only where ``torch.cuda.is_available()``: it compares the CUDA batches with the CPU
ones (uint8 indexing and augmentation exactly, normalised floats within 1e-6).
"""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest
import torch
from hydra_helpers import make_cfg
from lightning_fabric.utilities.apply_func import move_data_to_device

from zoo.data import create_datamodule
from zoo.data.base import InMemoryLoader, TensorImageDataset, batch_seed
from zoo.data.transforms import BATCHED_AUGMENTATIONS, BatchPadCropFlip, Normalize, TransformSpec
from zoo.training.config_check import ConfigError, validate_config

CUDA = torch.cuda.is_available()
MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
META = torch.device("meta")


# --------------------------------------------------------------------------- reference (the CPU path as it was)


def _reference_pad_crop_flip(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator | None
                             ) -> torch.Tensor:
    """The batched pad-crop-flip as it was written before batches could be made on a device (uint8 out)."""
    b, c, h, w = x.shape  # (B, C, H, W)
    p = padding
    if p:
        wp = w + 2 * p
        xp = torch.nn.functional.pad(x, (p, p, p, p)).reshape(b, c, -1)
        oy = torch.randint(0, 2 * p + 1, (b, 1, 1), generator=generator)
        ox = torch.randint(0, 2 * p + 1, (b, 1, 1), generator=generator)
        flat = (oy + torch.arange(h).view(1, h, 1)) * wp + ox + torch.arange(w).view(1, 1, w)
        x = torch.gather(xp, 2, flat.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)
    if flip:
        mirror = (torch.rand(b, generator=generator) < 0.5)[:, None, None, None]
        x = torch.where(mirror, x.flip(-1), x)
    return x


def _reference_normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean).view(-1, 1, 1)
    inv = 1.0 / torch.tensor(std).view(-1, 1, 1)
    return x.to(torch.float32).div_(255.0).sub_(m).mul_(inv)


def _reference_epoch(images: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int, epoch: int,
                     padding: int, flip: bool, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD
                     ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One training epoch of the in-memory loader as it was: order and draws from the seeded CPU generators."""
    n = len(images)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(batch_seed(seed, epoch, -1)))
    out = []
    for i in range(-(-n // batch_size)):
        idx = order[i * batch_size:(i + 1) * batch_size]
        gen = torch.Generator().manual_seed(batch_seed(seed, epoch, i))
        x = _reference_normalize(_reference_pad_crop_flip(images[idx], padding, flip, gen), mean, std)
        out.append((x, targets[idx]))
    return out


def _cifar_like(n: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic CIFAR-sized data: uint8 ``(n, 3, 32, 32)`` images and ``(n,)`` labels."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
            torch.randint(0, 10, (n,), generator=g))


def _dataset(images: torch.Tensor, targets: torch.Tensor, recipe: str = "pad_crop_flip") -> TensorImageDataset:
    spec = TransformSpec(32, MEAN, STD, options={"padding": 4})
    return TensorImageDataset(images.clone(), targets.clone(), None, BATCHED_AUGMENTATIONS[recipe](spec))


def _assert_same_batches(a: list, b: list) -> None:
    assert len(a) == len(b)
    for i, ((xa, ya), (xb, yb)) in enumerate(zip(a, b)):
        assert xa.dtype == xb.dtype and ya.dtype == yb.dtype, i
        assert torch.equal(xa, xb) and torch.equal(ya, yb), f"batch {i} differs"


def _digits(device: str | None = None, augment: str = "pad_crop_flip", **kwargs) -> object:
    dm = create_datamodule("digits", batch_size=100, augment=augment, augment_kwargs={"padding": 2},
                           device=device, **kwargs)
    dm.loader_seed = 1234
    return dm


def _epochs(dm, n: int = 2) -> list:
    loader = dm.train_dataloader()
    return [batch for _ in range(n) for batch in loader]


def _consume(loader: InMemoryLoader, n: int):
    """Takes ``n`` batches of the loader's next epoch through the training step (as Lightning counts them);
    returns the iterator, positioned after them."""
    it = iter(loader)
    for _ in range(n):
        next(it)
        loader.mark_consumed()
    return it

# --------------------------------------------------------------------------- the batch transform


@pytest.mark.parametrize("padding,flip", [(4, True), (4, False), (0, True), (0, False), (2, True)])
def test_batch_transform_draws_made_or_passed_in_give_the_same_batch(padding, flip):
    images, _ = _cifar_like(40)
    aug = BatchPadCropFlip(padding, flip, MEAN, STD)
    made = aug(images, generator=torch.Generator().manual_seed(5))
    draws = aug.draw(len(images), torch.Generator().manual_seed(5))
    assert draws.device.type == "cpu" and draws.shape == (3, 40) and draws.dtype == torch.int64
    passed = aug.apply(images, draws)
    reference = _reference_normalize(
        _reference_pad_crop_flip(images, padding, flip, torch.Generator().manual_seed(5)), MEAN, STD)
    assert torch.equal(made, passed) and torch.equal(made, reference)
    assert torch.equal(aug.crop_flip(images, draws),
                       _reference_pad_crop_flip(images, padding, flip, torch.Generator().manual_seed(5)))


def test_draws_consume_the_generator_as_before():
    """The draws take as many numbers from the generator as the old code, so later draws agree too."""
    aug = BatchPadCropFlip(4, True, MEAN, STD)
    g_new, g_old = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    aug.draw(17, g_new)
    _reference_pad_crop_flip(torch.zeros(17, 3, 8, 8, dtype=torch.uint8), 4, True, g_old)
    assert torch.equal(g_new.get_state(), g_old.get_state())


def test_draws_do_not_depend_on_the_batch_device():
    """The draws are made on the CPU for a batch anywhere: a meta batch gets a batch of its shape on meta."""
    images, _ = _cifar_like(8)
    aug = BatchPadCropFlip(4, True, MEAN, STD)
    g = torch.Generator().manual_seed(3)
    out = aug(images.to(META), generator=g)
    assert out.device == META and out.shape == images.shape and out.dtype == torch.float32
    assert torch.equal(g.get_state(), _state_after_draws(aug, 8, 3))


def _state_after_draws(aug: BatchPadCropFlip, b: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    aug.draw(b, g)
    return g.get_state()


def test_normalize_keeps_one_copy_of_its_statistics_per_device_and_pickles_without_them():
    norm = Normalize(MEAN, STD)
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert torch.equal(norm(x), _reference_normalize(x, MEAN, STD))
    assert norm(x.to(META)).device == META
    first = norm._stats_on(META)
    assert norm._stats_on(META)[0] is first[0]  # copied once
    assert pickle.loads(pickle.dumps(norm))._on_device == {}


def test_bad_draws_shape_is_refused():
    aug = BatchPadCropFlip(4, True, MEAN, STD)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        aug.apply(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(3, 5, dtype=torch.int64))


# --------------------------------------------------------------------------- the loader


def test_loader_on_cpu_gives_the_reference_batches_over_whole_epochs():
    images, targets = _cifar_like(300)
    default = InMemoryLoader(_dataset(images, targets), 64, shuffle=True, seed=7)
    explicit = InMemoryLoader(_dataset(images, targets), 64, shuffle=True, seed=7, device="cpu")
    for epoch in range(2):
        ref = _reference_epoch(images, targets, 64, 7, epoch, 4, True)
        a, b = list(default), list(explicit)
        _assert_same_batches(a, ref)
        _assert_same_batches(b, ref)
        assert [len(x) for x, _ in a] == [64] * 4 + [44]


def test_eval_loader_on_cpu_is_the_stored_order():
    images, targets = _cifar_like(130)
    x = Normalize(MEAN, STD)(images)
    ds = TensorImageDataset(x, targets)
    out = list(InMemoryLoader(ds, 50, shuffle=False, device="cpu"))
    assert torch.equal(torch.cat([b for b, _ in out]), x) and torch.equal(torch.cat([t for _, t in out]), targets)


def test_loader_state_dict_mid_epoch_gives_the_remaining_batches_bitwise():
    images, targets = _cifar_like(300)
    straight = InMemoryLoader(_dataset(images, targets), 32, shuffle=True, seed=11, device="cpu")
    list(straight)  # epoch 0
    full = list(straight)  # epoch 1
    first = InMemoryLoader(_dataset(images, targets), 32, shuffle=True, seed=11, device="cpu")
    list(first)
    it = _consume(first, 4)
    state = first.state_dict()
    assert state == {"epoch": 1, "position": 4, "seed": 11}
    resumed = InMemoryLoader(_dataset(images, targets), 32, shuffle=True, seed=None, device="cpu",
                             epoch_fn=lambda: 1)
    resumed.load_state_dict(state)
    _assert_same_batches(list(resumed), full[4:])


# --------------------------------------------------------------------------- the datamodule


def test_datamodule_explicit_cpu_gives_the_default_batches():
    default, cpu = _digits(None), _digits("cpu")
    for dm in (default, cpu):
        dm.setup("fit")
        dm.setup("test")
        assert dm.data_device == torch.device("cpu") and dm.train_set.images.device.type == "cpu"
    _assert_same_batches(_epochs(default), _epochs(cpu))
    _assert_same_batches(list(default.val_dataloader()), list(cpu.val_dataloader()))
    _assert_same_batches(list(default.test_dataloader()), list(cpu.test_dataloader()))


def test_datamodule_batches_equal_the_reference_epoch():
    dm = _digits("cpu")
    dm.setup("fit")
    images, targets = dm.train_set.images.clone(), dm.train_set.targets.clone()
    ref = [batch for epoch in range(2)
           for batch in _reference_epoch(images, targets, 100, 1234, epoch, 2, True, dm.mean, dm.std)]
    _assert_same_batches(_epochs(dm, 2), ref)


@pytest.mark.parametrize("augment", ["pad_crop_flip", "none", "random_resized_crop"])
def test_datasets_move_to_the_device_once_at_setup(augment, monkeypatch):
    moves = []
    real_to = TensorImageDataset.to

    def counting_to(self, device):
        moves.append((id(self), torch.device(device)))
        return real_to(self, device)

    monkeypatch.setattr(TensorImageDataset, "to", counting_to)
    dm = _digits("meta", augment=augment)
    dm.setup("fit")
    dm.setup("fit")  # Lightning may set up again: nothing moves twice
    dm.setup("test")
    dm.setup("validate")
    per_image = augment == "random_resized_crop"
    assert dm.val_set.images.device == META and dm.test_set.images.device == META
    assert dm.val_set.targets.device == META
    assert dm.train_set.images.device == (torch.device("cpu") if per_image else META)
    assert dm.data_device == META
    expected = [id(dm.val_set), id(dm.test_set)] + ([] if per_image else [id(dm.train_set)])
    assert sorted(i for i, _ in moves) == sorted(expected)  # each dataset moved exactly once
    assert all(d == META for _, d in moves)
    x, y = next(iter(dm.train_dataloader()))
    assert x.device == META and y.device == META and x.shape == (100, 1, 32, 32)
    assert next(iter(dm.val_dataloader()))[0].device == META


def test_an_epoch_on_the_device_copies_no_images_from_the_host(monkeypatch):
    """Per batch only the small draws cross from the host; the order crosses once per epoch, the
    normalisation statistics once."""
    dm = _digits("meta")
    dm.setup("fit")
    n, b = len(dm.train_set), dm.batch_size
    copies: list[tuple[str, int]] = []
    real_to = torch.Tensor.to

    def spying_to(self, *args, **kwargs):
        out = real_to(self, *args, **kwargs)
        if out.device != self.device:
            copies.append((f"{self.device.type}->{out.device.type}", self.numel()))
        return out

    with monkeypatch.context() as m:
        m.setattr(torch.Tensor, "to", spying_to)
        batches = list(dm.train_dataloader())
    assert len(batches) == -(-n // b) and all(x.device == META for x, _ in batches)
    assert all(kind == "cpu->meta" for kind, _ in copies)
    draws = [3 * b] * (n // b) + ([3 * (n % b)] if n % b else [])  # (3, B) offsets and flips per batch
    stats = [dm.in_chans] * 2  # mean and 1/std, on the first batch only
    assert sorted(size for _, size in copies) == sorted([n] + stats + draws)  # [n]: the epoch's order
    copies.clear()
    with monkeypatch.context() as m:
        m.setattr(torch.Tensor, "to", spying_to)
        list(dm.train_dataloader())  # the next epoch: the statistics are there already
    assert sorted(size for _, size in copies) == sorted([n] + draws)


def test_lightning_transfer_of_a_batch_on_the_device_is_a_no_op():
    for device in ("cpu", "meta"):
        dm = _digits(device)
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))
        moved = move_data_to_device(batch, torch.device(device))
        assert moved[0] is batch[0] and moved[1] is batch[1]
        moved = dm.transfer_batch_to_device(batch, torch.device(device), 0)
        assert moved[0] is batch[0] and moved[1] is batch[1]


def test_auto_device_is_the_trainers_root_device():
    dm = _digits(None)
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=META), current_epoch=0, training=False)
    dm.setup("fit")
    assert dm.data_device == META and dm.train_set.images.device == META
    dm = _digits(None)
    assert dm.resolve_device() == torch.device("cpu")  # no trainer: the CPU


def test_explicit_device_overrides_the_trainer_with_a_warning(caplog):
    dm = _digits("cpu")
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=META), current_epoch=0, training=False)
    with caplog.at_level("WARNING", logger="zoo.data.base"):
        assert dm.resolve_device() == torch.device("cpu")
    assert "every batch is copied" in caplog.text


def test_bad_devices_are_refused():
    with pytest.raises(ValueError, match="device must be null"):
        _digits("gpu0")
    if not CUDA:
        dm = _digits("cuda")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            dm.setup("fit")


def test_datamodule_resume_mid_epoch_gives_the_remaining_batches_bitwise():
    ref = _digits("cpu")
    ref.setup("fit")
    loader = ref.train_dataloader()
    list(loader)
    full = list(loader)  # epoch 1

    run = _digits("cpu")
    run.setup("fit")
    loader = run.train_dataloader()
    list(loader)
    it = _consume(loader, 5)
    state = run.state_dict()
    assert state["train_loader"] == {"epoch": 1, "position": 5, "seed": 1234}

    resumed = create_datamodule("digits", batch_size=100, augment="pad_crop_flip", augment_kwargs={"padding": 2},
                                device="cpu")
    resumed.load_state_dict(state)
    resumed.setup("fit")
    resumed.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), current_epoch=1,
                                      training=True)
    _assert_same_batches(list(resumed.train_dataloader()), full[5:])


# --------------------------------------------------------------------------- config


def test_config_check_accepts_devices_and_names_a_bad_one(tmp_path):
    for value in ("null", "cpu", "cuda", "cuda:1"):
        validate_config(make_cfg(tmp_path, [f"data.device={value}"]))
    validate_config(make_cfg(tmp_path, ["data=imagefolder"]))  # no device key: fine
    with pytest.raises(ConfigError) as info:
        validate_config(make_cfg(tmp_path, ["data.device=gpu"]))
    assert info.value.problems == [
        "data.device='gpu': one of 'cpu', 'cuda', 'cuda:N', 'mps' or null (the trainer's device) is needed "
        "(write 'cuda'); e.g. data.device=cuda"]


# --------------------------------------------------------------------------- CUDA


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_batches_equal_the_cpu_batches():
    images, targets = _cifar_like(300)
    aug = BatchPadCropFlip(4, True, MEAN, STD)
    draws = aug.draw(len(images), torch.Generator().manual_seed(1))
    cpu_u8 = aug.crop_flip(images, draws)
    gpu_u8 = aug.crop_flip(images.cuda(), draws)
    assert gpu_u8.device.type == "cuda" and torch.equal(gpu_u8.cpu(), cpu_u8)  # uint8: exact
    torch.testing.assert_close(aug.apply(images.cuda(), draws).cpu(), aug.apply(images, draws), rtol=0, atol=1e-6)

    cpu = InMemoryLoader(_dataset(images, targets), 64, shuffle=True, seed=7)
    gpu = InMemoryLoader(_dataset(images, targets).to("cuda"), 64, shuffle=True, seed=7, device="cuda")
    for _ in range(2):
        for (xc, yc), (xg, yg) in zip(list(cpu), list(gpu), strict=True):
            assert xg.device.type == "cuda" and yg.device.type == "cuda"
            assert torch.equal(yg.cpu(), yc)
            torch.testing.assert_close(xg.cpu(), xc, rtol=0, atol=1e-6)

    for augment in ("pad_crop_flip", "random_resized_crop"):
        dm_cpu, dm_gpu = _digits("cpu", augment=augment), _digits("cuda", augment=augment)
        for dm in (dm_cpu, dm_gpu):
            dm.setup("fit")
            dm.setup("test")
        assert dm_gpu.val_set.images.device.type == "cuda"
        pairs = [(_epochs(dm_cpu), _epochs(dm_gpu)),
                 (list(dm_cpu.val_dataloader()), list(dm_gpu.val_dataloader())),
                 (list(dm_cpu.test_dataloader()), list(dm_gpu.test_dataloader()))]
        for a, b in pairs:
            assert len(a) == len(b)
            for (xc, yc), (xg, yg) in zip(a, b):
                assert xg.device.type == "cuda" and torch.equal(yg.cpu(), yc)
                torch.testing.assert_close(xg.cpu(), xc, rtol=0, atol=1e-6)


def test_a_transform_that_draws_nothing_normalises_the_gathered_batch():
    """Without augmentation a batch is the gathered images normalised (no draws are made), bitwise; a
    transform that draws still draws."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (300, 3, 8, 8), dtype=torch.uint8, generator=g)
    targets = torch.randint(0, 10, (300,), generator=g)
    plain = BatchPadCropFlip(0, False, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    ds = TensorImageDataset(images, targets, batch_transform=plain)
    idx = torch.randperm(300, generator=g)[:64]
    x, y = ds.batch(idx)
    assert torch.equal(x, plain.normalize(images[idx])) and torch.equal(y, targets[idx])
    assert not plain.draws_random and BatchPadCropFlip(2, True, plain.normalize.mean, plain.normalize.std).draws_random
