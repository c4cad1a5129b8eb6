"""torch.hub: the checkout's ``hubconf.py`` lists every registered model and builds them, offline."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

import zoo

ROOT = Path(__file__).resolve().parents[1]


def _import_hubconf() -> ModuleType:
    """Imports ``hubconf.py`` as torch.hub does: the checkout first on ``sys.path`` while it loads."""
    sys.path.insert(0, str(ROOT))
    try:
        spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT))
    return module


def _hub_list_local(root: Path) -> list[str]:
    """``torch.hub.list(root, source="local")``; where torch.hub.list reads only GitHub repositories
    (no ``source`` argument), the same listing from the local ``hubconf.py``: its public callables."""
    if "source" in inspect.signature(torch.hub.list).parameters:
        return torch.hub.list(str(root), source="local")
    module = _import_hubconf()
    return [f for f in dir(module) if callable(getattr(module, f)) and not f.startswith("_")]


def test_hub_lists_every_registered_model_and_nothing_else() -> None:
    assert sorted(_hub_list_local(ROOT)) == zoo.list_models()


def test_hubconf_declares_its_dependencies_and_documents_entrypoints() -> None:
    module = _import_hubconf()
    assert module.dependencies == ["torch", "torchvision"]
    assert Path(module._zoo.__file__).resolve().is_relative_to(ROOT)  # the checkout's package
    for name in zoo.list_models():
        entry = getattr(module, name)
        assert entry.__name__ == name
        info = zoo.model_info(name)
        assert info.paper.cite() in entry.__doc__
        assert f"{info.params:,} parameters" in entry.__doc__


@pytest.mark.parametrize("name, shape", [("resnet18", (3, 64, 64)), ("lenet5", (1, 32, 32))])
def test_hub_load_local_builds_the_model(name: str, shape: tuple[int, ...]) -> None:
    model = torch.hub.load(str(ROOT), name, source="local", num_classes=10)
    assert isinstance(model, torch.nn.Module)
    assert zoo.count_params(model) == zoo.count_params(zoo.create_model(name, num_classes=10))
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, *shape))
    assert logits.shape == (2, 10)


def test_hub_load_passes_model_options_and_reports_unknown_names() -> None:
    model = torch.hub.load(str(ROOT), "resnet20", source="local", num_classes=3, in_chans=1)
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    with pytest.raises(RuntimeError, match="Cannot find callable resnet2 in hubconf"):
        torch.hub.load(str(ROOT), "resnet2", source="local")
