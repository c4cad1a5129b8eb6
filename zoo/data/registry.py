"""Datamodule registry: ``create_datamodule(name, **kwargs)`` and ``list_datamodules()``."""

from __future__ import annotations

import fnmatch
from typing import Any, Callable, TypeVar

from zoo._registry import did_you_mean

__all__ = ["UnknownDataModuleError", "register_datamodule", "create_datamodule", "list_datamodules",
           "get_datamodule_class"]

T = TypeVar("T", bound=type)

_DATAMODULES: dict[str, type] = {}


class UnknownDataModuleError(KeyError):
    """Raised for a dataset name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0])


def register_datamodule(name: str) -> Callable[[T], T]:
    """Class decorator registering a datamodule under ``name``.

    Raises:
        ValueError: if the name is already registered.
    """

    def decorator(cls: T) -> T:
        if name in _DATAMODULES:
            raise ValueError(f"datamodule name {name!r} is already registered by {_DATAMODULES[name].__qualname__}")
        _DATAMODULES[name] = cls
        return cls

    return decorator


def list_datamodules(pattern: str | None = None) -> list[str]:
    """Returns the sorted registered dataset names, optionally filtered by an fnmatch pattern."""
    names = sorted(_DATAMODULES)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def get_datamodule_class(name: str) -> type:
    """Returns the datamodule class registered as ``name``.

    Raises:
        UnknownDataModuleError: naming close matches and every registered dataset.
    """
    if name in _DATAMODULES:
        return _DATAMODULES[name]
    hint = did_you_mean(name, _DATAMODULES, n=3)
    raise UnknownDataModuleError(
        f"unknown dataset {name!r}.{hint} Available datasets: {', '.join(list_datamodules())}."
    )


def create_datamodule(name: str, **kwargs: Any) -> Any:
    """Builds the datamodule registered as ``name`` with ``kwargs``.

    Example::

        dm = zoo.data.create_datamodule("mnist", root="/data", batch_size=64)

    Raises:
        UnknownDataModuleError: for an unknown name (lists what exists).
    """
    return get_datamodule_class(name)(**kwargs)
