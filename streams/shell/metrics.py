"""Prometheus metrics of the worker (see docs/metrics.md).

One prefix (``sentinel_``), base units, ``_total`` on counters, and never an account or
address in a label: label values come from small fixed sets (topics, rule ids, reason
codes) so the number of series stays bounded.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram, Info

from streams import __version__
from streams.core.events import parse_moment

if TYPE_CHECKING:
    from streams.core.rules.engine import Ruleset

log = logging.getLogger(__name__)

# Milliseconds matter at the low end (broker → alert), minutes at the high end
# (events that reach us late, or a backlog being drained).
LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    3600.0,
)

EVENTS = Counter(
    "sentinel_events_consumed_total",
    "Input records consumed, by topic and result (clean, alerted, duplicate, dead_lettered).",
    ["topic", "result"],
)
ALERTS = Counter(
    "sentinel_alerts_total",
    "Alerts produced to the alert topic, by rule and its classification.",
    ["rule_id", "typology", "severity", "action", "mode"],
)
DEAD_LETTERS = Counter(
    "sentinel_dead_letters_total",
    "Records written to the dead-letter topic, by reason code.",
    ["topic", "reason"],
)
EVENT_TO_ALERT = Histogram(
    "sentinel_event_to_alert_seconds",
    "Seconds from the event's own timestamp to the alert acknowledged by the broker.",
    buckets=LATENCY_BUCKETS,
)
BROKER_TO_ALERT = Histogram(
    "sentinel_broker_to_alert_seconds",
    "Seconds from the input record's broker timestamp to the alert acknowledged by the broker.",
    buckets=LATENCY_BUCKETS,
)
PRODUCE_RETRIES = Counter(
    "sentinel_produce_retries_total",
    "Failed attempts to produce an alert or dead-letter record that were retried.",
    ["topic"],
)
RULES_LOADED = Gauge("sentinel_rules_loaded", "Enabled rules in the running ruleset.")
RULES_RELOADS = Counter(
    "sentinel_rules_reload_total",
    "Attempts to replace the running ruleset, by result (success, failure: did not load, rejected: an untrusted"
    " or replayed control-topic bundle) and source (files, signal, control).",
    ["result", "source"],
)
RULESET_LOADED_AT = Gauge(
    "sentinel_ruleset_loaded_timestamp_seconds", "When the running ruleset was installed (Unix time)."
)
LIST_ENTRIES = Gauge("sentinel_list_entries", "Distinct addresses on each loaded list.", ["list_id"])
LIST_CHANGES = Counter(
    "sentinel_list_changes_total", "Addresses added to or removed from a list by reloads.", ["list_id", "change"]
)
LIST_VERSION_TIME = Gauge(
    "sentinel_list_version_timestamp_seconds",
    "The date a list's version names (e.g. the SDN issue date), when it is a date (Unix time).",
    ["list_id"],
)
RULESET = Info("sentinel_ruleset", "The running ruleset.")
BUILD = Info("sentinel_build", "Version of the running worker.")
BUILD.info({"version": __version__})
LATE_EVENTS = Counter(
    "sentinel_late_events_total",
    "Events older than a stateful rule's late tolerance for their account; they did not enter its state.",
    ["rule_id"],
)
STATE_EVICTIONS = Counter(
    "sentinel_state_evictions_total",
    "Entries pushed out of a rule's per-account state by its max_state bound (oldest first).",
    ["rule_id"],
)
ALERTS_EXCEPTED = Counter(
    "sentinel_alerts_excepted_total",
    "Findings that matched an exception written in the rule file and raised no alert.",
    ["rule_id", "exception_id"],
)
ALERTS_ALLOWLISTED = Counter(
    "sentinel_alerts_allowlisted_total",
    "Findings covered by an allowlist entry (`sentinel allow`) that raised no alert.",
    ["rule_id"],
)
ALLOWLIST_CHANGES = Counter(
    "sentinel_allowlist_changes_total",
    "Allowlist changes read from the allowlist topic: applied, or rejected (unsigned, bad signature, malformed).",
    ["result"],
)
ALERTS_SUPPRESSED = Counter(
    "sentinel_alerts_suppressed_total",
    "Findings within a rule's suppression period for their account.",
    ["rule_id"],
)


class PrometheusObserver:
    """Counts what the engine holds back (see :class:`streams.core.rules.observer.EngineObserver`)."""

    def late(self, rule_id: str) -> None:
        LATE_EVENTS.labels(rule_id).inc()

    def evicted(self, rule_id: str, count: int) -> None:
        STATE_EVICTIONS.labels(rule_id).inc(count)

    def excepted(self, rule_id: str, exception_id: str) -> None:
        ALERTS_EXCEPTED.labels(rule_id, exception_id).inc()

    def allowlisted(self, rule_id: str, entry_id: str, event_id: str) -> None:
        ALERTS_ALLOWLISTED.labels(rule_id).inc()
        # The entry id goes to the log, not a label: entries come and go, labels stay forever.
        log.info("finding of %s on event %s allowlisted by entry %s: no alert", rule_id, event_id, entry_id)

    def suppressed(self, rule_id: str) -> None:
        ALERTS_SUPPRESSED.labels(rule_id).inc()

    def evaluated(self, seconds: float) -> None:
        EVALUATION_SECONDS.observe(seconds)


EVALUATION_SECONDS = Histogram(
    "sentinel_rule_evaluation_seconds",
    "Seconds to evaluate the ruleset against one record (parse excluded).",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
CONSUMER_LAG = Gauge(
    "sentinel_consumer_lag_records",
    "Records not yet committed: high-water mark minus committed offset, per input partition.",
    ["topic", "partition"],
)
REBALANCES = Counter("sentinel_rebalances_total", "Consumer group rebalances this worker took part in.")
STATE_KEYS = Gauge("sentinel_state_keys", "Accounts with rule state held by this worker.")
EXPOSED_ADDRESSES = Gauge(
    "sentinel_exposed_addresses",
    "Addresses an exposure rule holds as exposed on this worker's partitions of chain transfers.",
)
EXPOSURE_UNREADABLE = Counter(
    "sentinel_exposure_state_unreadable_total",
    "Exposure state entries this worker could not read back from the table (left as they are).",
)
SCREENING_DECISIONS = Counter(
    "sentinel_screening_decisions_total",
    "Screening API decisions made by this worker, by kind (withdrawal, address) and decision (block, hold, allow).",
    ["kind", "decision"],
)
SCREENING_SECONDS = Histogram(
    "sentinel_screening_seconds",
    "Seconds from a screening request read to its answer, audit record acknowledged, by kind.",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SCREENING_REFUSED = Counter(
    "sentinel_screening_refused_total",
    "Screening requests answered without a decision, by HTTP status (400, 401, 403, 413, 429, 503).",
    ["status"],
)
SCREENING_ROUTED = Counter(
    "sentinel_screening_routed_total",
    "Screening requests passed to the worker that holds the account or chain, by outcome (ok, failed).",
    ["outcome"],
)
FULL_COLLECTION_SECONDS = Histogram(
    "sentinel_full_collection_seconds",
    "Seconds the worker's scheduled full garbage collections took (the worker pauses meanwhile).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
STATE_DECODED = Counter(
    "sentinel_state_decoded_total",
    "Account states decoded from the state table on use: accounts not among the decoded states the worker"
    " keeps (SENTINEL_STATE_CACHE_ACCOUNTS). Many against sentinel_events_consumed_total: the cache is too small.",
)
STATE_CACHED = Gauge(
    "sentinel_state_cached",
    "Accounts whose rule state this worker holds decoded (bounded by SENTINEL_STATE_CACHE_ACCOUNTS).",
)
STATE_EXPIRED = Counter(
    "sentinel_state_expired_total",
    "Idle accounts whose rule state was deleted (a tombstone written to the changelog) by the state sweep.",
)


def catalogue() -> str:
    """docs/metrics.md, generated from the metrics defined above (a test keeps them equal)."""
    from prometheus_client import REGISTRY

    rows = []
    for family in REGISTRY.collect():
        if not family.name.startswith("sentinel_"):
            continue
        declared = tuple(_INFO_LABELS.get(family.name) or getattr(_BY_NAME.get(family.name), "_labelnames", ()) or ())
        names = ", ".join(f"`{label}`" for label in declared)
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        rows.append(f"| `{family.name}{suffix}` | {family.type} | {names} | {family.documentation} |")
    header = (
        "# Metrics catalogue\n\n"
        "Generated from `streams/shell/metrics.py` by `python -m streams.shell.metrics > docs/metrics.md`;\n"
        "a test fails when the two differ. One prefix (`sentinel_`), base units (seconds), `_total` on\n"
        "counters, and no account or address in any label. Histograms also expose `_bucket`, `_sum` and\n"
        "`_count`; info metrics are gauges named `..._info` with value 1.\n\n"
        "| metric | type | labels | meaning |\n|---|---|---|---|\n"
    )
    return header + "\n".join(sorted(rows)) + "\n"


_INFO_LABELS = {"sentinel_ruleset": ("version", "files"), "sentinel_build": ("version",)}
_BY_NAME = {
    collector._name: collector
    for collector in [
        EVENTS,
        ALERTS,
        DEAD_LETTERS,
        EVENT_TO_ALERT,
        BROKER_TO_ALERT,
        PRODUCE_RETRIES,
        RULES_LOADED,
        RULES_RELOADS,
        RULESET_LOADED_AT,
        LIST_ENTRIES,
        LIST_CHANGES,
        LIST_VERSION_TIME,
        RULESET,
        BUILD,
        LATE_EVENTS,
        STATE_EVICTIONS,
        ALERTS_EXCEPTED,
        ALERTS_ALLOWLISTED,
        ALLOWLIST_CHANGES,
        ALERTS_SUPPRESSED,
        EVALUATION_SECONDS,
        CONSUMER_LAG,
        REBALANCES,
        STATE_KEYS,
        STATE_DECODED,
        STATE_CACHED,
        STATE_EXPIRED,
        FULL_COLLECTION_SECONDS,
        EXPOSED_ADDRESSES,
        EXPOSURE_UNREADABLE,
        SCREENING_DECISIONS,
        SCREENING_SECONDS,
        SCREENING_REFUSED,
        SCREENING_ROUTED,
    ]
}


def publish_ruleset(ruleset: Ruleset) -> None:
    """Set the gauges that describe a newly installed ruleset and its lists."""
    RULES_LOADED.set(sum(rule.spec.enabled for rule in ruleset.rules))
    RULESET.info({"version": ruleset.version, "files": str(len(ruleset.files))})
    RULESET_LOADED_AT.set_to_current_time()
    for list_id, address_list in ruleset.lists.items():
        LIST_ENTRIES.labels(list_id).set(len(address_list))
        try:
            issued = parse_moment(address_list.info.version)
            LIST_VERSION_TIME.labels(list_id).set(issued.timestamp())
        except ValueError:
            pass  # a version that is not a date


if __name__ == "__main__":
    print(catalogue(), end="")
