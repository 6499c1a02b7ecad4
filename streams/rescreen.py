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

import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from streams.alerts import FreezeAlert, alert_id_for
from streams.chains import normalise_address
from streams.events import Event, EventError, format_timestamp, parse_event
from streams.lists import AddressList, ListEntry, ListInfo, read_entries, read_meta
from streams.ofac import ImportReport, read_sdn_advanced
from streams.security import client_options
from streams.settings import Settings

RULE_ID = "ofac-retroactive"
RULE_VERSION = "1.0.0"


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
    invalid: int = 0
    seconds: float = 0.0
    alerts: list[FreezeAlert] = field(default_factory=list)
    already_alerted: int = 0
    produced: int = 0

    def table(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        lines = [
            f"read {self.events} events ({self.invalid} invalid, skipped) in {self.seconds:.1f}s: {rate:,.0f} events/s",
            f"found {len(self.alerts)} event(s) touching newly designated addresses in "
            f"{len({a.account_id for a in self.alerts})} account(s); {self.already_alerted} already alerted, "
            f"{self.produced} new alert(s) written",
        ]
        for alert in self.alerts:
            lines.append(f"  {alert.account_id}: {alert.summary}")
        return "\n".join(lines)


class Rescreener:
    """Matches events against the newly added addresses only."""

    def __init__(self, added: AddressList) -> None:
        self.added = added
        digest = hashlib.sha256(f"{added.info.version}\0{added.digest}".encode()).hexdigest()[:12]
        self.version = f"rescreen-{digest}"

    def screen(self, event: Event) -> FreezeAlert | None:
        field_name = "from_addresses" if event.type == "deposit" else "to_address"
        hits = []
        for address in event.addresses(field_name):
            entry = self.added.get(normalise_address(address))
            if entry is not None:
                hits.append((address, entry))
        if not hits:
            return None
        address, entry = hits[0]
        attributes = dict(entry.attributes)
        designated = attributes.get("entry_event_date") or self.added.info.version
        direction = "from" if event.type == "deposit" else "to"
        summary = (
            f"Retroactive: {event.type} of {event.amount} {event.asset} on {event.chain} "
            f"{'into' if event.type == 'deposit' else 'from'} account {event.account_id} {direction} "
            f"{entry.label or 'a listed holder'} (SDN, {attributes.get('programs') or 'no program given'}; "
            f"{address}), designated {designated}, on the OFAC SDN list of {self.added.info.version}: freeze."
        )
        return FreezeAlert(
            alert_id=alert_id_for(RULE_ID, RULE_VERSION, [event.event_id]),
            rule_id=RULE_ID,
            rule_version=RULE_VERSION,
            ruleset_version=self.version,
            typology="sanctions",
            severity="critical",
            action="freeze",
            mode="enforce",
            account_id=event.account_id,
            event_ids=[event.event_id],
            event_time=event.timestamp,
            detected_at=datetime.now(UTC),
            summary=summary,
            retroactive=True,
            evidence={
                "event": {
                    "type": event.type,
                    "event_id": event.event_id,
                    "timestamp": format_timestamp(event.timestamp),
                    "chain": event.chain,
                    "asset": event.asset,
                    "amount": str(event.amount),
                },
                "designation_date": designated,
                "matches": [
                    {"field": field_name, "address": a, "list": self.added.info.as_evidence(), "entry": e.as_evidence()}
                    for a, e in hits
                ],
            },
        )

    def screen_all(self, raw_events: Iterable[tuple[bytes | None, str | None]], report: RescreenReport) -> None:
        started = time.perf_counter()
        seen: set[str] = set()
        for raw, expected in raw_events:
            report.events += 1
            try:
                event = parse_event(raw, expected)  # type: ignore[arg-type]
            except EventError:
                report.invalid += 1  # dead-lettered when it was screened live
                continue
            alert = self.screen(event)
            if alert is not None and alert.alert_id not in seen:
                seen.add(alert.alert_id)
                report.alerts.append(alert)
        report.seconds += time.perf_counter() - started


def parse_since(text: str, now: float | None = None) -> float:
    """``365d``/``12h`` back from now, or an RFC 3339 date or time; Unix seconds."""
    from streams.rules.durations import parse_duration_ms

    moment = now if now is not None else time.time()
    try:
        return moment - parse_duration_ms(text) / 1000
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (365d) nor a date (2025-03-04)") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def file_events(path: Path) -> Iterator[tuple[bytes | None, str | None]]:
    """The lines of a JSONL file of typed events."""
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield line.rstrip(b"\n"), None


async def _records_between(
    settings: Settings, topics: Iterable[str], since: float, until: float | None
) -> list[ConsumerRecord]:
    """Every record of ``topics`` with a broker timestamp in [since, until) (``None``: to the end),
    the bounds found with offsets-for-times."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    out: list[ConsumerRecord] = []
    try:
        partitions = [TopicPartition(topic, p) for topic in topics for p in await _partitions(settings, topic)]
        if not partitions:
            return out
        consumer.assign(partitions)
        starts = await consumer.offsets_for_times({tp: int(since * 1000) for tp in partitions})
        ends = await consumer.end_offsets(partitions)
        stops = (
            await consumer.offsets_for_times({tp: int(until * 1000) for tp in partitions}) if until is not None else {}
        )
        bounds = {}
        for tp in partitions:
            start = starts[tp].offset if starts.get(tp) else ends[tp]
            stop = stops[tp].offset if stops.get(tp) else ends[tp]
            if start < stop:
                bounds[tp] = stop
                consumer.seek(tp, start)
        while bounds:
            batches = await consumer.getmany(*bounds.keys(), timeout_ms=1000)
            for tp, records in batches.items():
                out.extend(record for record in records if record.offset < bounds.get(tp, -1))
                if await consumer.position(tp) >= bounds.get(tp, 0):
                    bounds.pop(tp, None)
    finally:
        await consumer.stop()
    return out


async def topic_events(settings: Settings, since: float, until: float) -> list[tuple[bytes | None, str | None]]:
    """Every input record with a broker timestamp in [since, until), with the type its topic implies."""
    types = settings.topic_event_types
    records = await _records_between(settings, types, since, until)
    return [(record.value, types[record.topic]) for record in records]


async def _partitions(settings: Settings, topic: str) -> list[int]:
    """The partitions of ``topic`` (none if it does not exist)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for d in described if d.get("error_code", 0) == 0 for p in d.get("partitions", []))


async def existing_alert_ids(settings: Settings, since: float) -> set[str]:
    """Ids of retroactive alerts already on the alert topic (written since ``since``)."""
    ids: set[str] = set()
    for record in await _records_between(settings, [settings.alerts_topic], since, None):
        try:
            alert = orjson.loads(record.value or b"{}")
        except orjson.JSONDecodeError:
            continue
        if alert.get("rule_id") == RULE_ID:
            ids.add(alert["alert_id"])
    return ids


async def produce_alerts(settings: Settings, alerts: list[FreezeAlert]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for alert in alerts:
            await producer.send_and_wait(settings.alerts_topic, value=alert.to_json(), key=alert.key())
    finally:
        await producer.stop()


def default_until(new_list: Path) -> float:
    """When the new list went live: its import time, or now."""
    meta = read_meta(new_list) if new_list.suffix == ".csv" else None
    if meta and isinstance(meta.get("imported_at"), int | float):
        return float(meta["imported_at"])
    return time.time()
