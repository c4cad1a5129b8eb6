"""Named augmentation recipes and evaluation crops, in one place.

A *recipe* turns one uint8 image tensor ``(C, H, W)`` into a normalised float
tensor ready for the network. Every datamodule picks its training recipe by
name (``augment=...`` in ``configs/data/*.yaml``) and its evaluation crop by
name (``test_crop=...`` where the datamodule offers it)::

    augment=none               # no augmentation
    augment=pad_crop_flip      # CIFAR recipe of He et al. 2015

Recipes are plain functions ``(spec: TransformSpec) -> transform`` kept in
:data:`AUGMENTATIONS` (register more with :func:`register_augmentation`);
evaluation crops live in :data:`EVAL_CROPS`. Both work on tensors
(``torchvision.transforms.v2``), never PIL images.

Two kinds of source images reach them, described by :class:`TransformSpec`:

* in-memory datasets (digits, MNIST, CIFAR, SVHN) hold images already at
  ``image_size``; ``spec.resize_size`` is ``None``;
* streamed datasets (image folders) hold full-size photos; the "fit" step
  resizes the shorter side to ``spec.resize_size`` and centre-crops
  ``image_size``, as the usual ImageNet evaluation does.

Training recipes:

======================  ======================================================
``none``                fit, normalise.
``flip``                fit, horizontal flip (p=0.5).
``pad_crop``            fit, zero-pad ``padding`` px (default 4) on each side,
                        random ``image_size`` crop. No flip: for digits, whose
                        mirror images are not digits.
``pad_crop_flip``       ``pad_crop`` + horizontal flip: the CIFAR recipe of
                        He et al. 2015 (Sec. 4.2), 4-px pad, 32x32 crop; the
                        test image is the original.
``random_resized_crop`` crop of 8%-100% of the area with aspect ratio in
                        [3/4, 4/3], resized to ``image_size``, flip
                        (Szegedy et al. 2014, Sec. 6; torchvision's ImageNet
                        reference recipe).
``alexnet``             shorter side to ``resize_size`` (256), centre
                        ``resize_size`` square, random ``image_size`` crop,
                        flip, PCA lighting with sigma 0.1
                        (Krizhevsky et al. 2012, Sec. 4.1).
``vgg_scale_jitter``    shorter side to S drawn uniformly from
                        [``min_size``, ``max_size``] (256, 512 at 224 px),
                        random ``image_size`` crop, flip, PCA lighting
                        (Simonyan & Zisserman 2014, Sec. 3.1).
``randaugment``         the geometric step of ``crop`` (below), flip, then
                        ``v2.RandAugment``: ``num_ops`` (2) operations drawn
                        uniformly, at ``magnitude`` (9) of
                        ``num_magnitude_bins`` (31) (Cubuk et al. 2019,
                        arXiv:1909.13719), on the uint8 image.
``trivialaugment``      the same geometric step, flip, then
                        ``v2.TrivialAugmentWide``: one operation at a
                        magnitude drawn uniformly from ``num_magnitude_bins``
                        (Mueller & Hutter 2021, arXiv:2103.10158).
======================  ======================================================

Options of a recipe come from the datamodule's ``augment_kwargs``
(``padding``, ``scale``, ``ratio``, ``lighting_std``, ``min_size``,
``max_size``; ``crop``, ``flip``, ``num_ops``, ``magnitude``,
``num_magnitude_bins`` for the two policies). Relative sizes scale with
``image_size`` (x 256/224). The policies' geometric step ``crop`` is ``pad``
(zero-pad ``padding`` px, default 4, random crop: the default for images
stored at ``image_size``), ``resized`` (``random_resized_crop``'s crop: the
default for streamed image folders) or ``none``; ``flip: false`` drops the
flip (digits).

Random erasing (Zhong et al. 2017, arXiv:1708.04896) is an option of every
recipe: ``augment_kwargs.erase_p`` (default 0: off) is the probability that
an image gets one rectangle of 2%-33% of its area, aspect ratio in
[0.3, 3.3], set to 0 *after* normalisation (the dataset's mean colour), as
``v2.RandomErasing(value=0)`` does. The batched recipes erase a whole batch
at once (:class:`BatchRandomErasing`), each image with its own draws.

In-memory datasets run ``none``, ``flip``, ``pad_crop`` and ``pad_crop_flip``
on a whole batch at once (:data:`BATCHED_AUGMENTATIONS`,
:class:`BatchPadCropFlip`): the same distribution as the per-sample recipe
(each image gets its own crop offset and flip), without a Python call per
image, on whatever device the batch is (the random choices are drawn on the
CPU, so a seeded generator gives the same batch everywhere). The other
recipes run per sample.

Evaluation crops: ``center`` (fit, normalise) and ``ten_crop`` (shorter side
to ``resize_size``, its central square, then the four corners and the centre
of that square, each with its mirror image, stacked to
``(10, C, H, W)``; the LightningModule averages the logits over the crops, as
Krizhevsky et al. 2012 and Simonyan & Zisserman 2014 evaluate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torchvision.transforms import v2

from zoo._registry import did_you_mean
from zoo.data.stats import IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC

__all__ = [
    "TransformSpec",
    "AUGMENTATIONS",
    "EVAL_CROPS",
    "BATCHED_AUGMENTATIONS",
    "BatchPadCropFlip",
    "BatchRandomErasing",
    "BatchMix",
    "register_augmentation",
    "list_augmentations",
    "build_train_transform",
    "build_eval_transform",
    "lookup_recipe",
    "ToFloat",
    "Normalize",
    "PCALighting",
    "StackCrops",
    "UnknownRecipeError",
]

Transform = Callable[[torch.Tensor], torch.Tensor]
RecipeBuilder = Callable[["TransformSpec"], Transform]


@dataclass(frozen=True)
class TransformSpec:
    """What a recipe needs to know about the data.

    Args:
        image_size: side of the square image the network sees.
        mean: per-channel mean used to normalise (``[0, 1]`` scale).
        std: per-channel std used to normalise.
        resize_size: shorter side an image is resized to before the centre crop
            (streamed datasets), or ``None`` when images are stored at
            ``image_size`` already (in-memory datasets).
        interpolation: resampling mode for resizes.
        options: recipe options (the datamodule's ``augment_kwargs``).
    """

    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_size: int | None = None
    interpolation: v2.InterpolationMode = v2.InterpolationMode.BILINEAR
    options: dict[str, Any] = field(default_factory=dict)

    def scaled(self, pixels: int) -> int:
        """Scales a length given for 224-px images (e.g. 256) to ``image_size``."""
        return int(round(pixels * self.image_size / 224))


class ToFloat:
    """uint8 ``[0, 255]`` -> float32 ``[0, 1]``; float input passes unchanged."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            return x.to(torch.float32).div_(255.0)
        return x.to(torch.float32)

    def __repr__(self) -> str:
        return "ToFloat()"


class Normalize:
    """``(x - mean) / std`` per channel on ``(..., C, H, W)``; uint8 input is first scaled to [0, 1].

    Plain tensor arithmetic (about 5x cheaper per small image than
    ``v2.ToDtype`` + ``v2.Normalize``), also used to pre-normalise whole
    evaluation sets at once. Works on a tensor on any device: the statistics
    are copied to a device once, on its first batch there, and kept.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._mean = torch.tensor(self.mean).view(-1, 1, 1)  # (C, 1, 1)
        self._inv_std = 1.0 / torch.tensor(self.std).view(-1, 1, 1)
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _stats_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(mean, 1 / std)`` tensors ``(C, 1, 1)`` on ``device`` (copied there once)."""
        if device.type == "cpu":
            return self._mean, self._inv_std
        stats = self._on_device.get(device)
        if stats is None:
            stats = self._on_device[device] = (self._mean.to(device), self._inv_std.to(device))
        return stats

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.to(torch.float32).div_(255.0)
        else:
            x = x.to(torch.float32, copy=True)
        mean, inv_std = self._stats_on(x.device)
        return x.sub_(mean).mul_(inv_std)

    def __getstate__(self) -> dict[str, Any]:  # device copies stay behind (e.g. when sent to workers)
        return {**self.__dict__, "_on_device": {}}

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class PCALighting:
    """AlexNet's colour augmentation (Krizhevsky et al. 2012, Sec. 4.1).

    Adds ``eigvec @ (alpha * eigval)`` to every pixel of a float RGB image on
    the ``[0, 1]`` scale, with ``alpha ~ N(0, std^2)`` drawn once per image.
    Defaults: sigma 0.1 and ImageNet's RGB principal components
    (:data:`zoo.data.stats.IMAGENET_PCA_EIGVAL` / ``_EIGVEC``).

    Args:
        std: standard deviation of the random coefficients alpha.
        eigval: the 3 eigenvalues.
        eigvec: 3x3 matrix whose columns are the eigenvectors (rows R, G, B).
    """

    def __init__(
        self,
        std: float = 0.1,
        eigval: tuple[float, ...] = IMAGENET_PCA_EIGVAL,
        eigvec: tuple[tuple[float, ...], ...] = IMAGENET_PCA_EIGVEC,
    ) -> None:
        self.std = float(std)
        self.eigval = torch.tensor(eigval, dtype=torch.float32)  # (3,)
        self.eigvec = torch.tensor(eigvec, dtype=torch.float32)  # (3, 3)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-3] != 3:
            raise ValueError(f"PCALighting needs RGB images (C=3), got shape {tuple(x.shape)}")
        if self.std == 0:
            return x
        alpha = torch.randn(3) * self.std  # (3,)
        rgb = self.eigvec @ (alpha * self.eigval)  # (3,)
        return x + rgb.view(3, 1, 1)

    def __repr__(self) -> str:
        return f"PCALighting(std={self.std})"


class StackCrops:
    """Stacks the tuple of crops from ``v2.TenCrop`` into one ``(ncrops, C, H, W)`` tensor."""

    def __call__(self, crops: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.stack(list(crops))

    def __repr__(self) -> str:
        return "StackCrops()"


class UnknownRecipeError(KeyError):
    """Raised for an augmentation recipe or evaluation crop that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0])


AUGMENTATIONS: dict[str, RecipeBuilder] = {}
EVAL_CROPS: dict[str, RecipeBuilder] = {}
#: recipes with a batched version for images already at ``image_size``:
#: name -> builder ``(spec) -> transform of a uint8 batch (B, C, H, W)``.
BATCHED_AUGMENTATIONS: dict[str, RecipeBuilder] = {}


def register_augmentation(name: str) -> Callable[[RecipeBuilder], RecipeBuilder]:
    """Registers a training recipe builder ``(spec) -> transform`` under ``name``."""

    def decorator(fn: RecipeBuilder) -> RecipeBuilder:
        if name in AUGMENTATIONS:
            raise ValueError(f"augmentation recipe {name!r} is already registered")
        AUGMENTATIONS[name] = fn
        return fn

    return decorator


def list_augmentations() -> list[str]:
    """Returns the sorted names of the training recipes."""
    return sorted(AUGMENTATIONS)


def lookup_recipe(table: dict[str, RecipeBuilder], name: str, what: str) -> RecipeBuilder:
    """Returns ``table[name]``, or raises :class:`UnknownRecipeError` naming close matches and all names."""
    if name in table:
        return table[name]
    hint = did_you_mean(name, table, n=3, cutoff=0.5)
    raise UnknownRecipeError(f"unknown {what} {name!r}.{hint} Available: {', '.join(sorted(table))}.")


def build_train_transform(name: str, spec: TransformSpec) -> Transform:
    """Builds the training transform of recipe ``name``, with random erasing after it when
    ``spec.options["erase_p"] > 0``.

    Raises:
        UnknownRecipeError: for a name not in :data:`AUGMENTATIONS` (lists them).
        ValueError: for a bad ``erase_p``.
    """
    transform = lookup_recipe(AUGMENTATIONS, name, "augmentation recipe")(spec)
    p = erase_probability(spec)
    if p > 0:
        # after Normalize: value 0 is the dataset's mean colour
        transform = v2.Compose([transform, v2.RandomErasing(p=p, scale=ERASE_SCALE, ratio=ERASE_RATIO, value=0)])
    return transform


#: area fraction and aspect ratio range of a random-erasing rectangle (torchvision's and Zhong et al.'s defaults).
ERASE_SCALE = (0.02, 0.33)
ERASE_RATIO = (0.3, 3.3)


def erase_probability(spec: TransformSpec) -> float:
    """``spec.options["erase_p"]``: the probability of random erasing per image (0: off).

    Raises:
        ValueError: when it is not a number in [0, 1].
    """
    p = spec.options.get("erase_p", 0.0)
    if p is None:
        return 0.0
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"data.augment_kwargs.erase_p={p!r}: a number in [0, 1] is needed (the probability that "
                         f"an image is erased; 0: off); e.g. data.augment_kwargs.erase_p=0.25")
    return float(p)


def build_eval_transform(name: str, spec: TransformSpec) -> Transform:
    """Builds the evaluation transform ``name`` (``center`` or ``ten_crop``).

    Raises:
        UnknownRecipeError: for a name not in :data:`EVAL_CROPS` (lists them).
    """
    return lookup_recipe(EVAL_CROPS, name, "evaluation crop")(spec)


# ---------------------------------------------------------------------------
# building steps


def _fit(spec: TransformSpec) -> list[Transform]:
    """Brings a streamed image to ``image_size``: shorter side to ``resize_size``, centre crop."""
    if spec.resize_size is None:
        return []
    return [
        v2.Resize(spec.resize_size, interpolation=spec.interpolation, antialias=True),
        v2.CenterCrop(spec.image_size),
    ]


def _finish(spec: TransformSpec) -> list[Transform]:
    return [Normalize(spec.mean, spec.std)]


def _lighting(spec: TransformSpec) -> list[Transform]:
    """ToFloat + PCA lighting (RGB only; a no-op step list for grey images)."""
    if len(spec.mean) != 3:
        return [ToFloat()]
    return [ToFloat(), PCALighting(std=spec.options.get("lighting_std", 0.1))]


def _compose(steps: list[Transform]) -> Transform:
    return v2.Compose(steps)


def _pad_crop(spec: TransformSpec) -> list[Transform]:
    padding = int(spec.options.get("padding", 4))
    return [v2.RandomCrop(spec.image_size, padding=padding, fill=0, padding_mode="constant")]


# ---------------------------------------------------------------------------
# training recipes


@register_augmentation("none")
def _none(spec: TransformSpec) -> Transform:
    return _compose(_fit(spec) + _finish(spec))


@register_augmentation("flip")
def _flip(spec: TransformSpec) -> Transform:
    return _compose(_fit(spec) + [v2.RandomHorizontalFlip()] + _finish(spec))


@register_augmentation("pad_crop")
def _pad_crop_recipe(spec: TransformSpec) -> Transform:
    return _compose(_fit(spec) + _pad_crop(spec) + _finish(spec))


@register_augmentation("pad_crop_flip")
def _pad_crop_flip(spec: TransformSpec) -> Transform:
    return _compose(_fit(spec) + _pad_crop(spec) + [v2.RandomHorizontalFlip()] + _finish(spec))


@register_augmentation("random_resized_crop")
def _random_resized_crop(spec: TransformSpec) -> Transform:
    scale = tuple(spec.options.get("scale", (0.08, 1.0)))
    ratio = tuple(spec.options.get("ratio", (3 / 4, 4 / 3)))
    return _compose(
        [
            v2.RandomResizedCrop(
                spec.image_size, scale=scale, ratio=ratio, interpolation=spec.interpolation, antialias=True
            ),
            v2.RandomHorizontalFlip(),
        ]
        + _finish(spec)
    )


@register_augmentation("alexnet")
def _alexnet(spec: TransformSpec) -> Transform:
    side = spec.resize_size or spec.scaled(256)
    return _compose(
        [
            v2.Resize(side, interpolation=spec.interpolation, antialias=True),
            v2.CenterCrop(side),
            v2.RandomCrop(spec.image_size),
            v2.RandomHorizontalFlip(),
        ]
        + _lighting(spec)
        + _finish(spec)
    )


@register_augmentation("vgg_scale_jitter")
def _vgg_scale_jitter(spec: TransformSpec) -> Transform:
    lo = int(spec.options.get("min_size", spec.scaled(256)))
    hi = int(spec.options.get("max_size", 2 * lo))
    if not spec.image_size <= lo <= hi:
        raise ValueError(f"vgg_scale_jitter needs image_size <= min_size <= max_size, got {spec.image_size}, {lo}, {hi}")
    return _compose(
        [
            v2.RandomShortestSize(list(range(lo, hi + 1)), interpolation=spec.interpolation, antialias=True),
            v2.RandomCrop(spec.image_size),
            v2.RandomHorizontalFlip(),
        ]
        + _lighting(spec)
        + _finish(spec)
    )


def _policy_geometry(spec: TransformSpec, recipe: str) -> list[Transform]:
    """The geometric step before an automatic augmentation policy: ``crop`` (``pad``, ``resized``, ``none``;
    default ``pad`` for images stored at ``image_size``, ``resized`` for streamed ones), then a flip
    unless ``flip`` is false."""
    crop = spec.options.get("crop", "pad" if spec.resize_size is None else "resized")
    if crop == "pad":
        steps = _fit(spec) + _pad_crop(spec)
    elif crop == "resized":
        scale = tuple(spec.options.get("scale", (0.08, 1.0)))
        ratio = tuple(spec.options.get("ratio", (3 / 4, 4 / 3)))
        steps = [v2.RandomResizedCrop(spec.image_size, scale=scale, ratio=ratio, interpolation=spec.interpolation,
                                      antialias=True)]
    elif crop == "none":
        steps = _fit(spec)
    else:
        raise ValueError(f"data.augment_kwargs.crop={crop!r}: one of 'pad', 'resized', 'none' is needed (the "
                         f"geometric step before {recipe}); e.g. data.augment_kwargs.crop=pad")
    flip = spec.options.get("flip", True)
    if not isinstance(flip, bool):
        raise ValueError(f"data.augment_kwargs.flip={flip!r}: true or false is needed; e.g. "
                         f"data.augment_kwargs.flip=false")
    return steps + ([v2.RandomHorizontalFlip()] if flip else [])


def _policy_int(spec: TransformSpec, key: str, default: int, lo: int, hi: int | None = None) -> int:
    """An integer option of a policy recipe in ``[lo, hi]``, or a ValueError naming the key."""
    value = spec.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bound = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"data.augment_kwargs.{key}={value!r}: an integer {bound} is needed; e.g. "
                         f"data.augment_kwargs.{key}={default if hi is None or default <= hi else hi}")
    return value


@register_augmentation("randaugment")
def _randaugment(spec: TransformSpec) -> Transform:
    """RandAugment (Cubuk et al. 2019, arXiv:1909.13719) on the uint8 image, before normalisation."""
    bins = _policy_int(spec, "num_magnitude_bins", 31, 2)
    return _compose(_policy_geometry(spec, "randaugment") + [
        v2.RandAugment(num_ops=_policy_int(spec, "num_ops", 2, 0),
                       magnitude=_policy_int(spec, "magnitude", 9, 0, bins - 1), num_magnitude_bins=bins)
    ] + _finish(spec))


@register_augmentation("trivialaugment")
def _trivialaugment(spec: TransformSpec) -> Transform:
    """TrivialAugment Wide (Mueller & Hutter 2021, arXiv:2103.10158) on the uint8 image, before normalisation."""
    return _compose(_policy_geometry(spec, "trivialaugment") + [
        v2.TrivialAugmentWide(num_magnitude_bins=_policy_int(spec, "num_magnitude_bins", 31, 2))
    ] + _finish(spec))


# ---------------------------------------------------------------------------
# evaluation crops


def _center(spec: TransformSpec) -> Transform:
    return _compose(_fit(spec) + _finish(spec))


def _ten_crop(spec: TransformSpec) -> Transform:
    side = spec.resize_size or spec.scaled(256)
    return _compose(
        [
            v2.Resize(side, interpolation=spec.interpolation, antialias=True),
            v2.CenterCrop(side),  # the central square, as AlexNet's 256x256 images
            v2.TenCrop(spec.image_size),
            StackCrops(),  # (10, C, H, W)
        ]
        + _finish(spec)
    )


EVAL_CROPS["center"] = _center
EVAL_CROPS["ten_crop"] = _ten_crop


# ---------------------------------------------------------------------------
# batched versions (in-memory datasets)


class BatchPadCropFlip:
    """Per-image random pad-and-crop and horizontal flip of a whole batch, then normalisation.

    Equivalent in distribution to ``v2.RandomCrop(size, padding=padding)`` +
    ``v2.RandomHorizontalFlip()`` + :class:`Normalize` applied to each image:
    every image draws its own offsets in ``[0, 2 * padding]`` and its own flip.

    The random choices are drawn on the CPU (:meth:`draw`), always in the same
    order (row offsets, column offsets, flips), whatever device the batch is on;
    :meth:`apply` then runs the crop, flip and normalisation on the batch's
    device. So a generator seeded alike gives the same batch on every device.

    Args:
        padding: zero padding on each side (0: no crop).
        flip: mirror each image with probability 0.5.
        mean: per-channel mean.
        std: per-channel std.
    """

    def __init__(self, padding: int, flip: bool, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding = int(padding)
        self.flip = bool(flip)
        self.normalize = Normalize(mean, std)

    @property
    def draws_random(self) -> bool:
        """Whether :meth:`draw` draws anything (a crop or a flip); without either it is a normalisation."""
        return self.padding > 0 or self.flip

    def draw(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws the random choices of ``batch`` images on the CPU.

        Args:
            batch: number of images B.
            generator: a CPU generator; ``None`` draws from the global (CPU) RNG.

        Returns:
            int64 ``(3, B)``: the crops' top-left row and column offsets in ``[0, 2 * padding]``
            and the flips (1: mirror); rows a recipe does not use are zeros and draw nothing.
        """
        draws = torch.zeros(3, batch, dtype=torch.int64)  # (3, B): row offset, column offset, flip
        p = self.padding
        if p:
            draws[0] = torch.randint(0, 2 * p + 1, (batch,), generator=generator, device="cpu")
            draws[1] = torch.randint(0, 2 * p + 1, (batch,), generator=generator, device="cpu")
        if self.flip:
            draws[2] = torch.rand(batch, generator=generator, device="cpu") < 0.5
        return draws

    def crop_flip(self, x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """Crops and flips a batch ``(B, C, H, W)`` as ``draws`` (from :meth:`draw`) say, without normalising.

        Runs on ``x.device``; ``draws`` is moved there (one small copy when it is elsewhere).

        Returns:
            ``(B, C, H, W)`` of ``x``'s dtype, on ``x.device``.
        """
        b, c, h, w = x.shape  # (B, C, H, W)
        if draws.shape != (3, b):
            raise ValueError(f"need draws of shape (3, {b}) for a batch of {b}, got {tuple(draws.shape)}")
        draws = draws.to(x.device, non_blocking=x.device.type != "cpu")  # staged at once, no wait
        p = self.padding
        if p:
            wp = w + 2 * p
            xp = torch.nn.functional.pad(x, (p, p, p, p)).reshape(b, c, -1)  # (B, C, (H+2p)(W+2p)), zeros
            oy = draws[0].view(b, 1, 1)  # top-left corner of each crop
            ox = draws[1].view(b, 1, 1)
            rows = torch.arange(h, device=x.device).view(1, h, 1)
            cols = torch.arange(w, device=x.device).view(1, 1, w)
            flat = (oy + rows) * wp + ox + cols  # (B, H, W)
            x = torch.gather(xp, 2, flat.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)
        if self.flip:
            mirror = draws[2].bool().view(b, 1, 1, 1)
            x = torch.where(mirror, x.flip(-1), x)
        return x

    def apply(self, x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """Crops, flips (:meth:`crop_flip`) and normalises a uint8 batch ``(B, C, H, W)`` as ``draws`` say.

        Returns:
            float32 ``(B, C, H, W)`` on ``x.device``.
        """
        return self.normalize(self.crop_flip(x, draws))

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augments and normalises a uint8 batch ``(B, C, H, W)`` on its device; random draws come from
        ``generator`` (a CPU generator; the global RNG when ``None``), as :meth:`draw` makes them."""
        if not self.draws_random:  # nothing to draw or move: a normalisation
            return self.normalize(x)
        return self.apply(x, self.draw(x.shape[0], generator))

    def __repr__(self) -> str:
        return f"BatchPadCropFlip(padding={self.padding}, flip={self.flip}, {self.normalize!r})"


class BatchRandomErasing:
    """Random erasing (Zhong et al. 2017, arXiv:1708.04896) of a whole normalised batch, after a batched recipe.

    Each image draws, as ``v2.RandomErasing(p, scale, ratio, value=0)`` does for one image, whether it is
    erased (probability ``p``) and up to 10 candidate rectangles (area a fraction in ``scale`` of the
    image, aspect ratio log-uniform in ``ratio``); the first that fits is placed uniformly and set to 0
    (after normalisation: the dataset's mean colour); an image none of whose candidates fits is left
    alone. The draws are made on the CPU from the batch's generator, after the recipe's own draws, for
    the whole batch at once; the erasing runs on the batch's device.

    Args:
        recipe: the batched recipe (e.g. :class:`BatchPadCropFlip`), ``(x, generator) -> float batch``.
        p: probability that an image is erased.
        scale: range of the erased area, as a fraction of the image.
        ratio: range of the rectangle's aspect ratio (height / width).
    """

    ATTEMPTS = 10

    def __init__(self, recipe: Any, p: float, scale: tuple[float, float] = ERASE_SCALE,
                 ratio: tuple[float, float] = ERASE_RATIO) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"random erasing needs 0 <= p <= 1, got {p}")
        if not (0.0 <= scale[0] <= scale[1] <= 1.0 and 0.0 < ratio[0] <= ratio[1]):
            raise ValueError(f"random erasing needs 0 <= scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1], "
                             f"got scale={scale}, ratio={ratio}")
        self.recipe = recipe
        self.p = float(p)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))

    @property
    def draws_random(self) -> bool:
        """Whether a batch draws anything: erasing does when ``p > 0``, else the recipe decides."""
        return self.p > 0 or bool(getattr(self.recipe, "draws_random", True))

    def draw(self, batch: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws each image's rectangle on the CPU.

        Args:
            batch: number of images B.
            height: image height H.
            width: image width W.
            generator: a CPU generator; ``None`` draws from the global (CPU) RNG.

        Returns:
            int64 ``(4, B)``: top row, left column, height and width of each rectangle; height 0 for
            an image that is not erased.
        """
        k = self.ATTEMPTS
        erase = torch.rand(batch, generator=generator) < self.p  # (B,)
        area = torch.rand(batch, k, generator=generator) * (self.scale[1] - self.scale[0]) + self.scale[0]
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(torch.rand(batch, k, generator=generator, dtype=torch.float64) * (hi - lo) + lo)
        area = area.double() * (height * width)  # (B, k) pixels
        h = torch.round(torch.sqrt(area * aspect)).long()  # (B, k)
        w = torch.round(torch.sqrt(area / aspect)).long()
        fits = (h < height) & (w < width)  # (B, k), as torchvision's test
        first = torch.where(fits.any(1), fits.long().argmax(1), 0)  # (B,) the first candidate that fits
        h = h.gather(1, first[:, None])[:, 0]
        w = w.gather(1, first[:, None])[:, 0]
        keep = erase & fits.any(1)
        u = torch.rand(2, batch, generator=generator, dtype=torch.float64)  # (2, B) uniform placement
        top = torch.floor(u[0] * (height - h + 1)).long().clamp_(min=0)
        left = torch.floor(u[1] * (width - w + 1)).long().clamp_(min=0)
        return torch.stack([top, left, torch.where(keep, h, 0), torch.where(keep, w, 0)])  # (4, B)

    def erase(self, x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """Sets each image's rectangle (``draws`` from :meth:`draw`) of a float batch ``(B, C, H, W)`` to 0."""
        b, _, hh, ww = x.shape
        d = draws.to(x.device, non_blocking=x.device.type != "cpu").view(4, b, 1, 1)
        rows = torch.arange(hh, device=x.device).view(1, hh, 1)
        cols = torch.arange(ww, device=x.device).view(1, 1, ww)
        inside = (rows >= d[0]) & (rows < d[0] + d[2]) & (cols >= d[1]) & (cols < d[1] + d[3])  # (B, H, W)
        return x.masked_fill(inside[:, None], 0.0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Runs the recipe on a uint8 batch ``(B, C, H, W)``, then erases: float32 ``(B, C, H, W)``."""
        out = self.recipe(x, generator=generator)
        if self.p == 0:
            return out
        return self.erase(out, self.draw(out.shape[0], out.shape[-2], out.shape[-1], generator))

    def __repr__(self) -> str:
        return f"BatchRandomErasing({self.recipe!r}, p={self.p}, scale={self.scale}, ratio={self.ratio})"


def _batched(padding: int | None, flip: bool) -> RecipeBuilder:
    def build(spec: TransformSpec) -> Transform:
        pad = int(spec.options.get("padding", 4)) if padding is None else padding
        recipe = BatchPadCropFlip(pad, flip, spec.mean, spec.std)
        p = erase_probability(spec)
        return BatchRandomErasing(recipe, p) if p > 0 else recipe

    return build


BATCHED_AUGMENTATIONS["none"] = _batched(0, False)
BATCHED_AUGMENTATIONS["flip"] = _batched(0, True)
BATCHED_AUGMENTATIONS["pad_crop"] = _batched(None, False)
BATCHED_AUGMENTATIONS["pad_crop_flip"] = _batched(None, True)


# ---------------------------------------------------------------------------
# batch mixing (in the training step)


class BatchMix:
    """mixup and CutMix of a normalised training batch, with seeded draws.

    mixup (Zhang et al. 2017, arXiv:1710.09412) replaces the batch by ``lam * x + (1 - lam) * x'`` and
    the one-hot targets likewise, with ``lam ~ Beta(alpha, alpha)``; CutMix (Yun et al. 2019,
    arXiv:1905.04899) pastes a box of ``x'`` into ``x`` and weights the targets by the areas. Here
    ``x'`` is the batch rolled by one (torchvision's pairing; the loader's order is shuffled). The work
    is torchvision's ``v2.MixUp`` / ``v2.CutMix``, chosen with equal odds by ``v2.RandomChoice`` when
    both are on (timm's ``switch_prob=0.5``); a batch is mixed at all with probability ``prob``.

    Every draw (whether to mix, which of the two, ``lam``, the box) comes from the CPU generator
    ``torch.default_generator`` forked and seeded with ``seed`` for this call, so the global stream is
    left as it was and a batch's mixing is a pure function of its seed.

    Args:
        num_classes: classes of the one-hot targets.
        mixup_alpha: mixup's Beta parameter (0: no mixup).
        cutmix_alpha: CutMix's Beta parameter (0: no CutMix).
        prob: probability that a batch is mixed.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 prob: float = 1.0) -> None:
        for name, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0 (0: off), got {value!r}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob!r}")
        self.num_classes = int(num_classes)
        self.mixup_alpha, self.cutmix_alpha, self.prob = float(mixup_alpha), float(cutmix_alpha), float(prob)
        steps: list[Any] = []
        if self.mixup_alpha > 0:
            steps.append(v2.MixUp(alpha=self.mixup_alpha, num_classes=self.num_classes))
        if self.cutmix_alpha > 0:
            steps.append(v2.CutMix(alpha=self.cutmix_alpha, num_classes=self.num_classes))
        self.mix: Any = None if not steps else steps[0] if len(steps) == 1 else v2.RandomChoice(steps)

    @property
    def enabled(self) -> bool:
        """Whether any batch can be mixed."""
        return self.mix is not None and self.prob > 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixes a batch.

        Args:
            x: float images ``(B, C, H, W)``, on any device.
            y: int64 labels ``(B,)``.
            seed: seed of this batch's draws; ``None`` draws from the global CPU RNG.

        Returns:
            ``(images (B, C, H, W), targets)``: float32 ``(B, num_classes)`` probabilities when the
            batch was mixed, else ``x`` and ``y`` unchanged.
        """
        if not self.enabled:
            return x, y
        if seed is None:
            return self._mix(x, y)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(seed))
            return self._mix(x, y)

    def _mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.prob < 1.0 and float(torch.rand(())) >= self.prob:
            return x, y
        return self.mix(x, y)

    def __repr__(self) -> str:
        return (f"BatchMix(num_classes={self.num_classes}, mixup_alpha={self.mixup_alpha}, "
                f"cutmix_alpha={self.cutmix_alpha}, prob={self.prob})")
