"""The import graph: every module imports alone, no circles, the registry is a leaf, ``import zoo`` is light.

* every module under ``zoo/`` imports in a fresh state (``zoo.*`` cleared from ``sys.modules``
  before each one, in one interpreter);
* the top-level imports among zoo modules, read with ``ast``, form no cycle, and
  ``zoo/_registry.py`` imports no zoo module at all;
* ``import zoo`` loads nothing of the training or report stack and changes no torch state;
* with the optional packages made unimportable, ``import zoo`` and ``zoo.create_model`` of every
  registered model still work: the core dependencies suffice.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "zoo"

#: Packages of the ``train`` / ``report`` / ``export`` extras that ``import zoo`` must not need.
OPTIONAL = ("pytorch_lightning", "lightning", "lightning_fabric", "hydra", "omegaconf", "matplotlib",
            "sklearn", "tensorboard", "rich", "torchmetrics")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = sorted(_module_name(p) for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)
FILES = {_module_name(p): p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts}


def _run(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


# ---------------------------------------------------------------------------------------- import alone

_IMPORT_EACH = textwrap.dedent("""
    import importlib, json, sys, traceback
    failures = {}
    for name in sys.argv[1:]:
        for key in [k for k in sys.modules if k == "zoo" or k.startswith("zoo.")]:
            del sys.modules[key]
        try:
            importlib.import_module(name)
        except BaseException:
            failures[name] = traceback.format_exc(limit=-3)
    print(json.dumps(failures))
""")


def test_every_module_imports_alone():
    """One interpreter imports each module with every ``zoo.*`` entry cleared from ``sys.modules`` first
    (torch and the third-party packages stay loaded, so this takes seconds, not a fresh start each)."""
    r = subprocess.run([sys.executable, "-c", _IMPORT_EACH, *MODULES], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    failures = json.loads(r.stdout.strip().splitlines()[-1])
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert {"zoo", "zoo._registry", "zoo.factory", "zoo.diagnostics", "zoo.interop"} <= set(MODULES)


# ---------------------------------------------------------------------------------------- static graph


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if FILES[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _zoo_targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The zoo modules an import statement loads (``from pkg import sub`` counts ``pkg.sub``)."""
    out: set[str] = set()
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        src = _resolve(module, node)
        names = [f"{src}.{a.name}" if f"{src}.{a.name}" in FILES else src for a in node.names]
    for name in names:
        if name != "zoo" and not name.startswith("zoo."):
            continue
        while name not in FILES and "." in name:  # an attribute of a module: the module itself
            name = name.rsplit(".", 1)[0]
        out.add(name)
    return out


def _top_level_imports(module: str) -> set[str]:
    """Zoo modules imported when ``module`` runs: statements outside functions and classes,
    skipping ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(FILES[module].read_text(), filename=str(FILES[module]))
    out: set[str] = set()

    def visit(stmts: list[ast.stmt]) -> None:
        for s in stmts:
            if isinstance(s, (ast.Import, ast.ImportFrom)):
                out.update(_zoo_targets(module, s))
            elif isinstance(s, ast.If):
                test = ast.unparse(s.test)
                if "TYPE_CHECKING" not in test:
                    visit(s.body)
                visit(s.orelse)
            elif isinstance(s, ast.Try):
                visit(s.body)
                for h in s.handlers:
                    visit(h.body)
                visit(s.orelse)
                visit(s.finalbody)
            elif isinstance(s, (ast.With,)):
                visit(s.body)

    visit(tree.body)
    out.discard(module)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes, or ``None`` when it is acyclic."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def dfs(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = dfs(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = dfs(n)
            if found:
                return found
    return None


def test_import_graph_has_no_cycle():
    graph = {m: _top_level_imports(m) for m in MODULES}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
    # the layering: metadata <- models <- factory <- diagnostics / training
    assert "zoo.factory" in graph["zoo.diagnostics"]
    assert not graph["zoo.interop"] - {"zoo._registry"}


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_registry_imports_no_zoo_module():
    tree = ast.parse(FILES["zoo._registry"].read_text())
    found = set()
    for node in ast.walk(tree):  # anywhere in the file, not only at the top level
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom) and node.level:
                found.add("." * node.level + (node.module or ""))
            found |= _zoo_targets("zoo._registry", node)
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "__import__"):
            found.add(ast.unparse(node))
    assert not found, f"zoo/_registry.py must import no zoo module, found {sorted(found)}"


# ---------------------------------------------------------------------------------------- import zoo


def test_import_zoo_is_light_and_changes_no_torch_state():
    code = textwrap.dedent(f"""
        import json, sys
        import torch
        from torch.utils import flop_counter
        before = sorted(map(str, flop_counter.flop_registry))
        import zoo
        after = sorted(map(str, flop_counter.flop_registry))
        loaded = [m for m in {OPTIONAL!r} if m in sys.modules]
        print(json.dumps({{"loaded": loaded, "added": sorted(set(after) - set(before)),
                          "removed": sorted(set(before) - set(after))}}))
    """)
    r = _run(code)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"loaded": [], "added": [], "removed": []}


_BLOCKER = textwrap.dedent("""
    import importlib.abc, importlib.machinery, sys

    BLOCKED = {blocked!r}

    class Missing(importlib.abc.Loader):
        \"\"\"Fails every import of a blocked package as if it were not installed.\"\"\"

        def create_module(self, spec):
            raise ModuleNotFoundError(f"No module named {{spec.name!r}} (blocked)", name=spec.name)

        def exec_module(self, module):
            raise ModuleNotFoundError(f"No module named {{module.__name__!r}} (blocked)")

    class Blocker(importlib.abc.MetaPathFinder):
        # A spec without an origin: find_spec() probes (torch._dynamo's skip list) see no files,
        # and an import fails with ModuleNotFoundError.
        def find_spec(self, fullname, path=None, target=None):
            if fullname.split(".")[0] in BLOCKED:
                return importlib.machinery.ModuleSpec(fullname, Missing(), origin=None)
            return None

    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]
    sys.meta_path.insert(0, Blocker())
""")


def test_core_dependencies_suffice_for_every_model():
    code = _BLOCKER.format(blocked=OPTIONAL) + textwrap.dedent("""
        import torch
        import zoo
        names = zoo.list_models()
        with torch.device("meta"):
            for name in names:
                zoo.create_model(name)
        try:
            import pytorch_lightning
        except ImportError:
            blocked = True
        else:
            blocked = False
        print(len(names), blocked)
    """)
    r = _run(code, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    n, blocked = r.stdout.split()[-2:]
    assert int(n) > 30 and blocked == "True"


def test_the_training_stack_is_confined_to_its_modules():
    """zoo.data and zoo.training need the train extra, zoo.report the report extra; ``import zoo`` reaches none."""
    r = _run("import sys, zoo; print(sorted(m for m in sys.modules if m.startswith(('zoo.data', 'zoo.training', "
             "'zoo.report'))))")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["zoo.factory", "zoo.diagnostics", "zoo.interop"])
def test_light_modules_import_nothing_heavy(name):
    graph = _top_level_imports(name)
    assert not {m for m in graph if m.startswith(("zoo.training", "zoo.data", "zoo.report"))}
