"""Training: the classification LightningModule, atomic checkpoint I/O, and the run driver."""

from zoo.training.checkpoint import AtomicCheckpointIO, CheckpointError
from zoo.training.module import ClassificationModule
from zoo.training.run import train

__all__ = ["AtomicCheckpointIO", "CheckpointError", "ClassificationModule", "train"]
