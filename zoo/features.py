"""Feature extraction: the per-stage feature maps of the staged convolutional networks.

Every staged model (ResNet, both ImageNet and CIFAR networks, VGG, AlexNet, GoogLeNet,
MobileNet v1, ShuffleNet v1 and v2) carries ``feature_info``, a list with one dict per
reduction of the input, in timm's convention::

    {"module": "stages.1", "num_chs": 128, "reduction": 8}

``module`` is the qualified name of the last module that runs at that reduction (the
stage's output, taken before the next downsampling), ``num_chs`` its channels and
``reduction`` its stride relative to the input: an ``H x W`` input gives an
``H / reduction x W / reduction`` map (rounded as the layers round: exactly
``H // reduction`` for the padded networks at sizes divisible by the largest reduction).
ResNet-50 at 224 px::

    stem.act    64   2     stages.0   256   4     stages.1   512   8
    stages.2  1024  16     stages.3  2048  32

A small-input layout downsamples less, so its entries have smaller reductions, and
where its stem no longer downsamples the stem's entry merges into the first stage's
(ResNet-18 with ``small_input=True``: ``stages.0`` to ``stages.3`` at 1, 2, 4, 8).

:func:`features_only` turns such a model into a module whose ``forward(x)`` returns the
list of these maps, selected by ``out_indices``. It is built with torchvision's FX
feature extraction (``torchvision.models.feature_extraction.create_feature_extractor``,
the ``feature_info`` module names as return nodes, and every block that holds no returned
module kept whole as one node), whose graph returns the list. The extractor is a
``torch.fx.GraphModule`` that shares the model's modules and keeps their
names: its state dict is the model's, less the layers after the last selected stage.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Sequence

import torch.nn as nn

__all__ = ["feature_info_from_taps", "features_only"]

log = logging.getLogger(__name__)

#: The families whose models carry ``feature_info``, for messages.
STAGED_FAMILIES = ("ResNet (ImageNet and CIFAR)", "VGG", "AlexNet", "GoogLeNet", "MobileNet v1",
                   "ShuffleNet v1/v2")


def feature_info_from_taps(taps: Iterable[tuple[str, int, int]]) -> list[dict[str, Any]]:
    """Builds ``feature_info`` from the modules of a network in execution order.

    Args:
        taps: ``(qualified module name, output channels, reduction)`` for the modules whose
            output may be a stage output, in the order they run (reductions non-decreasing).

    Returns:
        One dict ``{"module", "num_chs", "reduction"}`` per distinct reduction: the last
        module that runs at it.

    Raises:
        ValueError: if the reductions decrease.
    """
    info: list[dict[str, Any]] = []
    for module, num_chs, reduction in taps:
        entry = {"module": module, "num_chs": int(num_chs), "reduction": int(reduction)}
        if info and reduction < info[-1]["reduction"]:
            raise ValueError(f"feature taps must not decrease in reduction: {module} at {reduction} "
                             f"after {info[-1]['module']} at {info[-1]['reduction']}")
        if info and info[-1]["reduction"] == reduction:
            info[-1] = entry
        else:
            info.append(entry)
    return info


def _model_label(model: nn.Module) -> str:
    """``'resnet18' (ResNet)`` for a model built by ``zoo.create_model``, else the class name."""
    cls = type(model).__name__
    try:
        from zoo.factory import registered_name
    except ImportError:
        return cls
    name = registered_name(model)
    return f"{name!r} ({cls})" if name else cls


def _select(label: str, info: Sequence[dict[str, Any]], out_indices: Sequence[int] | None) -> list[int]:
    """The stage indices ``out_indices`` picks (negative ones count from the end), checked."""
    n = len(info)
    if out_indices is None:
        return list(range(n))
    if isinstance(out_indices, (int, str)) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in out_indices):
        raise ValueError(f"out_indices must be a sequence of ints, got {out_indices!r}; "
                         f"{label} has stages 0..{n - 1}")
    picked = []
    for i in out_indices:
        if not -n <= i < n:
            raise ValueError(f"out_indices {tuple(out_indices)} asks for stage {i}, but {label} has {n} stages "
                             f"(0..{n - 1}): {[f['module'] for f in info]}")
        picked.append(i % n)
    if len(set(picked)) != len(picked) or picked != sorted(picked):
        raise ValueError(f"out_indices must pick distinct stages in increasing order, got {tuple(out_indices)}")
    return picked


def _leaf_types(model: nn.Module, names: Sequence[str]) -> list[type]:
    """The module types the trace can keep whole: those with no instance that holds a returned module.

    Keeping blocks (residual blocks, Inception modules, ShuffleNet units, ...) as single graph
    nodes keeps the graph small: torchvision's node naming is quadratic in the number of
    nodes, and ResNet-1202 traced down to every operation takes about 25 s instead of 1 s.
    """
    def holds(q: str) -> bool:  # a returned module lies strictly inside the module named q
        return any(r.startswith(q + ".") for r in names) if q else True

    holders = [m for q, m in model.named_modules() if holds(q)]
    types = {type(m) for q, m in model.named_modules() if q}
    return sorted((t for t in types if not any(isinstance(m, t) for m in holders)), key=lambda t: t.__qualname__)


def _return_list(body: Any, names: Sequence[str]) -> None:
    """Makes the traced graphs of ``body`` return ``[map of names[0], map of names[1], ...]``.

    ``create_feature_extractor`` returns a dict; the output node of both the training and
    the evaluation graph is rewritten to the list of the same nodes, in stage order.
    """
    graphs = {id(g): g for g in (getattr(body, "train_graph", None), getattr(body, "eval_graph", None), body.graph)
              if g is not None}
    for graph in graphs.values():
        output = next(n for n in graph.nodes if n.op == "output")
        returned = output.args[0]  # {module name: node}
        output.args = ([returned[name] for name in names],)
        graph.lint()
    body.recompile()


def features_only(model: nn.Module, out_indices: Sequence[int] | None = None) -> nn.Module:
    """Returns a module whose ``forward(x)`` is the list of ``model``'s per-stage feature maps.

    Args:
        model: a staged model (one that carries ``feature_info``), e.g.
            ``zoo.create_model("resnet50")``; its modules are shared, not copied.
        out_indices: which entries of ``model.feature_info`` to return (negative indices
            count from the end); ``None`` for all.

    Returns:
        A ``torch.fx.GraphModule`` in the model's mode (training or evaluation), whose
        ``forward(x)`` returns ``[(B, num_chs, H / reduction, W / reduction), ...]`` and whose
        ``feature_info`` lists the selected stages.

    Raises:
        ValueError: for a model without feature stages (LeNet-5, ViT, the gated networks),
            or ``out_indices`` outside the model's stages.
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    label = _model_label(model)
    info = getattr(model, "feature_info", None)
    if not info:
        raise ValueError(
            f"model {label} has no feature stages (no feature_info), so features_only cannot extract "
            f"per-stage maps from it; staged families: {', '.join(STAGED_FAMILIES)}. Use "
            f"model.forward_features(x) for its last feature map"
        )
    picked = [dict(info[i]) for i in _select(label, info, out_indices)]
    names = [f["module"] for f in picked]
    body = create_feature_extractor(model, return_nodes={n: n for n in names},
                                    tracer_kwargs={"leaf_modules": _leaf_types(model, names)})
    _return_list(body, names)
    body.feature_info = picked
    log.debug("features_only(%s): stages %s", label, names)
    return body
