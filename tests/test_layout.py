"""The architecture as the imports have it: each top-level package imports only those before it in
schemas <- collectors <- datasets <- models, allocate <- pipelines (no cycles), and Dagster only in pipelines."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> the project packages it may import
ALLOWED = {
    "schemas": set(),
    "collectors": {"schemas"},
    "datasets": {"schemas", "collectors"},
    "models": {"schemas", "collectors", "datasets"},
    "allocate": {"schemas", "collectors", "datasets", "models"},
    "pipelines": {"schemas", "collectors", "datasets", "models", "allocate"},
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (lazy imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_packages_before_it(package):
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in ALLOWED and top != package and top not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
            if top == "dagster" and package != "pipelines":
                wrong.append(f"{path.relative_to(ROOT)} imports Dagster outside pipelines/")
    assert not wrong, "\n".join(wrong)


def test_docs_architecture_lists_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = [
        str(path.relative_to(ROOT))
        for package in ALLOWED
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "__main__.py" and f"`{path.relative_to(ROOT)}`" not in text
    ]
    assert not missing, "add to docs/architecture.md's package map: " + ", ".join(missing)
