"""Model families, one file each. Importing this package registers every model.

Every family is imported explicitly, so that no model goes missing from the registry.
"""

from zoo.models import (  # noqa: F401
    alexnet,
    gated,
    googlenet,
    lenet,
    mobilenet,
    resnet,
    shufflenet,
    vgg,
    vit,
)
