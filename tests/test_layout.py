"""Imports point one way: the deployed folders never import the tooling (README, Project layout)."""

from __future__ import annotations

import ast

from tests.conftest import PROJECT

DEPLOYED = ("dags", "include", "plugins")
TOOLING = ("localdev", "bench", "tests")


def imported_modules(source: str) -> set[str]:
    """Every module a Python source imports, at any depth of the file (function-level imports too)."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def tooling_imports(source: str) -> list[str]:
    return sorted(m for m in imported_modules(source) if m.split(".")[0] in TOOLING)


def test_the_deployed_folders_import_no_tooling():
    files = [path for folder in DEPLOYED for path in sorted((PROJECT / folder).rglob("*.py"))]
    assert len(files) >= 15
    found = {str(path.relative_to(PROJECT)): wrong for path in files if (wrong := tooling_imports(path.read_text()))}
    assert found == {}


def test_the_check_sees_imports_inside_functions_and_from_submodules():
    source = "import os\n\ndef f():\n    from localdev.generator import ShopStreamData\n    import bench.etl\n"
    assert tooling_imports(source) == ["bench.etl", "localdev.generator"]
    assert tooling_imports("from include.shopstream import outputs\nimport localdevices\n") == []
