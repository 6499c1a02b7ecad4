"""The fault-injection subset that runs in ``make test`` (``make chaos`` runs them all, longer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import scenarios, scoring
from tests.integration.helpers import project_broker

pytestmark = pytest.mark.kafka


def check(result: scoring.ScenarioResult) -> None:
    print(f"\n{scoring.HEADER}\n{result.row()}")
    assert result.expected > 0, "the input raised no alerts: the scenario tests nothing"
    assert result.lost == 0, result
    assert result.spurious == 0, result
    assert not result.problems, result.problems


def test_worker_kill_nine(kafka_bootstrap: str, broker_env: dict[str, str] | None, tmp_path: Path) -> None:
    check(scenarios.kill_nine(kafka_bootstrap, tmp_path, broker_env, kills=2, events=1200))


def test_graceful_restart(kafka_bootstrap: str, broker_env: dict[str, str] | None, tmp_path: Path) -> None:
    result = scenarios.graceful_restart(kafka_bootstrap, tmp_path, broker_env, events=1200)
    check(result)
    assert result.duplicates == 0, "a graceful stop commits what it processed: nothing is repeated"


def test_second_worker_joins_and_leaves(
    kafka_bootstrap: str, broker_env: dict[str, str] | None, tmp_path: Path
) -> None:
    """Partitions move twice; a batch fetched or screened as they move is read again, never skipped."""
    check(scenarios.rebalance(kafka_bootstrap, tmp_path, broker_env))


def test_alert_topic_refusing_produces(kafka_bootstrap: str, broker_env: dict[str, str] | None, tmp_path: Path) -> None:
    check(scenarios.produce_failing(kafka_bootstrap, tmp_path, broker_env, events=600))


def test_poison_input(kafka_bootstrap: str, broker_env: dict[str, str] | None, tmp_path: Path) -> None:
    check(scenarios.poison(kafka_bootstrap, tmp_path, broker_env, events=1200))


def test_broker_killed_and_restarted(kafka_bootstrap: str, broker_env: dict[str, str] | None, tmp_path: Path) -> None:
    if broker_env is not None:
        check(scenarios.broker_outage(kafka_bootstrap, tmp_path, broker_env, "kill", events=1200))
        return
    # KAFKA_BOOTSTRAP_SERVERS names a cluster we must not kill: use a local broker of our own.
    with project_broker("kafka-faults", allow_external=False) as (bootstrap, env):
        check(scenarios.broker_outage(bootstrap, tmp_path, env, "kill", events=1200))


def test_worker_kill_nine_with_chain_transfers(
    kafka_bootstrap: str, broker_env: dict[str, str] | None, tmp_path: Path
) -> None:
    """Exposure state, its changelog and the deposits waiting for it survive kill -9 of either worker."""
    check(scenarios.kill_nine_exposure(kafka_bootstrap, tmp_path, broker_env, kills=1, events=450))
