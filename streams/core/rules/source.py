"""Reading rule files: safe YAML with line numbers, and errors that point at them.

Rule files are data. They are read with a safe loader that builds only plain mappings,
sequences and scalars (no Python objects, no tags), refuses duplicate keys, and
remembers where each node starts so an error can name file, line and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streams.core.errors import RuleError


@dataclass(frozen=True)
class Position:
    """A place in a rule file (1-based line and column, as editors show them)."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class RuleFileError(RuleError):
    """A rule or list file that cannot be used; says where and what, in plain words."""

    def __init__(self, position: Position | str, message: str, rule_id: str | None = None) -> None:
        where = str(position)
        who = f" rule {rule_id!r}:" if rule_id else ""
        super().__init__(f"{where}:{who} {message}")
        self.position = position
        self.rule_id = rule_id
        self.message = message


class YamlMapping(dict[str, Any]):
    """A YAML mapping that remembers where it and each of its keys start."""

    position: Position
    key_positions: dict[str, Position]


class YamlSequence(list[Any]):
    """A YAML sequence that remembers where it and each of its items start."""

    position: Position
    item_positions: list[Position]


class _Loader(yaml.SafeLoader):
    """SafeLoader that records positions and refuses duplicate keys."""

    source_path = "<string>"

    def _position(self, node: yaml.Node) -> Position:
        return Position(self.source_path, node.start_mark.line + 1, node.start_mark.column + 1)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> YamlMapping:  # type: ignore[override]
        result = YamlMapping()
        result.position = self._position(node)
        result.key_positions = {}
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise RuleFileError(self._position(key_node), f"key {key!r} must be a string")
            if key in result:
                raise RuleFileError(self._position(key_node), f"duplicate key {key!r}")
            result[key] = self.construct_object(value_node, deep=True)
            result.key_positions[key] = self._position(key_node)
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> YamlSequence:
        result = YamlSequence(self.construct_object(child, deep=True) for child in node.value)
        result.position = self._position(node)
        result.item_positions = [self._position(child) for child in node.value]
        return result


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    lambda loader, node: loader.construct_mapping(node),  # type: ignore[arg-type]
)
_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
    lambda loader, node: loader.construct_sequence(node),  # type: ignore[arg-type]
)


def load_yaml(text: str, path: str) -> Any:
    """Parse one YAML document with positions; YAML errors become :class:`RuleFileError`."""
    loader = _Loader(text)
    loader.source_path = path
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Position(path, mark.line + 1, mark.column + 1) if mark else path
        raise RuleFileError(where, f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise RuleFileError(path, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def read_yaml_file(path: Path) -> Any:
    """Read and parse a rule file; unreadable or non-UTF-8 files are reported plainly."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RuleFileError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise RuleFileError(str(path), f"cannot read: {exc.strerror or exc}") from None
    return load_yaml(text, str(path))


def position_of(root: Any, loc: Sequence[str | int], fallback: Position | str) -> Position | str:
    """The position of the node at ``loc`` (keys and indexes) below ``root``, or its nearest parent."""
    best: Position | str = getattr(root, "position", fallback)
    node = root
    for part in loc:
        if isinstance(node, YamlMapping) and isinstance(part, str) and part in node:
            best = node.key_positions.get(part, best)
            node = node[part]
        elif isinstance(node, YamlSequence) and isinstance(part, int) and 0 <= part < len(node):
            best = node.item_positions[part]
            node = node[part]
        else:
            break
    return best
