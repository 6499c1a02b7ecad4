"""Retroactive re-screening: who already dealt with addresses OFAC has just designated?

``sentinel rescreen --since 365d --old OLD_LIST`` takes the addresses on the current
OFAC list (``--new``, default: the shipped ``rules/lists/ofac-sdn.csv``) that were not on
the old one, replays the ``deposits`` and ``withdrawals`` topics from that time (Kafka
keeps the history; the start offsets come from offsets-for-times), and raises one
``sanctions`` alert per affected event, marked ``retroactive: true`` with the entity's
designation date, on ``freeze-alerts``. Alert ids are deterministic and the alerts
already on the topic are skipped, so a second run adds nothing. The same works on a
JSONL file for exchanges whose topic retention is shorter than the look-back.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from streams.core.alerts import FreezeAlert
from streams.core.events import Clock, parse_moment
from streams.core.lines import line_time_and_account
from streams.core.lists import AddressList, ListEntry, ListInfo, read_entries, read_meta
from streams.core.ofac import ImportReport, read_sdn_advanced
from streams.core.rules.durations import parse_duration_ms
from streams.core.rules.engine import Ruleset
from streams.core.rules.loader import RuleSource, compile_ruleset
from streams.core.rules.source import load_yaml
from streams.core.screening import Record, Screening
from streams.core.shards import in_processes, share_of

RULE_ID = "ofac-retroactive"
RULE_VERSION = "1.0.0"
#: The id of the list of added addresses inside the retroactive ruleset.
ADDED_LIST_ID = "ofac_sdn_added"


def load_sdn_list(path: Path) -> AddressList:
    """An OFAC list from our CSV (with its sidecar) or straight from an SDN Advanced XML file."""
    if path.name.endswith((".xml", ".xml.bz2", ".xml.gz")):
        return report_to_list(read_sdn_advanced(path), f"SDN Advanced XML {path.name}")
    meta = read_meta(path) or {}
    rows = read_entries(
        path,
        "csv",
        label_column="sdn_primary_name",
        attribute_columns=("sdn_profile_id", "programs", "entry_event_date"),
    )
    info = ListInfo(
        "ofac_sdn",
        "OFAC SDN list",
        "sanctioned",
        str(meta.get("source", path.name)),
        str(meta.get("version", "unknown")),
    )
    return AddressList.from_entries(info, rows)


def report_to_list(report: ImportReport, source: str) -> AddressList:
    """An imported SDN file as an address list (entity names as labels)."""
    entries = [
        ListEntry(
            a.address,
            a.name,
            (("sdn_profile_id", a.profile_id), ("programs", ";".join(a.programs)), ("entry_event_date", a.entry_date)),
        )
        for a in report.addresses
    ]
    info = ListInfo("ofac_sdn", "OFAC SDN list", "sanctioned", source, report.issue_date)
    return AddressList.from_entries(info, entries)


def added_between(old: AddressList, new: AddressList) -> AddressList:
    """The entries of ``new`` whose address is not on ``old``."""
    added = [new.entries[key] for key in new.entries.keys() - old.entries.keys()]
    return AddressList.from_entries(new.info, sorted(added, key=lambda e: e.address))


@dataclass
class RescreenReport:
    """What a re-screen read and found."""

    events: int = 0
    #: Events that named an added address in some spelling, and so were screened in full.
    screened: int = 0
    #: Of those, the ones that are not valid events (dead-lettered when they were screened live).
    invalid: int = 0
    seconds: float = 0.0
    alerts: list[FreezeAlert] = field(default_factory=list)
    already_alerted: int = 0
    produced: int = 0

    def table(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        lines = [
            f"read {self.events} events in {self.seconds:.1f}s: {rate:,.0f} events/s; {self.screened} named an added "
            f"address and were screened ({self.invalid} of them invalid, skipped)",
            f"found {len(self.alerts)} event(s) touching newly designated addresses in "
            f"{len({a.account_id for a in self.alerts})} account(s); {self.already_alerted} already alerted, "
            f"{self.produced} new alert(s) written",
        ]
        for alert in self.alerts:
            lines.append(f"  {alert.account_id}: {alert.summary}")
        return "\n".join(lines)


#: The rule ``sentinel rescreen`` runs: an ordinary rule, over the addresses an update added.
#: Its id and version are those of every retroactive alert ever written, so alert ids stay
#: the same from one release to the next and a second run adds nothing.
RETROACTIVE_RULE = f"""
required_engine_version: 1
rules:
  - id: {RULE_ID}
    version: {RULE_VERSION}
    name: OFAC designation found after the fact
    description: >
      A deposit from, or a withdrawal to, an address that OFAC designated after the event
      was screened; found by `sentinel rescreen` over the addresses a list update added.
    typology: sanctions
    severity: critical
    action: freeze
    mode: enforce
    events: [deposit, withdrawal]
    suppress: none
    condition:
      any:
        - all: [{{field: type, eq: deposit}}, {{field: from_addresses, in_list: {ADDED_LIST_ID}}}]
        - all: [{{field: type, eq: withdrawal}}, {{field: to_address, in_list: {ADDED_LIST_ID}}}]
    summary: >-
      Retroactive: {{type}} of {{amount}} {{asset}} on {{chain}}, account {{account_id}}, counterparty
      {{matched_label}} (SDN, {{matched_programs}}; {{matched_address}}), designated {{matched_listed_on}},
      on the {{list_name}} of {{list_version}}: freeze.
"""


def retroactive_ruleset(added: AddressList) -> Ruleset:
    """The retroactive rule compiled over ``added`` (alerts marked ``retroactive: true``)."""
    source = RuleSource(Path("<sentinel rescreen>"), load_yaml(RETROACTIVE_RULE, "<sentinel rescreen>"), b"")
    listed = AddressList(replace(added.info, id=ADDED_LIST_ID), added.entries, added.digest, added.duplicates)
    return compile_ruleset([source], {ADDED_LIST_ID: listed}, retroactive=True)


class Rescreener:
    """Screens past records against the newly added addresses only, by the one screening path."""

    def __init__(self, added: AddressList, topic_types: Mapping[str, str] | None = None, *, clock: Clock) -> None:
        self.added = added
        self._spellings = NamedAddresses(added)
        self.ruleset = retroactive_ruleset(added)
        self.version = self.ruleset.version
        self._screening = Screening(self.ruleset, topic_types, clock=clock)

    def screen_all(self, records: Iterable[Record], report: RescreenReport, *, jobs: int = 1) -> None:
        """Screen ``records`` into ``report``: each affected event once, invalid ones counted.

        With ``jobs`` above 1 the accounts are shared out over that many processes
        (:mod:`streams.core.shards`); the report and the order of its alerts are those of one.
        """
        started = time.perf_counter()
        if jobs <= 1:
            events, screened, invalid, found = self._screen(enumerate(records))
        else:
            given = list(records)
            shares: list[list[int]] = [[] for _ in range(jobs)]
            might_name = self._spellings.might_be_named
            for position, record in enumerate(given):
                if not might_name(record.value):
                    continue  # read here, as one process would: only what it would screen is shared out
                account = record.key if record.key is not None else line_time_and_account(record.value or b"")[1]
                shares[share_of(account, jobs)].append(position)
            done = in_processes(jobs, lambda number: self._screen((p, given[p]) for p in shares[number]))
            events = len(given)
            screened, invalid = sum(d[1] for d in done), sum(d[2] for d in done)
            found = list(heapq.merge(*(d[3] for d in done), key=lambda item: item[0]))
        report.events += events
        report.screened += screened
        report.invalid += invalid
        report.alerts.extend(alert for _, alert in found)
        report.seconds += time.perf_counter() - started

    def _screen(self, records: Iterable[tuple[int, Record]]) -> tuple[int, int, int, list[tuple[int, FreezeAlert]]]:
        """Events read, screened in full, invalid ones, and the alerts found with the position of their record."""
        events = screened = invalid = 0
        found: list[tuple[int, FreezeAlert]] = []
        might_name = self._spellings.might_be_named
        for position, record in records:
            events += 1
            if not might_name(record.value):
                continue  # names none of the added addresses: the rule cannot match it
            screened += 1
            outcome = self._screening.screen_one(record)
            if outcome.dead_letter is not None:
                invalid += 1  # dead-lettered when it was screened live
            # A resent event is a duplicate: no second alert.
            found.extend((position, alert) for alert in outcome.alerts)
        return events, screened, invalid, found


class NamedAddresses:
    """A quick look at a record's raw bytes: could it name one of ``added``?

    Most records name none of the few addresses a list update adds, and a rescreen would
    spend nearly all its time validating them only to find that. A record can name an
    added address only if one of its JSON strings is that address, up to case
    (:func:`streams.core.chains.normalise_address` changes nothing but the case of an
    address, and surrounding space, which no valid event has). Without a backslash in the
    record, its strings are exactly some of the pieces between its double quotes, so the
    look is: split on quotes, lower-case (ASCII, as the normalisation does), and meet a set.
    A record with a backslash (an escape may spell an address differently) is always
    screened; a tombstone (no value) names nothing. So the look is never wrong about a
    record the rule matches; every record it lets through is screened by the engine as before.
    """

    def __init__(self, added: AddressList) -> None:
        self._lowered = frozenset(key.encode().lower() for key in added.entries)

    def might_be_named(self, value: bytes | None) -> bool:
        """False only if ``value`` certainly names none of the added addresses."""
        if value is None:
            return False  # a tombstone is no event, and names nothing
        if b"\\" in value:
            return True
        return not self._lowered.isdisjoint(value.lower().split(b'"'))


def parse_since(text: str, now: float) -> float:
    """``365d``/``12h`` back from ``now``, or an RFC 3339 date or time; Unix seconds."""
    try:
        return now - parse_duration_ms(text) / 1000
    except ValueError:
        pass
    try:
        return parse_moment(text).timestamp()
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (365d) nor a date (2025-03-04)") from None


def file_events(path: Path) -> Iterator[Record]:
    """The lines of a JSONL file of typed events, as records of no topic."""
    with path.open("rb") as handle:
        number = 0
        for line in handle:
            if line.strip():
                number += 1
                yield Record(str(path), 0, number, None, line.rstrip(b"\n"))


def default_until(new_list: Path, now: float) -> float:
    """When the new list went live: its import time, or now."""
    meta = read_meta(new_list) if new_list.suffix == ".csv" else None
    if meta and isinstance(meta.get("imported_at"), int | float):
        return float(meta["imported_at"])
    return now
