"""Keyword rules shared by the registered builders of every family.

* ``small_input`` is strictly a bool (:func:`check_small_input`).
* A family with two layouts (ImageNet-size and 28/32-px) sizes its head for
  ``image_size``, which defaults to :data:`SMALL_IMAGE_SIZE` under ``small_input``
  and to the paper's input otherwise (:func:`default_image_size`).
* A family with a single layout (LeNet-5 and the CIFAR ResNets are 32-px networks; the
  small ViTs and the gated networks are built for 28/32-px images) accepts the
  ``small_input`` value that matches its layout and refuses the other
  (:func:`require_layout`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SMALL_IMAGE_SIZE", "check_small_input", "default_image_size", "require_layout"]

#: Default input side of the small-input layouts (CIFAR, SVHN, padded MNIST).
SMALL_IMAGE_SIZE = 32


def check_small_input(model: str, small_input: Any) -> bool:
    """Returns ``small_input`` if it is a bool.

    Args:
        model: registered name, for the message.
        small_input: the value passed to the builder.

    Raises:
        TypeError: if ``small_input`` is not a bool (``0``, ``"yes"`` and ``None`` are refused).
    """
    if not isinstance(small_input, bool):
        raise TypeError(
            f"model {model!r}: small_input must be True or False, got {small_input!r} "
            f"({type(small_input).__name__})"
        )
    return small_input


def default_image_size(small_input: bool, image_size: int | None, default: int) -> int:
    """The input side a head is sized for.

    Args:
        small_input: whether the small-input layout is built.
        image_size: the side given by the caller, or ``None``.
        default: the paper's input side (224, or 227 for AlexNet).

    Returns:
        ``image_size`` if given, else :data:`SMALL_IMAGE_SIZE` under ``small_input``, else ``default``.
    """
    if image_size is not None:
        return image_size
    return SMALL_IMAGE_SIZE if small_input else default


def require_layout(model: str, small_input: Any, *, accepts: bool = True, layout: str) -> None:
    """Checks ``small_input`` for a model that has a single layout.

    Args:
        model: registered name, for the message.
        small_input: the value passed to the builder.
        accepts: the one value the model takes (``True``: its layout is the small-input one).
        layout: what the single layout is, for the message (e.g. "a 32-px network").

    Raises:
        TypeError: if ``small_input`` is not a bool.
        ValueError: if ``small_input`` is not ``accepts``; the message names the model, the
            keyword, the value and the value accepted.
    """
    check_small_input(model, small_input)
    if small_input is not accepts:
        raise ValueError(
            f"model {model!r} has a single layout ({layout}), so it accepts only small_input={accepts} "
            f"(the default); got small_input={small_input}. Leave small_input out, or pick a model "
            f"with the layout you need"
        )
