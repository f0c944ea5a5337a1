"""The house: the core stands below every feature, and no package imports in a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FEATURES = ("bot.commands", "bot.approvals", "bot.alerts", "bot.schedules", "bot.fleet")


def package_of(module: str) -> str:
    """`bot.alerts.poller` → `bot.alerts`; wiring modules at the top of `bot/` and `handlers` stand alone."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "bot" and len(parts) > 2 else module


def imports_of(path: Path) -> set[str]:
    """Every `bot.…` and `handlers…` module a file imports, at any depth (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in ("bot", "handlers")}


def modules() -> dict[str, Path]:
    found = {}
    for path in list((ROOT / "bot").rglob("*.py")) + list((ROOT / "handlers").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def package_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        source = package_of(name)
        targets = {package_of(target) for target in imports_of(path) if target in known}
        graph.setdefault(source, set()).update(targets - {source})
    return graph


@pytest.mark.slow
def test_importing_the_core_loads_no_feature():
    code = ("import sys, bot.core, bot.core.settings, bot.core.errors, bot.core.markup, bot.core.store, "
            "bot.core.hub, bot.core.slack, bot.core.permissions, bot.core.flavors, bot.core.words, "
            "bot.core.localredis; print(sorted(m for m in sys.modules if m.startswith(('bot.', 'handlers'))))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert not [m for m in eval(loaded.stdout) if m.startswith(FEATURES + ("handlers",))], loaded.stdout


def test_core_files_import_no_feature():
    offenders = {name: sorted(t for t in imports_of(path) if t.startswith(FEATURES + ("handlers", "bot.app")))
                 for name, path in modules().items() if name.startswith("bot.core")}
    assert {name: found for name, found in offenders.items() if found} == {}


@pytest.mark.slow
def test_no_import_cycles_among_packages():
    graph = package_graph()
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif len(path) < 12:
                visit(nxt, path + [nxt])

    for start in graph:
        visit(start, [start])
    assert cycles == []


def test_every_package_says_what_it_is():
    for package in ("core", "commands", "approvals", "alerts", "schedules", "fleet"):
        doc = ast.get_docstring(ast.parse((ROOT / "bot" / package / "__init__.py").read_text()))
        assert doc and len(doc) > 60, package
