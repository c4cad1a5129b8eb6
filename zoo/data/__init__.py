"""Datasets as LightningDataModules, the augmentation recipes, and the datamodule registry.

    import zoo.data
    dm = zoo.data.create_datamodule("mnist", root="/data", batch_size=128)
    dm.setup("fit")
    dm.num_classes, dm.in_chans, dm.input_size, dm.mean, dm.std

Registered datasets: ``digits`` (bundled; the default), ``mnist``,
``fashion_mnist``, ``kmnist``, ``cifar10``, ``cifar100``, ``svhn``,
``cifar10_jpeg`` and ``imagefolder`` (``in_memory=True`` for trees of small
images). Configs: ``configs/data/<name>.yaml``. The data folder is
``data.root``, which defaults to ``$ZOO_DATA`` or ``<project>/data``.
"""

from zoo.data.base import (
    DatasetNotFoundError,
    ImageDataModule,
    InMemoryDataModule,
    TensorImageDataset,
    default_data_root,
    split_indices,
)
from zoo.data.registry import (
    UnknownDataModuleError,
    create_datamodule,
    get_datamodule_class,
    list_datamodules,
    register_datamodule,
)
from zoo.data.transforms import (
    AUGMENTATIONS,
    EVAL_CROPS,
    TransformSpec,
    UnknownRecipeError,
    build_eval_transform,
    build_train_transform,
    list_augmentations,
    register_augmentation,
)
from zoo.data.digits import DigitsDataModule
from zoo.data.torchvision_sets import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    FashionMNISTDataModule,
    KMNISTDataModule,
    MNISTDataModule,
    SVHNDataModule,
)
from zoo.data.imagefolder import ImageFolderDataModule
from zoo.data.image_tree import CIFAR10JPEGDataModule, InMemoryImageFolderDataModule

__all__ = [
    "DatasetNotFoundError",
    "UnknownDataModuleError",
    "UnknownRecipeError",
    "ImageDataModule",
    "InMemoryDataModule",
    "TensorImageDataset",
    "DigitsDataModule",
    "MNISTDataModule",
    "FashionMNISTDataModule",
    "KMNISTDataModule",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "SVHNDataModule",
    "ImageFolderDataModule",
    "InMemoryImageFolderDataModule",
    "CIFAR10JPEGDataModule",
    "create_datamodule",
    "list_datamodules",
    "get_datamodule_class",
    "register_datamodule",
    "AUGMENTATIONS",
    "EVAL_CROPS",
    "TransformSpec",
    "build_train_transform",
    "build_eval_transform",
    "list_augmentations",
    "register_augmentation",
    "default_data_root",
    "split_indices",
]
