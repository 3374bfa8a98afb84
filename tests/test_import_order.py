"""Dependencies run one way: ``nas_core`` ← ``spaces`` ← ``evaluators``, and ``nas_core`` ← ``strategies``.

Every ``import`` statement of every module of the four packages (read from the source, so imports
inside functions count too) must point down this order; and the spaces must be importable and
buildable without torch, so that a tuner, a listing or a config check never pays for it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("nas_core", "spaces", "evaluators", "strategies")
ALLOWED: dict[str, set[str]] = {
    "nas_core": set(),
    "spaces": {"nas_core"},
    "strategies": {"nas_core"},
    "evaluators": {"nas_core", "spaces"},
}
"""For each package, the other packages of the four it may import."""


def modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """Top-level packages among the four that ``path`` imports, relative imports resolved."""
    relative_to = path.relative_to(REPO).with_suffix("").parts
    own_package = relative_to[:-1]  # a module and a package's __init__ alike
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own_package[: len(own_package) - (node.level - 1)]
                names = [".".join((*base, node.module or ""))]
            else:
                names = [node.module or ""]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in PACKAGES)
    return found


def violations() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in modules():
        package = path.relative_to(REPO).parts[0]
        bad = imported_packages(path) - ALLOWED[package] - {package}
        if bad:
            out[path.relative_to(REPO).as_posix()] = bad
    return out


def test_the_walk_sees_every_module_and_resolves_relative_imports():
    names = {p.relative_to(REPO).as_posix() for p in modules()}
    assert {"nas_core/space.py", "spaces/layouts.py", "evaluators/fitness.py", "strategies/__init__.py"} <= names
    assert "nas_core/nni_adapter/tuner.py" in names
    assert imported_packages(REPO / "evaluators" / "cost.py") >= {"evaluators", "nas_core"}
    assert "spaces" in imported_packages(REPO / "evaluators" / "backbones.py")


def test_no_import_runs_against_the_order():
    found = {module: sorted(bad) for module, bad in violations().items()}
    assert not found, f"imports against nas_core <- spaces <- evaluators, nas_core <- strategies: {found}"


CHECK_SPACES = """
import json, sys
from nas_core.registry import SPACES
from spaces.layouts import backbone_names
built = {name: len(SPACES.build(name, {}).names) for name in SPACES.names()}
built.update({f"binary_width/{b}": len(SPACES.build("binary_width", {"backbone": b}).names) for b in backbone_names()})
heavy = sorted(m for m in ("torch", "evaluators", "strategies") if m in sys.modules)
print(json.dumps({"built": built, "heavy": heavy}))
"""


def test_building_every_registered_space_imports_neither_torch_nor_evaluators():
    out = subprocess.run([sys.executable, "-c", CHECK_SPACES], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["built"]["binary_width/resnet18"] == 12 and result["built"]["binary_width/vgg_small"] == 6
    assert result["heavy"] == []
