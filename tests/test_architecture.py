"""The layering of design.md, read from the syntax tree: short functions, public surfaces, one import direction."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("datagen", "router", "server", "training", "engrain")
MAX_LINES = 80
# engrain -> server -> training -> datagen, and training -> router; each may use what lies below it.
MAY_IMPORT = {"engrain": {"server", "training", "datagen", "router"}, "server": {"training", "datagen", "router"},
              "training": {"datagen", "router"}, "datagen": set(), "router": set()}


def _modules(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (REPO / top).rglob("*.py") if ".venv" not in p.parts)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(tree: ast.Module) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) for every absolute import, lazy ones inside functions included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def _surface(package: str) -> set[str]:
    return set(importlib.import_module(package).__all__)


def test_no_function_is_longer_than_80_lines():
    long = [f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in _modules(*PACKAGES) for node in ast.walk(_tree(path))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert not long, "split these functions:\n" + "\n".join(long)


def test_other_packages_use_only_a_package_s_public_surface():
    surfaces = {package: _surface(package) for package in PACKAGES if package != "engrain"}
    outside = [p for p in REPO.glob("*.py")] + _modules(*PACKAGES)
    bad = []
    for path in outside:
        home = path.relative_to(REPO).parts[0]
        for line, module, names in _imports(_tree(path)):
            top = module.split(".")[0]
            if top not in surfaces or top == home:
                continue
            private = [n for n in names if n not in surfaces[top]] if module == top else [module]
            bad += [f"{path.relative_to(REPO)}:{line} imports {top}'s {n}" for n in private]
    assert not bad, "import these from the package's __init__ (and add them to its __all__):\n" + "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package):
    others = set(MAY_IMPORT) - {package}
    wrong = [f"{path.relative_to(REPO)}:{line} imports {module}" for path in _modules(package)
             for line, module, _ in _imports(_tree(path))
             if module.split(".")[0] in others - MAY_IMPORT[package]]
    assert not wrong, f"{package} may import only {sorted(MAY_IMPORT[package]) or 'nothing'} of the project:\n" + \
        "\n".join(wrong)
