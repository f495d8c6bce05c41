"""Imports go one way: ``service/`` never imports ``workers/``, the workers'
modules form no cycle, and importing one builds no broker."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter

import pytest

from tests.processes import ROOT

#: ``python -m service``, where the server meets its delivery side: the one
#: module of service/ allowed to name workers/ (nothing imports it).
ENTRY_POINT = "service/__main__.py"


def imported(path: pathlib.Path) -> set[str]:
    """Every module an import statement in ``path`` names, at the top or inside a
    function (``from a import b`` counts as ``a`` and ``a.b``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_service_imports_nothing_from_workers():
    root = pathlib.Path(ROOT)
    offenders = {
        str(path.relative_to(root)): sorted(
            n for n in imported(path) if n == "workers" or n.startswith("workers.")
        )
        for path in sorted((root / "service").rglob("*.py"))
        if str(path.relative_to(root)) != ENTRY_POINT
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_workers_modules_import_one_way():
    paths = {f"workers.{path.stem}": path for path in (pathlib.Path(ROOT) / "workers").glob("*.py")}
    graph = {module: imported(path) & paths.keys() - {module} for module, path in paths.items()}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


@pytest.mark.parametrize(
    "module",
    ["workers.actors", "workers.broker", "workers.middleware", "workers.boot", "workers.inprocess"],
)
def test_importing_a_workers_module_first_builds_no_broker(module):
    # A fresh interpreter, so that this module is the first one imported; the
    # global is read directly: dramatiq.get_broker() would make a broker itself.
    check = (
        "import gc, importlib, sys\n"
        "import dramatiq.broker\n"
        "importlib.import_module(sys.argv[1])\n"
        "brokers = [o for o in gc.get_objects() if isinstance(o, dramatiq.broker.Broker)]\n"
        "assert dramatiq.broker.global_broker is None and not brokers, brokers\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check, module],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
