"""Read rule files and collect their lists, macros and rules into a :class:`Ruleset`.

The first stage of loading (as Falco's reader and collector): YAML files are read with
positions (:mod:`streams.core.rules.source`), checked against the schema
(:mod:`streams.core.rules.schema`), their lists loaded and their macros and rules collected
across files, each rule then compiled by :mod:`streams.core.rules.compiler`. Every problem is
a :class:`~streams.core.rules.source.RuleFileError` naming file, line, column and rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streams import ENGINE_VERSION
from streams.core.compact_lists import read_compact
from streams.core.errors import first_problem
from streams.core.lists import AddressList, ListEntry, ListFileError, ListInfo, read_entries, read_meta
from streams.core.rules.compiler import compile_rule
from streams.core.rules.conditions import ConditionError, MacroError, Macros
from streams.core.rules.engine import Ruleset
from streams.core.rules.kinds import CompiledRule
from streams.core.rules.schema import ListSpec, RuleFile
from streams.core.rules.source import Position, RuleFileError, YamlMapping, position_of, read_yaml_file

RULE_FILE_SUFFIXES = (".yaml", ".yml")


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """The rule files under ``paths`` (files or directories), in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in RULE_FILE_SUFFIXES and p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise RuleFileError(str(path), "no such rule file or directory")
    return found


def load_ruleset(paths: Sequence[Path | str]) -> Ruleset:
    """Read, check and compile every rule file under ``paths``.

    Raises :class:`RuleFileError` naming file, line, column and rule for the first
    problem found; a ruleset is either wholly valid or not loaded at all.
    """
    files = rule_files(Path(p) for p in paths)
    if not files:
        raise RuleFileError(", ".join(str(p) for p in paths), "no rule files (*.yaml) found")
    return compile_ruleset([RuleSource(path, read_yaml_file(path), path.read_bytes()) for path in files])


@dataclass(frozen=True)
class RuleSource:
    """One rule file as read: where it is (list files are found beside it), its parsed YAML, its bytes."""

    path: Path
    raw: Any
    content: bytes


def compile_ruleset(
    sources: Sequence[RuleSource], given_lists: Mapping[str, AddressList] | None = None, *, retroactive: bool = False
) -> Ruleset:
    """Check and compile rule files already read; ``given_lists`` are lists loaded elsewhere.

    ``retroactive`` marks every alert of the ruleset as found after the fact (``sentinel
    rescreen``). Errors are :class:`RuleFileError`, as for :func:`load_ruleset`.
    """
    digest = hashlib.sha256(f"engine={ENGINE_VERSION}".encode())
    parsed: list[tuple[Path, Any, RuleFile]] = []
    for source in sources:
        parsed.append((source.path, source.raw, _validate_file(source.path, source.raw)))
        digest.update(source.path.name.encode() + b"\0" + source.content)

    lists: dict[str, AddressList] = dict(given_lists or {})
    for loaded in lists.values():
        digest.update(f"{loaded.info.id}\0{loaded.info.version}\0{loaded.info.source}\0{loaded.digest}".encode())
    for path, raw, spec in parsed:
        for index, list_spec in enumerate(spec.lists):
            where = position_of(raw, ("lists", index, "id"), str(path))
            if list_spec.id in lists:
                raise RuleFileError(where, f"duplicate list id {list_spec.id!r}")
            loaded = lists[list_spec.id] = _load_list(path, list_spec, where)
            digest.update(f"{loaded.info.id}\0{loaded.info.version}\0{loaded.info.source}\0{loaded.digest}".encode())

    macro_bodies: dict[str, Any] = {}
    macro_origins: dict[str, tuple[Any, int, Path]] = {}
    for path, raw, spec in parsed:
        for index, macro in enumerate(spec.macros):
            if macro.id in macro_bodies:
                first = position_of(*macro_origins[macro.id][:1], ("macros", macro_origins[macro.id][1]), "")
                raise RuleFileError(
                    position_of(raw, ("macros", index), str(path)),
                    f"duplicate macro id {macro.id!r} (first defined at {first})",
                )
            macro_bodies[macro.id] = macro.condition
            macro_origins[macro.id] = (raw, index, path)
    macros = Macros(macro_bodies, lists)

    rules: list[CompiledRule] = []
    seen: dict[str, Position | str] = {}
    for path, raw, spec in parsed:
        for index, rule in enumerate(spec.rules):
            origin = position_of(raw, ("rules", index), str(path))
            if rule.id in seen:
                raise RuleFileError(origin, f"duplicate rule id (first defined at {seen[rule.id]})", rule.id)
            seen[rule.id] = origin
            try:
                rules.append(compile_rule(raw, index, rule, lists, macros, origin))
            except MacroError as exc:
                macro_raw, macro_index, macro_path = macro_origins[exc.macro_id]
                where = position_of(macro_raw, ("macros", macro_index, "condition", *exc.error.path), str(macro_path))
                raise RuleFileError(where, f"macro {exc.macro_id!r}: {exc.error.message}") from None
    # A macro no rule uses is still checked, so a broken one is found before it is used.
    for macro_id, (macro_raw, macro_index, macro_path) in macro_origins.items():
        try:
            macros.resolve(macro_id, ())
        except MacroError as exc:
            where = position_of(macro_raw, ("macros", macro_index, "condition", *exc.error.path), str(macro_path))
            raise RuleFileError(where, f"macro {macro_id!r}: {exc.error.message}") from None
        except ConditionError as exc:
            where = position_of(macro_raw, ("macros", macro_index, "condition"), str(macro_path))
            raise RuleFileError(where, f"macro {macro_id!r}: {exc.message}") from None

    return Ruleset(
        version="rs-" + digest.hexdigest()[:12],
        rules=tuple(rules),
        lists=lists,
        files=tuple(str(source.path) for source in sources),
        retroactive=retroactive,
    )


def _validate_file(path: Path, raw: Any) -> RuleFile:
    if not isinstance(raw, YamlMapping):
        raise RuleFileError(
            str(path), "a rule file must be a YAML mapping with required_engine_version, lists and rules"
        )
    try:
        spec = RuleFile.model_validate(raw)
    except ValidationError as exc:
        problem = first_problem(exc, first_kind="extra_forbidden")
        rule_id = _rule_id_at(raw, problem.loc)
        where = position_of(raw, problem.loc, str(path))
        if problem.kind == "extra_forbidden":
            message = f"unknown key {problem.loc[-1]!r}"
        elif problem.kind == "missing":
            message = f"required key {problem.dotted!r} is missing"
        elif problem.kind == "value_error":
            message = f"{problem.dotted}: {problem.message}"
        else:
            message = f"{problem.dotted}: {problem.message} (got {_short(problem.input)})"
        raise RuleFileError(where, message, rule_id) from None
    if spec.required_engine_version > ENGINE_VERSION:
        raise RuleFileError(
            position_of(raw, ("required_engine_version",), str(path)),
            f"needs engine version {spec.required_engine_version}; this engine is version {ENGINE_VERSION}",
        )
    return spec


def _rule_id_at(raw: Any, loc: tuple[Any, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = raw.get("rules")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            value = rules[loc[1]].get("id")
            return value if isinstance(value, str) else None
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _load_list(rule_file: Path, spec: ListSpec, where: Position | str) -> AddressList:
    if (spec.file is None) == (spec.addresses is None):
        raise RuleFileError(where, f"list {spec.id!r} needs exactly one of 'file' or 'addresses'")
    source, version = spec.source, spec.version
    if spec.file is not None and (source is None or version is None):
        # An imported list (e.g. `sentinel lists import-ofac`) says what it is in a sidecar.
        meta = read_meta(rule_file.parent / spec.file) or {}
        source = source or meta.get("source")
        version = version or meta.get("version")
    if not source or not version:
        raise RuleFileError(
            where, f"list {spec.id!r} needs 'source' and 'version' (or a {spec.file or 'FILE'}.meta.json beside it)"
        )
    info = ListInfo(spec.id, spec.name, spec.category, str(source), str(version))
    if spec.addresses is not None:
        return AddressList.from_entries(info, (ListEntry(a, spec.entity) for a in spec.addresses))
    path = (rule_file.parent / spec.file).resolve() if spec.file else rule_file
    if (spec.format or path.suffix.lstrip(".").lower()) == "txt":
        compact = read_compact(path, spec.entity)
        if compact is not None:
            return AddressList(info, compact, compact.digest(), compact.duplicates)
    try:
        entries = read_entries(
            path,
            spec.format,
            address_column=spec.address_column,
            label_column=spec.label_column,
            attribute_columns=tuple(spec.attribute_columns),
        )
        if spec.entity is not None:
            # A cluster: every address belongs to the one entity unless its own label says otherwise.
            entries = (ListEntry(e.address, e.label or spec.entity, e.attributes) for e in entries)
        return AddressList.from_entries(info, entries)
    except ListFileError as exc:
        raise RuleFileError(where, f"list {spec.id!r}: {exc}") from None
