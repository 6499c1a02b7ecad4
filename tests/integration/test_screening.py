"""The screening API on the real broker: decisions before the funds leave, the alert ids the stream then gives.

One worker answers the single-worker checks; two workers of one group show a request for
an account the other holds routed there (Faust's table router) and answered from its state.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.shell.settings import Settings
from tests.factories import CLEAN_EVM, SDN_TRON, deposit, raw, withdrawal
from tests.integration.helpers import (
    WorkerProcess,
    collect,
    free_port,
    isolated_settings,
    prepare_topics,
    produce,
    start_worker,
)

pytestmark = pytest.mark.kafka
TOKEN = "payments-token-0123456789abcdef"


def call(url: str, data: bytes | None = None, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    """One request; its status and JSON body (4xx and 5xx included)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, orjson.loads(refused.read())


def body(**changes: Any) -> bytes:
    event = withdrawal(**changes)
    event.pop("type")
    return raw(event)


def api_settings(bootstrap: str) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return isolated_settings(
        bootstrap,
        suffix,
        screening_port=free_port(),
        screening_tokens=f"payments:{TOKEN}",
        screening_decisions_topic=f"screening-decisions-{suffix}",
    )


def ready(worker_settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker_settings.metrics_port}/readyz", timeout=2) as r:
            return bool(orjson.loads(r.read())["ready"])
    except (urllib.error.URLError, OSError):
        return False


def wait_until(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def one_worker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    settings = api_settings(kafka_bootstrap)
    asyncio.run(prepare_topics(settings))
    worker = start_worker(settings, tmp_path_factory.mktemp("screening"))
    wait_until(lambda: ready(settings), "the worker to be ready")
    yield settings, f"http://127.0.0.1:{settings.screening_port}"
    assert worker.stop() == 0, worker.log()[-3000:]


def test_decisions_before_the_stream_and_the_alert_ids_it_then_gives(one_worker: tuple[Settings, str]) -> None:
    settings, api = one_worker
    screen = f"{api}/v1/screen/withdrawal"
    # A withdrawal to an OFAC address is blocked; the stream then raises the alert announced.
    status, ofac = call(screen, body(event_id="w-ofac", account_id="acct-ofac", to_address=SDN_TRON))
    assert status == 200 and ofac["decision"] == "block", ofac
    # A clean one is allowed.
    assert call(screen, body(event_id="w-clean", account_id="acct-clean"))[1]["decision"] == "allow"
    # A deposit of 10,000 USD reaches the account's state through the stream.
    dep = deposit(event_id="d-pt", account_id="acct-pt", usd_value="10000.00", timestamp="2026-11-27T06:00:00Z")
    asyncio.run(produce(settings.kafka_bootstrap_servers, [(settings.deposits_topic, b"acct-pt", raw(dep))]))
    drain = body(event_id="w-probe", account_id="acct-pt", usd_value="9000.00", timestamp="2026-11-27T06:01:00Z")
    wait_until(lambda: call(screen, drain)[1].get("decision") == "block", "the deposit to reach the state")
    # A screen changes nothing: half of it, screened twice, is allowed twice (not 100%).
    half = body(event_id="w1", account_id="acct-pt", usd_value="5000.00", timestamp="2026-11-27T06:05:00Z")
    assert [call(screen, half)[1]["decision"] for _ in range(2)] == ["allow", "allow"]
    rest = body(event_id="w2", account_id="acct-pt", usd_value="3000.00", timestamp="2026-11-27T06:10:00Z")
    records = [(settings.withdrawals_topic, b"acct-pt", raw(withdrawal(event_id="w1", account_id="acct-pt",
               usd_value="5000.00", timestamp="2026-11-27T06:05:00Z", tx_hash="0x1")))]  # fmt: skip
    asyncio.run(produce(settings.kafka_bootstrap_servers, records))
    wait_until(lambda: call(screen, rest)[1].get("decision") == "block", "the first withdrawal to reach the state")
    status, drained = call(screen, rest)
    assert [f["rule_id"] for f in drained["findings"]] == ["pass-through"]
    assert drained["findings"][0]["event_ids"] == ["d-pt", "w1", "w2"]
    # The withdrawals the screens announced now arrive on the topic.
    streamed = [
        (settings.withdrawals_topic, b"acct-ofac", raw(withdrawal(event_id="w-ofac", account_id="acct-ofac",
         to_address=SDN_TRON, tx_hash="0x2"))),
        (settings.withdrawals_topic, b"acct-pt", raw(withdrawal(event_id="w2", account_id="acct-pt",
         usd_value="3000.00", timestamp="2026-11-27T06:10:00Z", tx_hash="0x3"))),
    ]  # fmt: skip
    asyncio.run(produce(settings.kafka_bootstrap_servers, streamed))
    alerts = asyncio.run(collect(settings.kafka_bootstrap_servers, [settings.alerts_topic], expected=2))
    announced = {ofac["findings"][0]["alert_id"], drained["findings"][0]["alert_id"]}
    assert {orjson.loads(a.value)["alert_id"] for a in alerts} == announced
    # Every decision is on the audit topic, with the caller's name and never its token.
    audit = asyncio.run(collect(settings.kafka_bootstrap_servers, [settings.screening_decisions_topic], expected=6))
    decisions = [orjson.loads(r.value) for r in audit]
    assert {d["caller"] for d in decisions} == {"payments"}
    assert all(TOKEN not in r.value.decode() for r in audit)
    assert {d["decision_id"] for d in decisions} >= {ofac["decision_id"], drained["decision_id"]}


def test_refusals_get_their_status(one_worker: tuple[Settings, str]) -> None:
    _, api = one_worker
    screen = f"{api}/v1/screen/withdrawal"
    assert call(screen, body(), token=None)[0] == 401
    assert call(screen, body(), token="not-the-token-at-all-0000")[0] == 401
    assert call(screen, body() + b" " * 20_000)[0] == 413
    status, answer = call(screen, b'{"account_id": "acct-1"')
    assert (status, answer["error"]) == (400, "invalid_json")
    status, answer = call(screen, body(amount="-5"))
    assert status == 400 and "'amount'" in answer["detail"]
    status, answer = call(f"{api}/v1/screen/address/ethereum/{CLEAN_EVM}")
    assert (status, answer["decision"]) == (200, "allow")


def test_a_request_for_an_account_the_other_worker_holds_is_answered_from_its_state(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = api_settings(kafka_bootstrap)
    asyncio.run(prepare_topics(settings))
    workers: list[tuple[Settings, WorkerProcess]] = []
    try:
        for name in ("w1", "w2"):
            own = settings.model_copy(update={"metrics_port": free_port(), "screening_port": free_port()})
            workers.append((own, start_worker(own, tmp_path, name)))
        wait_until(lambda: all(ready(s) for s, _ in workers), "both workers to be ready", timeout=90)
        first = f"http://127.0.0.1:{workers[0][0].screening_port}/v1/screen/withdrawal"
        served: dict[str, int] = {}
        for n in range(12):
            account = f"acct-route-{n}"
            status, answer = call(first, body(event_id=f"w-{n}", account_id=account, to_address=SDN_TRON))
            assert (status, answer["decision"]) == (200, "block"), answer
        audit = asyncio.run(collect(settings.kafka_bootstrap_servers, [settings.screening_decisions_topic], 12))
        for record in audit:
            decision = orjson.loads(record.value)
            served[decision["served_by"]] = served.get(decision["served_by"], 0) + 1
            assert decision["routed"] == (decision["served_by"] != f"http://127.0.0.1:{workers[0][0].screening_port}")
        print("answered by", served)
        assert len(served) == 2, f"every account was answered by one worker: {served}"
    finally:
        for _, worker in workers:
            worker.stop()
