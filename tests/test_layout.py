"""The layout shows the architecture: a pure core with no Kafka in it, a shell around it, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.data import REPO

PACKAGE = REPO / "streams"
#: What the core must never import: the broker clients, Faust, and the layers above it.
SHELL_ONLY = ("aiokafka", "faust", "mode", "streams.shell", "streams.commands")


def modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", modules(PACKAGE / "core"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_imports_no_kafka_and_nothing_above_it(path: Path) -> None:
    bad = sorted(n for n in imported(path) if any(n == s or n.startswith(s + ".") for s in SHELL_ONLY))
    assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_only_the_adapter_imports_faust_internals() -> None:
    """Faust's private names are touched in streams/shell/faust_adapter.py alone."""
    for path in modules(PACKAGE):
        if path.name == "faust_adapter.py":
            continue
        text = path.read_text()
        for name in ("_drain_messages", "_committed_offset", "_new_transport", "table.data.data", "_read_offset"):
            assert name not in text, f"{path.relative_to(REPO)} touches Faust's {name}"


@pytest.mark.parametrize("path", modules(PACKAGE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 400
