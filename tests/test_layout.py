"""The architecture as the imports have it: each top-level package imports only those before it in
schemas <- collectors <- datasets <- models, allocate <- pipelines (no cycles), and Dagster only in pipelines."""

import functools
import json
import subprocess
import sys
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


# Run in a fresh interpreter: CPython 3.11's AST constructor can raise a spurious
# "SystemError: AST constructor recursion depth mismatch" when other threads or finalizers run
# during the parse (cpython#106905), and by this point the test process has many of both.
_IMPORTS_SCRIPT = """
import ast, json, sys
from pathlib import Path
found = {}
for name in sys.argv[1:]:
    names = set()
    for node in ast.walk(ast.parse(Path(name).read_text(), name)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    found[name] = sorted(names)
print(json.dumps(found))
"""


@functools.cache
def imported_modules() -> dict[Path, list[str]]:
    """Every module each project file imports, at the top or inside functions (lazy imports count too)."""
    paths = [str(path) for package in ALLOWED for path in sorted((ROOT / package).rglob("*.py"))]
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS_SCRIPT, *paths], capture_output=True, text=True, check=True
    )
    return {Path(name): modules for name, modules in json.loads(done.stdout).items()}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_packages_before_it(package):
    wrong = []
    for path, modules in sorted(imported_modules().items()):
        if not path.is_relative_to(ROOT / package):
            continue
        for module in modules:
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
