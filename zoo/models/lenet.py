"""LeNet-5: the 1998 network as published, and a modern counterpart.

Paper: Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to
document recognition", Proceedings of the IEEE 86(11):2278-2324, 1998 (no arXiv id).
Section II-B describes LeNet-5, Table I wires C3, Appendix A gives the squashing
function and the initialisation, Section III-C the MNIST results (0.95% test error
without training-set distortions, 0.8% with them).

Variants
--------
``lenet5``
    The network of Section II-B. Every layer up to F6 computes a weighted sum plus a
    bias and squashes it with f(a) = A tanh(S a), A = 1.7159, S = 2/3 (so f(+-1) = +-1).

    * C1: 6 maps, 5x5 convolution.
    * S2: trainable subsampling. Each map adds up every 2x2 block of its C1 map,
      multiplies the sum by its own coefficient and adds its own bias (2 parameters per
      map), then squashes.
    * C3: 16 maps, 5x5, each seeing only the S2 maps listed in Table I
      (:data:`C3_TABLE`): maps 0-5 contiguous triples {i, i+1, i+2} (mod 6), maps 6-11
      contiguous quadruples, maps 12-14 the quadruples {0,1,3,4}, {1,2,4,5}, {0,2,3,5},
      map 15 all six. The kernels really are 60 separate 5x5 kernels (1,516 parameters),
      stored as one grouped convolution per fan-in (3, 4 and 6), never a dense 16x6
      weight with a mask. They run as one convolution over the 60 connections grouped by
      S2 map (each S2 map feeds 10 C3 maps), whose outputs are added into their C3 maps;
      the reference path runs the per-fan-in grouped convolutions.
    * Squashing f(a) = 1.7159 tanh(2a/3), evaluated as 2A sigmoid(2Sa) - A, the same
      function (PyTorch's CPU sigmoid is much faster than its tanh).
    * S4: as S2, on 16 maps. C5: 120 maps, 5x5 (1x1 output for a 32x32 input).
      F6: 84 units.
    * Output: one Euclidean RBF unit per class, y_i = sum_j (x_j - w_ij)^2, with fixed
      +-1 prototypes w_i (a buffer, not trained). The logits are -y.

``lenet5_modern``
    The same skeleton as it is usually trained today: ReLU (or ``activation`` =
    leaky_relu, prelu, sigmoid, tanh), 2x2 max-pooling instead of trainable subsampling,
    a full C3 (every map sees all six S2 maps), a linear classifier instead of the RBF
    layer, optional dropout before it (default 0), He / Glorot initialisation.

The RBF prototypes
------------------
For 10 classes, prototype i is the stylised 7x12 bitmap of digit i drawn in
:data:`DIGIT_BITMAPS` (7 columns x 12 rows, read row by row, '#' -> +1, '.' -> -1),
in the manner of the paper's Fig. 3. For any other class count the prototypes are a
fixed +-1 code drawn with equal probabilities from ``torch.Generator`` seeded with
:data:`PROTOTYPE_SEED`, one 84-bit row per class in order, redrawing a row that repeats
an earlier one (the paper names this "chosen at random with equal probabilities" code as
the alternative to its bitmaps). Both are deterministic, so checkpoints and fresh models
agree.

Layer table of ``lenet5`` (input 1x32x32; "connections" counts weights and biases per
output unit times units, the way the paper counts them)::

    layer   type                         maps  size    params   connections
    input                                   1  32x32        -             -
    C1      conv 5x5                        6  28x28      156       122,304
    S2      trainable 2x2 subsampling       6  14x14       12         5,880
    C3      conv 5x5, Table I wiring       16  10x10    1,516       151,600
    S4      trainable 2x2 subsampling      16  5x5         32         2,000
    C5      conv 5x5                      120  1x1     48,120        48,120
    F6      full                           84  -       10,164        10,164
    output  Euclidean RBF, fixed codes     10  -            0           840
    total                                                60,000       340,908

``zoo.count_macs`` gives 325,680 MACs: the multiplies of C1 (117,600), C3 (150,000),
C5 (48,000) and F6 (10,080). Biases, S2/S4 (element-wise after a sum pool) and the RBF's
840 squared differences are element-wise work, which the zoo does not count.

Layer table of ``lenet5_modern`` (input 1x32x32)::

    layer   type                         maps  size    params
    C1      conv 5x5 + act                  6  28x28      156
    S2      max-pool 2x2                    6  14x14        0
    C3      conv 5x5, all 6 inputs         16  10x10    2,416
    S4      max-pool 2x2                   16  5x5          0
    C5      conv 5x5 + act                120  1x1     48,120
    F6      full + act                     84  -       10,164
    output  full (linear)                  10  -          850
    total                                               61,706   (416,520 MACs)

``activation="prelu"`` adds one slope per channel/unit (6 + 16 + 120 + 84 = 226).

Deviations of ``lenet5`` from the paper
---------------------------------------
1. Optimiser: the paper trains with stochastic diagonal Levenberg-Marquardt (a per-
   parameter step eta / (mu + h_kk) from a running Gauss-Newton diagonal estimate, 20
   passes, a stepwise eta schedule). Here the training configuration's optimiser is used
   (Adam or SGD, see ``configs/optim`` and ``configs/experiment``).
2. Loss: the paper minimises its MAP criterion (Section II-C),
   ``E = y_D + log(exp(-j) + sum_i exp(-y_i))``. The training module applies cross-
   entropy to the logits ``-y``, which is ``y_D + log sum_i exp(-y_i)``: the same
   criterion without the constant "rubbish class" term exp(-j) (j -> infinity).
3. Prototype bitmaps: the paper prints its 7x12 bitmaps only as a picture (Fig. 3, the
   full ASCII set); the digit bitmaps here are drawn for this implementation in that
   style, so individual pixels differ from the paper's. Other class counts use the
   seeded random code described above.
4. Input scaling: the paper maps the background to -0.1 and the ink to 1.175 (mean about
   0, variance about 1). The model does not scale its input; the zoo's data modules
   standardise with the dataset's mean and standard deviation, which serves the same
   purpose. MNIST's 28x28 images must be padded to 32x32 as in the paper; a 28x28 input
   fails at C5 with :class:`zoo.InputTooSmallError`.
5. Initialisation: the paper draws weights from U(-2.4/F, 2.4/F), F the fan-in of the
   unit the connection belongs to. Biases, also connections of their unit, get the same
   range (the paper does not single them out); F counts inputs only, not the bias.
6. Only 32x32 inputs: the paper also runs LeNet-5 replicated over wider inputs (C5 and
   beyond computed at every position, Section VII). Here C5 must be 1x1; any other size
   raises a ValueError in :meth:`LeNet5.forward_head`. LeNet-5 is a 32-px network, so its
   only layout is the small-input one: the builders take ``small_input=True`` (the
   default) and refuse ``small_input=False`` with a ValueError.
7. ``num_classes`` and ``in_chans`` are options (the paper: 10 classes, 1 channel).
8. ``dropout`` (default 0, the paper has none): dropout on F6's output, before the RBF layer.
9. Replacing the classifier: :meth:`LeNet5.reset_classifier` with ``k != 10`` classes
   replaces the RBF layer by a plain, trainable ``nn.Linear(84, k)`` (initialised as the
   model's other layers), because the RBF's fixed prototypes are the 7x12 bitmaps of the ten
   digits and have no counterpart for another label set; ``k = 10`` installs the digit RBF
   again and ``k = 0`` leaves the F6 features (``nn.Identity``). A model *built* with
   ``num_classes != 10`` keeps an RBF output with the seeded random code above.

``conv_impl``
-------------
Both variants take ``conv_impl="native"`` (``torch.nn.functional``) or ``"reference"``
(every convolution and pooling through ``zoo.ops.conv2d`` / ``zoo.ops.max_pool2d`` /
``zoo.ops.avg_pool2d``). The choice only switches the function a layer calls; the
parameters, their names and the state dict are the same. The reference ops (hand-written
autograd Functions) run in eager mode only: a model built with ``conv_impl="reference"``
still compiles with ``torch.jit.script``, but the compiled model raises when called;
the default ``"native"`` build scripts and runs.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo._registry import Paper, register_model
from zoo.layers.head import new_classifier
from zoo.models._common import require_layout

__all__ = [
    "LENET_PAPER",
    "C3_TABLE",
    "DIGIT_BITMAPS",
    "PROTOTYPE_SEED",
    "CONV_IMPLS",
    "ACTIVATIONS",
    "Conv2d",
    "MaxPool2d",
    "TrainableSubsampling",
    "TableConv2d",
    "ScaledTanh",
    "EuclideanRBF",
    "digit_prototypes",
    "random_prototypes",
    "rbf_prototypes",
    "LeNet5",
    "lenet5",
    "lenet5_modern",
]

log = logging.getLogger(__name__)

LENET_PAPER = Paper(
    title="Gradient-based learning applied to document recognition",
    authors="LeCun et al.",
    year=1998,
    venue="Proceedings of the IEEE 86(11):2278-2324",
)

CONV_IMPLS = ("native", "reference")

# Table I of the paper: C3 map o sees the S2 maps C3_TABLE[o].
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

# Stylised 7x12 bitmaps of the digits, the RBF prototypes for 10 classes.
# '#' is +1, '.' is -1; read row by row into 84 components.
DIGIT_BITMAPS = """
   0        1        2        3        4        5        6        7        8        9
.......  .......  .......  .......  .......  .......  .......  .......  .......  .......
..###..  ...#...  ..###..  .####..  .....#.  #######  ...##..  #######  ..###..  ..###..
.#...#.  ..##...  .#...#.  #....#.  ....##.  #......  ..#....  ......#  .#...#.  .#...#.
#.....#  .#.#...  #.....#  ......#  ...#.#.  #......  .#.....  .....#.  #.....#  #.....#
#.....#  ...#...  ......#  .....#.  ..#..#.  #.###..  #......  ....#..  .#...#.  #.....#
#.....#  ...#...  .....#.  ..###..  .#...#.  ##...#.  #.###..  ....#..  ..###..  .#...##
#.....#  ...#...  ....#..  .....#.  #....#.  ......#  ##...#.  ...#...  .#...#.  ..###.#
#.....#  ...#...  ...#...  ......#  #######  ......#  #.....#  ...#...  #.....#  ......#
#.....#  ...#...  ..#....  ......#  .....#.  ......#  #.....#  ..#....  #.....#  .....#.
.#...#.  ...#...  .#.....  #....#.  .....#.  #....#.  .#...#.  ..#....  .#...#.  ....#..
..###..  .#####.  #######  .####..  .....#.  .####..  ..###..  ..#....  ..###..  ..##...
.......  .......  .......  .......  .......  .......  .......  .......  .......  .......
"""

BITMAP_WIDTH, BITMAP_HEIGHT = 7, 12
F6_UNITS = BITMAP_WIDTH * BITMAP_HEIGHT  # 84: one F6 unit per bitmap pixel
PROTOTYPE_SEED = 0


def _check_impl(conv_impl: str) -> str:
    if conv_impl not in CONV_IMPLS:
        raise ValueError(f"unknown conv_impl {conv_impl!r}; choose one of {', '.join(CONV_IMPLS)}")
    return conv_impl


def _reference_op(name: str) -> Callable[..., torch.Tensor]:
    """Returns ``zoo.ops.<name>``, imported at call time."""
    import zoo.ops

    op = getattr(zoo.ops, name, None)
    if op is None:
        raise ImportError(f"conv_impl='reference' needs zoo.ops.{name}, which this installation lacks")
    return op


# ----------------------------------------------------------------------------- prototypes


def digit_prototypes() -> torch.Tensor:
    """Returns the ``(10, 84)`` +-1 prototypes of the digits 0-9 from :data:`DIGIT_BITMAPS`.

    Row ``d`` is the bitmap of digit ``d`` read row by row (12 rows of 7 pixels),
    '#' -> +1 and '.' -> -1.
    """
    lines = DIGIT_BITMAPS.strip("\n").splitlines()[1:]  # drop the header of digit labels
    rows = [line.split() for line in lines]
    if len(rows) != BITMAP_HEIGHT or any(len(r) != 10 or any(len(b) != BITMAP_WIDTH for b in r) for r in rows):
        raise ValueError("DIGIT_BITMAPS must hold 12 rows of ten 7-pixel bitmaps")
    codes = [[1.0 if ch == "#" else -1.0 for row in rows for ch in row[d]] for d in range(10)]
    return torch.tensor(codes, device="cpu")  # (10, 84)


def random_prototypes(num_classes: int, dim: int = F6_UNITS, seed: int = PROTOTYPE_SEED) -> torch.Tensor:
    """Returns a fixed ``(num_classes, dim)`` code of distinct random +-1 rows.

    Rows are drawn one per class, in order, from a CPU ``torch.Generator`` seeded with
    ``seed`` (each component +1 or -1 with probability 1/2); a row equal to an earlier
    one is drawn again. The first k rows are the same for every ``num_classes >= k``.
    """
    if num_classes > 2 ** min(dim, 62):
        raise ValueError(f"cannot draw {num_classes} distinct +-1 codes of length {dim}")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    rows: list[tuple[float, ...]] = []
    seen: set[tuple[float, ...]] = set()
    while len(rows) < num_classes:
        row = tuple((torch.randint(0, 2, (dim,), generator=gen, device="cpu") * 2 - 1).float().tolist())
        if row not in seen:
            seen.add(row)
            rows.append(row)
    return torch.tensor(rows, device="cpu")  # (K, dim)


def rbf_prototypes(num_classes: int) -> torch.Tensor:
    """The RBF prototypes of ``lenet5``: digit bitmaps for 10 classes, else the seeded random code."""
    return digit_prototypes() if num_classes == 10 else random_prototypes(num_classes)


# ----------------------------------------------------------------------------- blocks


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` that can run its convolution through ``zoo.ops.conv2d``.

    Args:
        *args, **kwargs: as for ``nn.Conv2d``.
        conv_impl: ``"native"`` (``F.conv2d``) or ``"reference"`` (``zoo.ops.conv2d``).
    """

    def __init__(self, *args, conv_impl: str = "native", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_impl = _check_impl(conv_impl)
        if conv_impl == "reference" and self.padding_mode != "zeros":
            raise ValueError("conv_impl='reference' supports zero padding only")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, O, H', W')
        if self.conv_impl == "reference":
            if not torch.jit.is_scripting():
                return self._reference_forward(x)
            raise RuntimeError("conv_impl='reference' runs in eager mode only")
        return self._conv_forward(x, self.weight, self.bias)  # nn.Conv2d.forward

    def _reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``zoo.ops.conv2d`` (eager only: TorchScript cannot compile the reference ops)."""
        conv2d = _reference_op("conv2d")
        return conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                      dilation=self.dilation, groups=self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", conv_impl={self.conv_impl!r}"


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` (no padding, dilation 1) that can run through ``zoo.ops.max_pool2d``.

    Args:
        kernel_size: pooling window.
        stride: step (defaults to ``kernel_size``).
        conv_impl: ``"native"`` or ``"reference"``.
    """

    def __init__(self, kernel_size: int, stride: int | None = None, conv_impl: str = "native") -> None:
        super().__init__(kernel_size, stride)
        self.conv_impl = _check_impl(conv_impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H', W')
        if self.conv_impl == "reference":
            if not torch.jit.is_scripting():
                return self._reference_forward(x)
            raise RuntimeError("conv_impl='reference' runs in eager mode only")
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode)  # nn.MaxPool2d.forward (no indices)

    def _reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``zoo.ops.max_pool2d`` (eager only: TorchScript cannot compile the reference ops)."""
        return _reference_op("max_pool2d")(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", conv_impl={self.conv_impl!r}"


class TrainableSubsampling(nn.Module):
    """LeNet-5's S layers: per map, (sum of each k x k block) x coefficient + bias.

    The squashing function is a separate module that follows. Two parameters per map.

    Args:
        channels: number of maps.
        kernel_size: block size k (2 in the paper); the blocks do not overlap.
        conv_impl: ``"native"`` (``F.avg_pool2d``) or ``"reference"`` (``zoo.ops.avg_pool2d``).
    """

    checks_input_size = True  # the input-size check of zoo.ops.shape covers this layer
    spatial_dims = 2

    def __init__(self, channels: int, kernel_size: int = 2, conv_impl: str = "native") -> None:
        super().__init__()
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = kernel_size
        self.padding = 0
        self.conv_impl = _check_impl(conv_impl)
        self.weight = nn.Parameter(torch.empty(channels))  # the trainable coefficient
        self.bias = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-2.4/F, 2.4/F) with F = k*k inputs per unit (LeCun et al. 1998, Appendix A)."""
        bound = 2.4 / self.kernel_size**2
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H/k, W/k)
        k = self.kernel_size
        if self.conv_impl == "reference":
            if not torch.jit.is_scripting():
                mean = self._reference_mean(x)
            else:
                raise RuntimeError("conv_impl='reference' runs in eager mode only")
        else:
            mean = F.avg_pool2d(x, k, k)
        block_sum = mean * (k * k)
        return block_sum * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def _reference_mean(self, x: torch.Tensor) -> torch.Tensor:
        """``zoo.ops.avg_pool2d`` (eager only: TorchScript cannot compile the reference ops)."""
        return _reference_op("avg_pool2d")(x, self.kernel_size, self.kernel_size)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, conv_impl={self.conv_impl!r}"


class TableConv2d(nn.Module):
    """A convolution in which output map ``o`` sees only the input maps ``table[o]``.

    The output maps are grouped by fan-in; for each fan-in n, the input maps of its m
    output maps are gathered into ``n*m`` channels and convolved by one grouped
    convolution with ``groups=m`` (weight ``(m, n, k, k)``). So the layer holds exactly
    ``sum_o (|table[o]| * k * k + 1)`` parameters, and map order is restored at the end.

    Args:
        in_channels: number of input maps.
        table: for every output map, the indices of the input maps it sees.
        kernel_size: square kernel size.
        conv_impl: ``"native"`` or ``"reference"``.
    """

    def __init__(self, in_channels: int, table: Sequence[Sequence[int]], kernel_size: int,
                 conv_impl: str = "native") -> None:
        super().__init__()
        table = tuple(tuple(int(i) for i in inputs) for inputs in table)
        for o, inputs in enumerate(table):
            if not inputs or len(set(inputs)) != len(inputs) or not all(0 <= i < in_channels for i in inputs):
                raise ValueError(f"table row {o} = {inputs} must list distinct maps in [0, {in_channels})")
        self.in_channels = in_channels
        self.out_channels = len(table)
        self.kernel_size = kernel_size
        self.table = table
        by_fan_in: dict[int, list[int]] = {}
        for o, inputs in enumerate(table):
            by_fan_in.setdefault(len(inputs), []).append(o)
        self.groups = nn.ModuleDict()
        gather: list[int] = []
        order: list[int] = []
        for n, maps in sorted(by_fan_in.items()):
            self.groups[f"in{n}"] = Conv2d(n * len(maps), len(maps), kernel_size, groups=len(maps),
                                           conv_impl=conv_impl)
            gather += [i for o in maps for i in table[o]]
            order += maps
        self.register_buffer("gather_index", torch.tensor(gather, dtype=torch.long), persistent=False)
        self._reorder = order != list(range(len(table)))
        restore = [order.index(o) for o in range(len(table))]
        self.register_buffer("restore_index", torch.tensor(restore, dtype=torch.long), persistent=False)
        # The per-input layout of the same connections: sorted by input map (stable), the
        # connections form ``in_channels`` equal blocks when every input map feeds as many
        # output maps (Table I: 10 each), and one convolution with ``groups=in_channels``
        # computes every connection's 5x5 product once.
        counts = [gather.count(i) for i in range(in_channels)]
        self.per_input = conv_impl == "native" and len(set(counts)) == 1
        by_input = sorted(range(len(gather)), key=lambda j: gather[j])  # connection order by input map
        output_of = [o for o in order for _ in table[o]]  # output map of each connection, gather order
        self.register_buffer("by_input_index", torch.tensor(by_input, dtype=torch.long), persistent=False)
        self.register_buffer("by_input_output", torch.tensor([output_of[j] for j in by_input], dtype=torch.long),
                             persistent=False)

    def connection_matrix(self) -> torch.Tensor:
        """Returns the ``(out, in)`` boolean matrix of which input map feeds which output map."""
        m = torch.zeros(self.out_channels, self.in_channels, dtype=torch.bool, device="cpu")
        for o, inputs in enumerate(self.table):
            m[o, list(inputs)] = True
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in, H, W) -> (B, out, H', W')
        if self.per_input:
            return self._per_input_forward(x)
        return self._grouped_forward(x)

    def _per_input_forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in, H, W) -> (B, out, H', W')
        """Every connection's convolution at once, then each output map's sum over its inputs.

        The weights are the groups' own (``sum of fan-ins`` kernels, no zeros): gathered by
        input map into ``(connections, 1, k, k)`` for one convolution with
        ``groups=in_channels``, whose output channels are then added into their output
        maps (``index_add``). On CPU this is about 6x faster than one grouped convolution
        per fan-in over gathered inputs. The result equals :meth:`_grouped_forward` up to
        float summation order.
        """
        weights: list[torch.Tensor] = []
        biases: list[torch.Tensor] = []
        for conv in self.groups.values():
            weights.append(conv.weight.reshape(-1, 1, conv.weight.shape[-2], conv.weight.shape[-1]))
            bias = conv.bias
            assert bias is not None  # every group is built with a bias
            biases.append(bias)
        weight = torch.cat(weights).index_select(0, self.by_input_index)  # (connections, 1, k, k)
        y = F.conv2d(x, weight, None, 1, 0, 1, self.in_channels)  # (B, connections, H', W'), by input map
        out = y.new_zeros(y.shape[0], self.out_channels, y.shape[-2], y.shape[-1])
        out = out.index_add(1, self.by_input_output, y)  # (B, out, H', W'): each map's sum over its inputs
        bias = torch.cat(biases)  # by fan-in group
        if self._reorder:
            bias = bias.index_select(0, self.restore_index)
        return out + bias.view(1, -1, 1, 1)

    def _grouped_forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in, H, W) -> (B, out, H', W')
        """One grouped convolution per fan-in over the gathered input maps (also the reference path)."""
        x = x.index_select(1, self.gather_index)  # (B, sum of fan-ins, H, W)
        outs: list[torch.Tensor] = []
        start = 0
        for conv in self.groups.values():
            outs.append(conv(x[:, start:start + conv.in_channels]))
            start += conv.in_channels
        y = torch.cat(outs, dim=1)  # (B, out, H', W'), maps ordered by fan-in
        return y.index_select(1, self.restore_index) if self._reorder else y

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, table={len(self.table)} rows"


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A).

    With these constants f(1) = 1 and f(-1) = -1 (to 4 decimals), the targets of F6.
    """

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # any shape
        # A tanh(S x) = 2A sigmoid(2S x) - A, the same function: PyTorch's CPU sigmoid is about
        # 10x faster than its tanh (AVX-512, 2026), and this layer runs on every unit of LeNet-5.
        return torch.sigmoid(x * (2.0 * self.slope)) * (2.0 * self.amplitude) - self.amplitude

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


class EuclideanRBF(nn.Module):
    """Euclidean RBF units with fixed prototypes: ``y_i = sum_j (x_j - w_ij)^2``.

    Args:
        prototypes: ``(num_classes, in_features)``; kept as a buffer (saved, never trained).
    """

    def __init__(self, prototypes: torch.Tensor) -> None:
        super().__init__()
        buf = torch.empty(prototypes.shape)  # on the current default device (meta works)
        with torch.no_grad():
            buf.copy_(prototypes)
        self.register_buffer("prototypes", buf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B, K) penalties y
        diff = x.unsqueeze(1) - self.prototypes.unsqueeze(0)  # (B, K, D)
        return diff.pow(2).sum(dim=-1)

    def extra_repr(self) -> str:
        k, d = self.prototypes.shape
        return f"in_features={d}, num_classes={k} (fixed prototypes)"


ACTIVATIONS = ("scaled_tanh", "relu", "leaky_relu", "prelu", "sigmoid", "tanh")


def _activation(name: str, channels: int) -> nn.Module:
    """Builds one activation; ``prelu`` learns one slope per channel (He et al. 2015)."""
    if name == "scaled_tanh":
        return ScaledTanh()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01)
    if name == "prelu":
        return nn.PReLU(channels)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


# ----------------------------------------------------------------------------- the family


class LeNet5(nn.Module):
    """The LeNet-5 family: C1-S2-C3-S4-C5-F6-output, the variant given as data.

    Args:
        num_classes: output classes.
        in_chans: input channels.
        c3_table: Table-I-style wiring of C3 (one tuple of S2 maps per C3 map);
            ``None`` connects all 16 C3 maps to all 6 S2 maps.
        subsampling: ``"trainable"`` (the paper's S layers, each followed by the
            activation) or ``"max"`` (2x2 max-pooling after the activation).
        activation: one of :data:`ACTIVATIONS`.
        head: ``"rbf"`` (Euclidean RBF with fixed prototypes, logits -y) or ``"linear"``.
        dropout: dropout probability before the output layer (0: none).
        init: ``"lecun98"`` (the paper's U(-2.4/F, 2.4/F)) or ``"modern"`` (He for
            rectifiers, Glorot for sigmoid/tanh, zero biases).
        conv_impl: ``"native"`` or ``"reference"`` (convolutions and pooling through zoo.ops).

    Raises:
        ValueError: for an unknown option.
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_chans: int = 1,
        c3_table: Sequence[Sequence[int]] | None = C3_TABLE,
        subsampling: str = "trainable",
        activation: str = "scaled_tanh",
        head: str = "rbf",
        dropout: float = 0.0,
        init: str = "lecun98",
        conv_impl: str = "native",
    ) -> None:
        super().__init__()
        _check_impl(conv_impl)
        if subsampling not in ("trainable", "max"):
            raise ValueError(f"unknown subsampling {subsampling!r}; choose 'trainable' or 'max'")
        if head not in ("rbf", "linear"):
            raise ValueError(f"unknown head {head!r}; choose 'rbf' or 'linear'")
        if init not in ("lecun98", "modern"):
            raise ValueError(f"unknown init {init!r}; choose 'lecun98' or 'modern'")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        _activation(activation, 1)  # validates the name
        self.num_classes = num_classes
        self.num_features = F6_UNITS  # F6: the features the output layer sees
        self.in_chans = in_chans
        self.activation = activation
        self.head_type = head
        self.init = init
        self.conv_impl = conv_impl

        def act(channels: int) -> nn.Module:
            return _activation(activation, channels)

        def pool(channels: int) -> nn.Module:
            if subsampling == "trainable":
                return TrainableSubsampling(channels, 2, conv_impl=conv_impl)
            return MaxPool2d(2, 2, conv_impl=conv_impl)

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["c1"] = Conv2d(in_chans, 6, 5, conv_impl=conv_impl)  # (B, 6, 28, 28)
        layers["act1"] = act(6)
        layers["s2"] = pool(6)  # (B, 6, 14, 14)
        if subsampling == "trainable":
            layers["act2"] = act(6)
        if c3_table is None:
            layers["c3"] = Conv2d(6, 16, 5, conv_impl=conv_impl)  # (B, 16, 10, 10)
        else:
            layers["c3"] = TableConv2d(6, c3_table, 5, conv_impl=conv_impl)
        layers["act3"] = act(16)
        layers["s4"] = pool(16)  # (B, 16, 5, 5)
        if subsampling == "trainable":
            layers["act4"] = act(16)
        layers["c5"] = Conv2d(16, 120, 5, conv_impl=conv_impl)  # (B, 120, 1, 1)
        layers["act5"] = act(120)
        self.features = nn.Sequential(layers)

        self.f6 = nn.Linear(120, F6_UNITS)  # (B, 84)
        self.act6 = act(F6_UNITS)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if head == "rbf":
            self.output: nn.Module = EuclideanRBF(rbf_prototypes(num_classes))
        else:
            self.output = nn.Linear(F6_UNITS, num_classes)
        self.rbf_output = head == "rbf"  # the output layer is EuclideanRBF (logits: minus its penalties)
        self._init_weights()

    def _init_weights(self) -> None:
        """Initialises every weight and bias.

        ``lecun98``: U(-2.4/F, 2.4/F), F the number of inputs of the unit the connection
        belongs to (LeCun et al. 1998, Appendix A); in C3, F is 75, 100 or 150 depending
        on the map's fan-in. ``modern``: He et al. 2015 ("Delving deep into rectifiers",
        arXiv:1502.01852) normal fan-in init for relu/leaky_relu/prelu, Glorot & Bengio
        2010 uniform init for sigmoid/tanh/scaled_tanh, zero biases.
        """
        for m in self.modules():
            if isinstance(m, TrainableSubsampling):
                if self.init == "lecun98":
                    m.reset_parameters()
                else:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                self._init_layer(m)

    def _init_layer(self, m: nn.Conv2d | nn.Linear) -> None:
        """Initialises one convolution or linear layer by the rule of :meth:`_init_weights`."""
        if self.init == "lecun98":
            bound = 2.4 / m.weight[0].numel()  # fan-in of one unit: (in/groups)*k*k or in_features
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.uniform_(m.bias, -bound, bound)
            return
        if self.activation in ("relu", "leaky_relu", "prelu"):
            slope = {"relu": 0.0, "leaky_relu": 0.01, "prelu": 0.25}[self.activation]
            nn.init.kaiming_normal_(m.weight, a=slope, mode="fan_in", nonlinearity="leaky_relu")
        else:
            gain = 1.0 if self.activation == "sigmoid" else nn.init.calculate_gain("tanh")
            nn.init.xavier_uniform_(m.weight, gain=gain)
        if m.bias is not None:
            nn.init.zeros_(m.bias)

    def get_classifier(self) -> nn.Module:
        """Returns the output layer: the RBF units, or the linear classifier."""
        return self.output

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces the output layer (see deviation 9 in the module docstring).

        Args:
            num_classes: 10 on a model built with the RBF head (``head_type == "rbf"``, the
                head it was built with) installs the digit-bitmap RBF again; another
                count installs a fresh ``nn.Linear(84, num_classes)``, initialised like the
                model's other layers; 0 installs ``nn.Identity`` (``forward`` then returns
                the F6 features ``(B, 84)``).
        """
        if num_classes == 10 and self.head_type == "rbf":
            ref = self.f6.weight
            self.output = EuclideanRBF(digit_prototypes().to(device=ref.device, dtype=ref.dtype))
        else:
            self.output = new_classifier(self, F6_UNITS, num_classes)
            if isinstance(self.output, nn.Linear):
                self._init_layer(self.output)
        self.rbf_output = isinstance(self.output, EuclideanRBF)
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """C1 to C5 (with activation). ``(B, in_chans, 32, 32) -> (B, 120, 1, 1)``."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """F6, dropout and the output layer.

        Args:
            x: C5 maps ``(B, 120, 1, 1)``.
            pre_logits: return the input of the output layer (F6's activations after the
                dropout) ``(B, 84)`` instead of the logits.

        Returns:
            Logits ``(B, num_classes)`` (for the RBF head, minus the penalties y).

        Raises:
            ValueError: if C5 is not 1x1, i.e. the input was not 32x32.
        """
        if x.shape[-2] != 1 or x.shape[-1] != 1:
            if not torch.jit.is_scripting():
                self._fail_c5_size(x)
            raise ValueError("LeNet-5's C5 must be 1x1: the input was not 32x32. "
                             "Pad or resize the input to 32x32.")
        x = torch.flatten(x, 1)  # (B, 120)
        x = self.dropout(self.act6(self.f6(x)))  # (B, 84)
        if pre_logits:
            return x
        if torch.jit.is_scripting():
            rbf = self.rbf_output  # fixed when the model is scripted
        else:
            rbf = isinstance(self.output, EuclideanRBF)
        if rbf:
            return -self.output(x)  # (B, num_classes): minus the penalties y
        return self.output(x)  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, 32, 32) -> (B, num_classes)
        return self.forward_head(self.forward_features(x))

    def _fail_c5_size(self, x: torch.Tensor) -> None:
        """Raises the ValueError of :meth:`forward_head` for a C5 map ``x`` that is not 1x1."""
        h, w = x.shape[-2:]
        raise ValueError(
            f"LeNet-5's C5 must be 1x1 (its 5x5 kernel covers the whole 5x5 S4 map), but it is "
            f"{h}x{w}: the input was not 32x32. Pad or resize the input to 32x32."
        )


# ----------------------------------------------------------------------------- builders


@register_model(
    paper=LENET_PAPER,
    input_size=(1, 32, 32),
    num_classes=10,
    params=60_000,
    macs=325_680,
    paper_results={"mnist/test_err": 0.95},
    notes="the 1998 network: Table I C3, trainable subsampling, 1.7159 tanh(2a/3), fixed-prototype RBF output",
)
def lenet5(*, num_classes: int = 10, in_chans: int = 1, small_input: bool = True, dropout: float = 0.0,
           conv_impl: str = "native") -> LeNet5:
    """LeNet-5 as published (LeCun et al. 1998); see the module docstring for deviations.

    Args:
        num_classes: output classes (RBF prototypes: digit bitmaps for 10, else seeded random).
        in_chans: input channels.
        small_input: must be ``True``: LeNet-5 is a 32-px network, its only layout.
        dropout: dropout on F6's output, before the RBF layer (0: none, as in the paper).
        conv_impl: ``"native"`` or ``"reference"``.

    Returns:
        The model; input ``(B, in_chans, 32, 32)``.

    Raises:
        ValueError: for ``small_input=False``.
    """
    require_layout("lenet5", small_input, layout="a 32-px network")
    return LeNet5(num_classes=num_classes, in_chans=in_chans, dropout=dropout, conv_impl=conv_impl)


@register_model(
    paper=LENET_PAPER,
    input_size=(1, 32, 32),
    num_classes=10,
    params=61_706,
    macs=416_520,
    notes="modern LeNet-5: ReLU (selectable), max-pooling, full C3, linear classifier",
)
def lenet5_modern(*, num_classes: int = 10, in_chans: int = 1, small_input: bool = True,
                  activation: str = "relu", dropout: float = 0.0, conv_impl: str = "native") -> LeNet5:
    """LeNet-5 with today's components: activation, max-pooling, full C3, linear head.

    Args:
        num_classes: output classes.
        in_chans: input channels.
        small_input: must be ``True``: LeNet-5 is a 32-px network, its only layout.
        activation: relu, leaky_relu, prelu, sigmoid or tanh (scaled_tanh also works).
        dropout: dropout before the classifier (0: none).
        conv_impl: ``"native"`` or ``"reference"``.

    Returns:
        The model; input ``(B, in_chans, 32, 32)``.

    Raises:
        ValueError: for ``small_input=False``.
    """
    require_layout("lenet5_modern", small_input, layout="a 32-px network")
    return LeNet5(num_classes=num_classes, in_chans=in_chans, c3_table=None, subsampling="max",
                  activation=activation, head="linear", dropout=dropout, init="modern",
                  conv_impl=conv_impl)
