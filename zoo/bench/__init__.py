"""The project's benchmark: ``python -m zoo.bench`` (``make bench``).

Times, in one process and interleaved (A, B, A, B, ...), the project's code against plain PyTorch
and torchvision, and reports medians in process CPU time and wall time, with ratios:

======================  ==============================================================================
``loop``                training steps through ``train.py``'s path (Hydra, datamodule, Lightning)
                        vs a hand-written loop over the same batches, model and optimizer
``data``                the in-memory loaders (MNIST, CIFAR-sized) vs torchvision ``DataLoader`` +
                        ``transforms.v2`` with 0 and 2 workers
``models``              forward + backward of each zoo model vs its torchvision twin, same weights
``lenet``               the faithful LeNet-5 vs ``lenet5_modern``, Adam steps at batch 32 and 128
``throughput``          inference and training per model: fp32, bf16 autocast, channels_last
                        (and ``torch.compile`` with ``--compile``)
``tta``                 time to accuracy of a whole run (``experiment=lenet5_mnist``), per epoch
======================  ==============================================================================

::

    python -m zoo.bench [--sections loop,data,models,lenet,throughput,tta] [--threads 1] [--repeats R]
                        [--quick] [--out results/bench] [--data-root ../shared/data] [--device cpu]

Writes ``bench.md``, ``bench.csv`` and ``bench.json`` into ``--out``, each with the machine block
(CPU model and flags, cores, threads, versions, GPU, date, command). ``tta`` is run only when asked
for: it is a whole training run. The library side: :func:`run_benchmark` with :class:`BenchOptions`.
"""

from zoo.bench.cli import build_parser, main, options_from_args, run_benchmark
from zoo.bench.core import (
    DEFAULT_SECTIONS,
    SECTIONS,
    BenchOptions,
    Clock,
    Measurement,
    Report,
    Sample,
    Sampler,
    interleave,
    machine_info,
    write_outputs,
)

__all__ = ["main", "build_parser", "options_from_args", "run_benchmark", "BenchOptions", "Report", "Measurement",
           "Sample", "Clock", "Sampler", "interleave", "machine_info", "write_outputs", "SECTIONS",
           "DEFAULT_SECTIONS"]
