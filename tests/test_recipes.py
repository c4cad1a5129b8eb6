"""The opt-in augmentation recipes: RandAugment / TrivialAugment, random erasing, and batch mixing (mixup / CutMix).

Each is checked for what it computes (mixup against the convex combination with its drawn lambda, CutMix's
box against its weight, erasing's rectangles), for its reproducibility from a seed, and for an exact
mid-epoch resume of the in-memory per-image path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torchvision.transforms import v2

from zoo.data import create_datamodule
from zoo.data.transforms import (
    BatchMix,
    BatchPadCropFlip,
    BatchRandomErasing,
    Normalize,
    TransformSpec,
    build_train_transform,
)

# ---------------------------------------------------------------------------- mixup and CutMix


def test_mixup_is_the_convex_combination_with_the_drawn_lambda() -> None:
    x, y = torch.randn(8, 3, 6, 6), torch.arange(8)
    mix = BatchMix(10, mixup_alpha=0.4)
    state = torch.get_rng_state()
    out, target = mix(x, y, seed=3)
    assert torch.equal(torch.get_rng_state(), state), "the global RNG must not be drawn from"
    lam = float(target[0, 0])
    assert 0 < lam < 1
    assert torch.allclose(target[torch.arange(8), y], torch.full((8,), lam))
    assert torch.allclose(target[torch.arange(8), y.roll(1)], torch.full((8,), 1 - lam))
    torch.testing.assert_close(out, lam * x + (1 - lam) * x.roll(1, 0))
    again, target_again = mix(x, y, seed=3)
    assert torch.equal(again, out) and torch.equal(target_again, target)
    assert float(mix(x, y, seed=4)[1][0, 0]) != lam


def test_cutmix_pastes_a_box_weighted_by_its_area() -> None:
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8)
    out, target = BatchMix(10, cutmix_alpha=1.0)(x, y, seed=1)
    pasted = (out == x.roll(1, 0)).all(1) & (out != x).any(1)  # (B, H, W)
    assert torch.equal((out == x) | (out == x.roll(1, 0)), torch.ones_like(out, dtype=torch.bool))
    assert torch.equal(pasted, pasted[:1].expand_as(pasted)), "one box for the batch"
    lam = 1 - pasted[0].float().mean()
    assert torch.allclose(target[torch.arange(8), y], lam.expand(8))
    assert torch.allclose(target.sum(1), torch.ones(8))


def test_mix_choice_and_probability_come_from_the_seed() -> None:
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8)
    both = BatchMix(10, mixup_alpha=0.4, cutmix_alpha=1.0, prob=0.6)
    kinds = []
    for seed in range(40):
        out, target = both(x, y, seed=seed)
        if target.dim() == 1:
            kinds.append("none")
            assert torch.equal(out, x) and torch.equal(target, y)
        else:
            kinds.append("cutmix" if ((out == x) | (out == x.roll(1, 0))).all() else "mixup")
    assert {"none", "mixup", "cutmix"} <= set(kinds), kinds
    assert [both(x, y, seed=s)[1].dim() == 1 for s in range(40)] == [k == "none" for k in kinds]
    assert not BatchMix(10).enabled and not BatchMix(10, mixup_alpha=0.2, prob=0.0).enabled



# ---------------------------------------------------------------------------- RandAugment, TrivialAugment


def _run_seeded(transform, image: Any, seed: int) -> torch.Tensor:
    """``transform(image)`` with the global CPU RNG seeded with ``seed`` (and restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transform(image)


@pytest.mark.parametrize("recipe, policy", [("randaugment", v2.RandAugment), ("trivialaugment", v2.TrivialAugmentWide)])
def test_policy_recipes_change_images_keep_shape_and_follow_the_seed(recipe: str, policy: type) -> None:
    from zoo.data.digits import load_digits_uint8

    images = torch.nn.functional.interpolate(load_digits_uint8()[0][:48].float(), size=32).round().to(torch.uint8)
    spec = TransformSpec(32, (0.2,), (0.3,), options={"crop": "none", "flip": False})
    tf, plain = build_train_transform(recipe, spec), build_train_transform("none", spec)
    steps = [type(t) for t in tf.transforms]
    assert steps.index(policy) < steps.index(Normalize), "the policy runs on the uint8 image, before normalising"
    changed = 0
    for i, img in enumerate(images):
        out = _run_seeded(tf, img, i)
        assert out.dtype == torch.float32 and out.shape == img.shape
        assert torch.equal(out, _run_seeded(tf, img, i))
        changed += not torch.equal(out, plain(img))
    assert changed > len(images) // 2, changed
    outs = [_run_seeded(tf, images[0], s) for s in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    rgb = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8)
    out = _run_seeded(build_train_transform(recipe, TransformSpec(24, (0.5,) * 3, (0.25,) * 3)), rgb, 0)
    assert out.shape == rgb.shape and out.dtype == torch.float32
    with pytest.raises(ValueError, match=r"magnitude=31: an integer in \[0, 30\]"):
        build_train_transform("randaugment", TransformSpec(32, (0.2,), (0.3,), options={"magnitude": 31}))


def test_policy_recipe_in_memory_resumes_mid_epoch_exactly() -> None:
    """Digits with randaugment: the per-image path draws from the batch's seeded generator, so a loader resumed
    at batch 5 gives bitwise the batches of the straight pass."""
    kwargs = dict(batch_size=100, augment="randaugment", augment_kwargs={"padding": 2, "flip": False})
    dm = create_datamodule("digits", **kwargs)
    dm.setup("fit")
    dm.loader_seed = 123
    straight = list(dm.train_dataloader())
    resumed = create_datamodule("digits", **kwargs)
    resumed.setup("fit")
    resumed.load_state_dict({"loader_seed": 123, "train_loader": {"epoch": 0, "position": 5, "seed": 123}})
    rest = list(resumed.train_dataloader())
    assert len(rest) == len(straight) - 5
    for (xa, ya), (xb, yb) in zip(straight[5:], rest):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert straight[0][0].dtype == torch.float32


@pytest.mark.parametrize("recipe", ["randaugment", "trivialaugment"])
def test_policy_recipes_on_streamed_image_folders(recipe: str, imagefolder_root: Path) -> None:
    dm = create_datamodule("imagefolder", root=imagefolder_root, num_workers=0, image_size=32, val_size=3,
                           augment=recipe, augment_kwargs={"erase_p": 0.5})
    dm.setup("fit")
    first = [_run_seeded(lambda i: dm.train_set[i][0], i, seed=7) for i in range(4)]
    assert all(a.shape == (3, 32, 32) and a.dtype == torch.float32 for a in first)
    assert all(torch.equal(a, _run_seeded(lambda i: dm.train_set[i][0], i, seed=7)) for i, a in enumerate(first))


# ---------------------------------------------------------------------------- random erasing


def test_batched_random_erasing_draws_rectangles_per_image() -> None:
    batch = torch.full((2000, 1, 16, 16), 200, dtype=torch.uint8)
    erase = BatchRandomErasing(BatchPadCropFlip(0, False, (0.0,), (1.0,)), p=0.4)
    out = erase(batch, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == batch.shape
    assert torch.equal(out, erase(batch, generator=torch.Generator().manual_seed(0)))
    zero = out[:, 0] == 0  # (B, H, W): the erased pixels
    hit = zero.flatten(1).any(1)
    assert abs(float(hit.float().mean()) - 0.4) < 0.05
    assert torch.all(out[~hit] == 200 / 255)
    for mask in zero[hit][:200]:
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert int(mask.sum()) == h * w, "a rectangle"
        assert 0.01 <= h * w / 256 <= 0.36 and h < 16 and w < 16
    # erase_p reaches the batched recipe of an in-memory datamodule, and the per-image recipes
    dm = create_datamodule("digits", augment="pad_crop", augment_kwargs={"padding": 2, "erase_p": 0.5})
    dm.setup("fit")
    assert isinstance(dm.train_set.batch_transform, BatchRandomErasing)
    one = build_train_transform("none", TransformSpec(16, (0.0,), (1.0,), options={"erase_p": 1.0}))
    assert (_run_seeded(one, batch[0], 0) == 0).any()
    with pytest.raises(ValueError, match=r"erase_p=1\.5: a number in \[0, 1\]"):
        build_train_transform("none", TransformSpec(16, (0.0,), (1.0,), options={"erase_p": 1.5}))
