"""Changing rules and lists without restarting workers.

Three triggers, one rule: a new ruleset replaces the running one only if it loads
whole; otherwise the last good ruleset keeps running, the error (file, line, rule) is
logged and ``sentinel_rules_reload_total{result="failure"}`` counts it. A swap happens
between two records, so every alert names exactly one ``ruleset_version``.

- **Files**: the worker polls its rule directories (every ``SENTINEL_RELOAD_INTERVAL``
  seconds) and reloads when any file below them changes.
- **SIGHUP**: reload the rule directories now.
- **Control topic** (``sentinel-control``, compacted): ``sentinel rules publish DIR ...``
  writes a bundle of every file under the given directories, signed (see
  :mod:`streams.shell.signing`); every worker of every group reading that topic switches to
  it within about a second. Once a worker has a published bundle it runs that bundle, and
  local file changes are ignored until it restarts.

A bundle from the topic is applied only if the worker's keys verify it (or it accepts
unsigned bundles) and it is newer than the bundle it runs: a replayed older bundle, which
might lack a rule or a list entry added since, is rejected and counted with
``result="rejected"``. The publication time of the last bundle applied is kept in the
worker's data directory, so a restarted worker refuses the same replay.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.core.rules.engine import Ruleset
from streams.core.rules.loader import load_ruleset
from streams.core.rules.source import RuleFileError
from streams.shell.signing import RULESET_BUNDLE, ControlRejectedError, ControlTrust

log = logging.getLogger(__name__)

BUNDLE_KEY = b"ruleset"
#: Kafka's default record limit is 1 MiB; keep well below it after compression.
MAX_BUNDLE_BYTES = 900_000


def files_signature(paths: Sequence[str | Path]) -> str:
    """A digest of the names, sizes and modification times of every file under ``paths``."""
    digest = hashlib.sha256()
    for root in paths:
        path = Path(root)
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in candidates:
            try:
                stat = file.stat()
            except OSError:
                digest.update(f"{file}:missing".encode())
                continue
            if file.is_file():
                digest.update(f"{file}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def make_bundle(paths: Sequence[str | Path], source: str) -> bytes:
    """Every file under each rule directory, compressed, as one control-topic record."""
    files: dict[str, str] = {}
    for index, root in enumerate(paths):
        base = Path(root)
        if not base.is_dir():
            raise RuleFileError(str(base), "publish takes rule directories")
        for file in sorted(base.rglob("*")):
            if file.is_file():
                name = f"{index}/{file.relative_to(base).as_posix()}"
                files[name] = base64.b64encode(gzip.compress(file.read_bytes(), mtime=0)).decode()
    bundle = orjson.dumps({"source": source, "published_at": time.time(), "directories": len(paths), "files": files})
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise RuleFileError(
            ", ".join(map(str, paths)),
            f"the bundle is {len(bundle)} bytes, over {MAX_BUNDLE_BYTES}; ship large lists as files instead",
        )
    return bundle


def unpack_bundle(bundle: bytes, into: Path) -> list[Path]:
    """Write a bundle's files below ``into``; return its rule directories in order."""
    data: dict[str, Any] = orjson.loads(bundle)
    digest = hashlib.sha256(bundle).hexdigest()[:16]
    target = into / digest
    if target.exists():
        shutil.rmtree(target)
    for name, content in data["files"].items():
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise RuleFileError(name, "a bundle file must stay inside its directory")
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.decompress(base64.b64decode(content)))
    return [target / str(i) for i in range(int(data["directories"]))]


@dataclass
class ReloadResult:
    """What one reload attempt did."""

    ok: bool
    source: str
    version: str | None = None
    error: str | None = None
    #: Refused before loading: unsigned, wrongly signed or older than the running bundle.
    rejected: bool = False

    @property
    def outcome(self) -> str:
        """``success``, ``failure`` (did not load) or ``rejected`` (not trusted), as metrics label it."""
        return "rejected" if self.rejected else "success" if self.ok else "failure"


@dataclass(frozen=True)
class _Candidate:
    """A control-topic bundle whose signature checked out."""

    payload: bytes
    published_at: float
    digest: str
    signer: str | None


class RulesReloader:
    """Loads candidate rulesets and hands the good ones to ``install``."""

    def __init__(
        self,
        paths: Sequence[str],
        install: Callable[[Ruleset, str], None],
        *,
        on_result: Callable[[ReloadResult], None] | None = None,
        bundle_dir: Path | None = None,
        trust: ControlTrust | None = None,
        mark_file: Path | None = None,
    ) -> None:
        self.paths = list(paths)
        self._install = install
        self._on_result = on_result
        self._bundle_dir = bundle_dir or Path(os.environ.get("TMPDIR", "/tmp")) / "sentinel-bundles"  # noqa: S108
        self._signature = files_signature(self.paths)
        self._trust = trust or ControlTrust()
        self._mark_file = mark_file
        #: (publication time, digest) of the newest bundle applied: nothing older is accepted.
        self._mark: tuple[float, str] | None = _read_mark(mark_file)
        self.from_control_topic = False

    def _attempt(self, paths: Sequence[str | Path], source: str) -> ReloadResult:
        try:
            ruleset = load_ruleset(list(paths))
        except RuleFileError as exc:
            log.error("rules reload from %s failed, keeping the running ruleset: %s", source, exc)
            result = ReloadResult(False, source, error=str(exc))
        except Exception as exc:  # an unexpected failure must not take the worker down either
            log.exception("rules reload from %s failed, keeping the running ruleset", source)
            result = ReloadResult(False, source, error=f"{type(exc).__name__}: {exc}")
        else:
            self._install(ruleset, source)
            log.info("rules reloaded from %s: ruleset %s, %d rules", source, ruleset.version, len(ruleset.rules))
            result = ReloadResult(True, source, version=ruleset.version)
        return self._report(result)

    def check_files(self) -> ReloadResult | None:
        """Reload if a file under the rule directories changed since the last look."""
        signature = files_signature(self.paths)
        if signature == self._signature:
            return None
        self._signature = signature
        if self.from_control_topic:
            log.warning("rule files changed, but this worker runs the published bundle; ignoring them")
            return None
        return self._attempt(self.paths, "files")

    def reload_files(self) -> ReloadResult | None:
        """Reload the rule directories now (SIGHUP)."""
        self._signature = files_signature(self.paths)
        if self.from_control_topic:
            log.warning("SIGHUP: this worker runs the published bundle; publish to change it")
            return None
        return self._attempt(self.paths, "signal")

    def apply_latest(self, records: Sequence[bytes]) -> ReloadResult | None:
        """Switch to the newest trusted bundle among control-topic records; ``None`` if none is.

        Each untrusted record is rejected (logged, counted); of the trusted ones only the newest
        is loaded, so catching up on a topic not yet compacted loads one ruleset, not each.
        """
        candidates: list[_Candidate] = []
        for record in records:
            try:
                candidates.append(self._open(record))
            except ControlRejectedError as exc:
                self._reject(str(exc))
        if not candidates:
            return None
        newest = max(reversed(candidates), key=lambda c: c.published_at)  # a tie: the later record
        if self._mark is not None:
            published_at, digest = self._mark
            if newest.published_at < published_at or (newest.published_at == published_at and newest.digest != digest):
                return self._reject(
                    f"published at {newest.published_at:.6f}, not after the bundle this worker applied"
                    f" (published at {published_at:.6f}): a replay is refused"
                )
        try:
            directories = unpack_bundle(newest.payload, self._bundle_dir)
        except (RuleFileError, ValueError, KeyError, OSError) as exc:
            log.error("rules bundle from the control topic is unreadable: %s", exc)
            return self._report(ReloadResult(False, "control", error=f"unreadable bundle: {exc}"))
        result = self._attempt(directories, "control")
        if result.ok:
            self.from_control_topic = True
            self._mark = (newest.published_at, newest.digest)
            _write_mark(self._mark_file, self._mark)
            log.info("the bundle was signed by key %s", newest.signer or "(none: unsigned bundles are accepted)")
        return result

    def _open(self, record: bytes) -> _Candidate:
        payload, signer = self._trust.open(record, RULESET_BUNDLE)
        try:
            published_at = orjson.loads(payload)["published_at"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            raise ControlRejectedError("not a rules bundle (no publication time)") from None
        if not isinstance(published_at, int | float) or isinstance(published_at, bool):
            raise ControlRejectedError("not a rules bundle (publication time is not a number)")
        return _Candidate(payload, float(published_at), hashlib.sha256(payload).hexdigest(), signer)

    def _reject(self, reason: str) -> ReloadResult:
        log.error("rules bundle from the control topic rejected, keeping the running ruleset: %s", reason)
        return self._report(ReloadResult(False, "control", error=reason, rejected=True))

    def _report(self, result: ReloadResult) -> ReloadResult:
        if self._on_result is not None:
            self._on_result(result)
        return result


_MARK_FORMAT = "sentinel-control-mark"


def _read_mark(path: Path | None) -> tuple[float, str] | None:
    """The newest bundle a worker applied before it restarted, if it left a readable note of it."""
    if path is None or not path.exists():
        return None
    try:
        data = orjson.loads(path.read_bytes())
        if data.get("format") != _MARK_FORMAT or data.get("version") != 1:
            raise ValueError(f"format {data.get('format')!r} version {data.get('version')!r}")
        return float(data["published_at"]), str(data["digest"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring %s (%s): any signed bundle on the control topic will be accepted", path, exc)
        return None


def _write_mark(path: Path | None, mark: tuple[float, str]) -> None:
    if path is None:
        return
    note = {"format": _MARK_FORMAT, "version": 1, "published_at": mark[0], "digest": mark[1]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(note))
        temporary.replace(path)  # never a half-written note
    except OSError as exc:  # the bundle is applied all the same; only a restart's replay check is weaker
        log.warning("cannot keep the applied bundle's time in %s (%s)", path, exc)
