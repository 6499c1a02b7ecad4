"""Screening of raw input records: decode, validate, evaluate, and decide what to emit.

This is the worker's logic without the Kafka I/O, and the one path every command
screens by: it takes records as they came off a topic (or lines of a file) and returns,
for each, either the alerts to produce or the dead-letter record to write. Every record
yields exactly one outcome, so nothing consumed can be dropped silently: bad input and
any failure inside evaluation become a :class:`DeadLetter` with a reason code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from streams.core.alerts import FreezeAlert
from streams.core.allowlist import Allowlist
from streams.core.events import Clock, Event, EventError
from streams.core.inputs import parse_input
from streams.core.rules.engine import Ruleset
from streams.core.rules.exposure_rule import ExposureStore
from streams.core.rules.observer import CountingObserver, EngineObserver
from streams.core.rules.state import AccountState, DictStore, Journal, StateStore
from streams.core.transfers import InputType, Transfer

log = logging.getLogger(__name__)

#: Headers of a dead-letter record (values are UTF-8 bytes).
DLQ_HEADERS = (
    "sentinel.source.topic",
    "sentinel.source.partition",
    "sentinel.source.offset",
    "sentinel.error.class",
    "sentinel.error.reason",
    "sentinel.error.detail",
)
MAX_DETAIL = 500


@dataclass(frozen=True, slots=True)
class Record:
    """One input record as consumed (or one line of a file)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    #: Broker timestamp in seconds since the epoch, if known.
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input record that could not be screened, and why."""

    record: Record
    reason: str
    error_class: str
    detail: str

    def headers(self) -> list[tuple[str, bytes]]:
        """The original headers followed by where the record came from and what went wrong."""
        ours = (
            self.record.topic,
            str(self.record.partition),
            str(self.record.offset),
            self.error_class,
            self.reason,
            self.detail[:MAX_DETAIL],
        )
        original = [(k, v) for k, v in self.record.headers if not k.startswith("sentinel.")]
        return original + [(name, value.encode()) for name, value in zip(DLQ_HEADERS, ours, strict=True)]


@dataclass(slots=True)
class Outcome:
    """What one record produced: alerts (possibly none), or a dead letter."""

    record: Record
    #: The parsed input: a ledger event, or a chain transfer.
    event: Event | Transfer | None = None
    alerts: list[FreezeAlert] = field(default_factory=list)
    dead_letter: DeadLetter | None = None
    #: The event's id was already screened for this account (a ledger resend): no alerts.
    duplicate: bool = False
    #: Records to pass on with the outputs, as (topic, key, value): a deposit's exposure
    #: check for the worker that holds its chain's exposure (see streams.shell.exposure_side).
    forwards: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    @property
    def result(self) -> str:
        """clean, alerted, duplicate or dead_lettered (the metric label)."""
        if self.dead_letter is not None:
            return "dead_lettered"
        if self.duplicate:
            return "duplicate"
        return "alerted" if self.alerts else "clean"


def _check_key(key: bytes | None, event: Event) -> None:
    """Input records must be keyed by account: per-account order and state depend on it."""
    if key is None:
        raise EventError("missing_key", "record has no key; input topics are keyed by account_id")
    if key != event.account_id.encode():
        shown = key[:40].decode(errors="replace")
        raise EventError("key_mismatch", f"record key {shown!r} is not the event's account_id")


#: How long (event time) and how many event ids per account are remembered to drop resends.
DEDUPE_WINDOW_MS = 24 * 3_600_000
DEDUPE_MAX_IDS = 10_000


class Screening:
    """Turns records into outcomes with one ruleset: the one screening path.

    The worker, ``backtest``, ``rules test`` and ``rescreen`` all call :meth:`screen_one`
    (or :meth:`screen`, a loop over it), so a rule gives the same answer live and on a
    file by construction. ``topic_types`` maps each input topic to the event type it
    carries; a topic not in the map carries mixed events, each with its own ``type``.
    ``state`` keeps windows and sequences across records (a dict by default; a Faust
    table in the worker). ``clock`` says what time it is: it stamps ``detected_at`` and
    bounds how far in the future an event may be; the core reads no clock of its own.
    """

    def __init__(
        self,
        ruleset: Ruleset,
        topic_types: Mapping[str, str] | None = None,
        *,
        clock: Clock,
        state: StateStore | None = None,
        observer: EngineObserver | None = None,
        allowlist: Allowlist | None = None,
        exposure: ExposureStore | None = None,
    ) -> None:
        self.ruleset = ruleset
        #: The exposure rules' graphs, fed by chain transfers (see streams.core.exposure).
        self.exposure = exposure if exposure is not None else ExposureStore()
        #: Replaced whole (between two records) when an allowlist change arrives.
        self.allowlist = allowlist if allowlist is not None else Allowlist()
        self.topic_types = dict(topic_types or {})
        self.clock = clock
        self.state: StateStore = state if state is not None else DictStore()
        self.observer: EngineObserver = observer if observer is not None else CountingObserver()
        self._journal = Journal()

    @property
    def state_horizon_ms(self) -> int:
        """How long after an account's latest event its state can still change a result.

        The longest of the rules' horizons and the resend-dedupe window: an account whose
        latest event is older than this (in event time) can have its document deleted,
        and an event that arrives later finds the same results without it
        (see :func:`streams.core.rules.state.latest_event_ms`).
        """
        return max(DEDUPE_WINDOW_MS, self.ruleset.state_horizon_ms)

    def screen(self, records: Iterable[Record]) -> list[Outcome]:
        """One outcome per record, in order."""
        return [self.screen_one(record) for record in records]

    def screen_one(self, record: Record) -> Outcome:
        """Decode, validate and evaluate one record; never raises."""
        outcome = self._parse(record)
        if outcome.event is not None:
            self._evaluate(outcome, outcome.event)
        return outcome

    def _parse(self, record: Record) -> Outcome:
        """Decode and validate ``record``; an invalid one gets its dead letter."""
        expected: InputType | None = self.topic_types.get(record.topic)  # type: ignore[assignment]
        try:
            event = parse_input(record.value, expected, self.clock(), token_info=self.ruleset.token_info)
            if expected is not None and not isinstance(event, Transfer):
                _check_key(record.key, event)
        except EventError as exc:
            return Outcome(record, dead_letter=DeadLetter(record, exc.reason, "EventError", exc.detail))
        return Outcome(record, event)

    def _evaluate(self, outcome: Outcome, event: Event | Transfer) -> None:
        """Fill in the alerts of a parsed outcome; a failure becomes its dead letter.

        The account's state is changed in place. If evaluation fails half way, the changes
        are undone from the journal, so a bad record leaves no partial state.
        """
        record = outcome.record
        if isinstance(event, Transfer):
            self._observe(outcome, event)
            return
        try:
            doc = self.state.account(event.account_id, record.partition)
        except ValueError as exc:  # durable state this worker cannot read (a newer format)
            detail = f"the account's rule state cannot be read: {exc}"
            outcome.dead_letter = DeadLetter(record, "state_unreadable", type(exc).__name__, detail)
            return
        journal = self._journal
        started = time.perf_counter()  # a measurement for the observer, not a clock the result depends on
        try:
            if _seen_before(event, doc, journal):
                outcome.duplicate = True
            else:
                outcome.alerts = self.ruleset.evaluate_event(
                    event, doc, self.clock, self.observer, journal, self.allowlist, self.exposure
                )
            journal.clear()
        except Exception as exc:  # a bug or a bad rule must not stop screening of other records
            log.exception("evaluation failed for %s[%d]@%d", record.topic, record.partition, record.offset)
            journal.rollback()
            detail = f"{type(exc).__name__} while evaluating rules: {exc}"
            outcome.dead_letter = DeadLetter(record, "evaluation_error", type(exc).__name__, detail)
        self.observer.evaluated(time.perf_counter() - started)

    def _observe(self, outcome: Outcome, transfer: Transfer) -> None:
        """A chain transfer feeds the exposure rules; a failure becomes its dead letter."""
        try:
            outcome.alerts = self.ruleset.observe_transfer(
                transfer, self.exposure, self.clock, self.observer, self.allowlist
            )
        except Exception as exc:  # as for events: one bad record must not stop the others
            log.exception("exposure update failed for %s@%d", outcome.record.topic, outcome.record.offset)
            detail = f"{type(exc).__name__} while following the transfer: {exc}"
            outcome.dead_letter = DeadLetter(outcome.record, "evaluation_error", type(exc).__name__, detail)


def _undo_seen(doc: AccountState, before: tuple[dict[str, int], str, int | None]) -> None:
    seen, event_id, latest = before
    seen.pop(event_id, None)
    doc.seen, doc.latest = seen, latest


def _seen_before(event: Event, doc: AccountState, journal: Journal) -> bool:
    """Whether this account already had an event with this id (and remember it if not)."""
    seen = doc.seen
    if event.event_id in seen:
        return True
    journal.record(_undo_seen, doc, (seen, event.event_id, doc.latest))
    t = event.epoch_ms
    seen[event.event_id] = t
    if doc.latest is None or t > doc.latest:
        doc.latest = t
    # Ids are kept in arrival order, which is nearly time order: a look at the first one
    # (O(1)) tells whether pruning, which is O(n), is due. Pruning makes a new dict, so the
    # journal's reference to the old one is all an undo needs.
    if len(seen) > DEDUPE_MAX_IDS or next(iter(seen.values())) < t - DEDUPE_WINDOW_MS:
        newest = max(seen.values())
        kept = sorted((v, k) for k, v in seen.items() if v >= newest - DEDUPE_WINDOW_MS)
        doc.seen = {k: v for v, k in kept[-DEDUPE_MAX_IDS:]}  # oldest first, as the check above needs
    return False
