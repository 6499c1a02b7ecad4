"""The screening API over HTTP, with a stand-in worker: statuses, routing, fail modes and the audit record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import RawTestServer, TestClient

from streams.core.allowlist import Allowlist
from streams.core.decisions import state_copy
from streams.core.rules.engine import Ruleset
from streams.core.rules.exposure_rule import ExposureStore
from streams.core.rules.loader import load_ruleset
from streams.core.rules.state import AccountState
from streams.core.screening import Record, Screening
from streams.shell.screening_api import ROUTED_HEADER, UnavailableError, build_screening_app
from streams.shell.screening_auth import Caller, Callers
from streams.shell.settings import Settings
from tests.data import REPO
from tests.factories import CLEAN_EVM, RONIN_EXPLOITER, SDN_TRON, deposit, raw, withdrawal

RULES = load_ruleset([REPO / "rules"])
NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
PAYMENTS = "payments-token-0123456789"
ADDRESSES_ONLY = "addresses-token-0123456789"
ME, OTHER = "http://127.0.0.1:1", "http://127.0.0.1:2"


@dataclass
class StandIn:
    """A worker as the API sees it: the accounts it holds, what it audited, what it passed on."""

    screening: Screening = field(default_factory=lambda: Screening(RULES, {"deposits": "deposit"}, clock=lambda: NOW))
    elsewhere: set[str] = field(default_factory=set)
    unavailable: bool = False
    audit_fails: bool = False
    audited: list[dict[str, Any]] = field(default_factory=list)
    forwarded: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    @property
    def ruleset(self) -> Ruleset:
        return self.screening.ruleset

    @property
    def allowlist(self) -> Allowlist:
        return self.screening.allowlist

    def owner_of_account(self, account_id: str) -> str | None:
        if self.unavailable:
            raise UnavailableError("rebalancing")
        return OTHER if account_id in self.elsewhere else None

    def account_state(self, account_id: str) -> AccountState:
        return state_copy(self.screening.state.account(account_id, 0))

    def owner_of_chain(self, chain: str) -> str | None:
        if self.unavailable:
            raise UnavailableError("rebalancing")
        return None

    def exposure(self) -> ExposureStore | None:
        return self.screening.exposure

    async def audit(self, key: bytes, value: bytes) -> None:
        if self.audit_fails:
            raise TimeoutError("broker down")
        self.audited.append(orjson.loads(value))

    async def forward(self, url: str, method: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        self.forwarded.append((url, body, headers))
        return 200, b'{"decision": "allow", "from": "the other worker"}'


def settings(**changes: Any) -> Settings:
    base = {"screening_port": 1, "screening_tokens": f"payments:{PAYMENTS},ops:{ADDRESSES_ONLY}:address"}
    return Settings(**base | changes)  # type: ignore[arg-type]


@pytest.fixture
def stand_in() -> StandIn:
    return StandIn()


async def client_for(stand_in: StandIn, **changes: Any) -> TestClient[Any, Any]:
    s = settings(**changes)
    handler = build_screening_app(stand_in, Callers.from_settings(s), s, lambda: NOW, self_url=ME)
    client: TestClient[Any, Any] = TestClient(RawTestServer(handler))
    await client.start_server()
    return client


@pytest.fixture
async def client(stand_in: StandIn) -> AsyncIterator[TestClient[Any, Any]]:
    client = await client_for(stand_in)
    yield client
    await client.close()


def auth(token: str = PAYMENTS) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def body(**changes: Any) -> bytes:
    event = withdrawal(**changes)
    event.pop("type")
    return raw(event)


async def test_a_withdrawal_to_an_ofac_address_is_blocked_and_audited(
    client: TestClient[Any, Any], stand_in: StandIn
) -> None:
    response = await client.post("/v1/screen/withdrawal", data=body(to_address=SDN_TRON), headers=auth())
    assert response.status == 200
    answer = await response.json()
    assert answer["decision"] == "block"
    assert [f["rule_id"] for f in answer["findings"]] == ["ofac-sanctioned-destination"]
    streamed = stand_in.screening.screen_one(
        Record("withdrawals", 0, 0, b"acct-1", raw(withdrawal(to_address=SDN_TRON, tx_hash="0x1")))
    )
    assert [a.alert_id for a in streamed.alerts] == [f["alert_id"] for f in answer["findings"]]
    [record] = stand_in.audited
    assert record["caller"] == "payments" and record["decision"] == "block" and record["kind"] == "withdrawal"
    assert record["alert_ids"] == [f["alert_id"] for f in answer["findings"]]
    assert record["decision_id"] == answer["decision_id"]
    assert PAYMENTS not in orjson.dumps(record).decode()


async def test_a_drain_of_a_recent_deposit_is_blocked_and_the_state_is_left_as_it_was(
    client: TestClient[Any, Any], stand_in: StandIn
) -> None:
    stand_in.screening.screen_one(Record("deposits", 0, 0, b"acct-1", raw(deposit(usd_value="10000.00"))))
    drain = body(usd_value="8000.00", timestamp="2026-11-27T06:10:00Z", to_address=CLEAN_EVM)
    first = await (await client.post("/v1/screen/withdrawal", data=drain, headers=auth())).json()
    again = await (await client.post("/v1/screen/withdrawal", data=drain, headers=auth())).json()
    assert first["decision"] == again["decision"] == "block"
    assert [f["rule_id"] for f in again["findings"]] == ["pass-through"]


async def test_a_clean_withdrawal_is_allowed(client: TestClient[Any, Any]) -> None:
    answer = await (await client.post("/v1/screen/withdrawal", data=body(), headers=auth())).json()
    assert (answer["decision"], answer["findings"], answer["account_state"]) == ("allow", [], "current")


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer not-a-token-of-anyone"}, 401, "unauthorized"),
        ({"Authorization": PAYMENTS}, 401, "unauthorized"),
        (auth(ADDRESSES_ONLY), 403, "forbidden"),
    ],
)
async def test_callers_are_checked(
    client: TestClient[Any, Any], headers: dict[str, str], status: int, error: str
) -> None:
    response = await client.post("/v1/screen/withdrawal", data=body(), headers=headers)
    assert response.status == status
    assert (await response.json())["error"] == error


@pytest.mark.parametrize(
    ("data", "error", "detail"),
    [
        (b"{not json", "invalid_json", "not JSON"),
        (body(amount=12.5), "invalid_field", "'amount'"),
        (body(account_id=...), "missing_field", "'account_id'"),
        (raw(deposit()), "type_mismatch", "deposit"),
    ],
)
async def test_a_bad_body_is_a_400_naming_the_field(
    client: TestClient[Any, Any], data: bytes, error: str, detail: str
) -> None:
    response = await client.post("/v1/screen/withdrawal", data=data, headers=auth())
    assert response.status == 400
    answer = await response.json()
    assert answer["error"] == error and detail in answer["detail"]


async def test_an_oversized_body_is_a_413(client: TestClient[Any, Any]) -> None:
    huge = body(event_id="x" * 200) + b" " * 20_000
    response = await client.post("/v1/screen/withdrawal", data=huge, headers=auth())
    assert response.status == 413


async def test_a_caller_over_its_rate_gets_429_with_retry_after(stand_in: StandIn) -> None:
    client = await client_for(stand_in, screening_rate=2.0)
    try:
        statuses = [(await client.post("/v1/screen/withdrawal", data=body(), headers=auth())).status for _ in range(4)]
        assert statuses[:2] == [200, 200] and statuses[2:] == [429, 429]
        other = await client.get(f"/v1/screen/address/ethereum/{CLEAN_EVM}", headers=auth(ADDRESSES_ONLY))
        assert other.status == 200, "each caller has its own bucket"
    finally:
        await client.close()


async def test_an_account_held_elsewhere_is_routed_once_with_its_body(
    client: TestClient[Any, Any], stand_in: StandIn
) -> None:
    stand_in.elsewhere.add("acct-1")
    response = await client.post("/v1/screen/withdrawal", data=body(), headers=auth())
    assert (await response.json())["from"] == "the other worker"
    [(url, sent, headers)] = stand_in.forwarded
    assert url == OTHER + "/v1/screen/withdrawal" and sent == body()
    assert headers[ROUTED_HEADER] == ME and headers["Authorization"] == f"Bearer {PAYMENTS}"
    again = await client.post("/v1/screen/withdrawal", data=body(), headers={**auth(), ROUTED_HEADER: OTHER})
    assert again.status == 503, "a routed request is never routed again"
    assert len(stand_in.forwarded) == 1


async def test_fail_closed_holds_and_fail_open_screens_without_the_account(stand_in: StandIn) -> None:
    stand_in.unavailable = True
    closed = await client_for(stand_in)
    opened = await client_for(stand_in, screening_fail_mode="open")
    try:
        response = await closed.post("/v1/screen/withdrawal", data=body(to_address=SDN_TRON), headers=auth())
        assert response.status == 503 and (await response.json())["decision"] == "hold"
        answer = await (
            await opened.post("/v1/screen/withdrawal", data=body(to_address=SDN_TRON), headers=auth())
        ).json()
        assert (answer["decision"], answer["account_state"]) == ("block", "unavailable")
        address = await opened.get(f"/v1/screen/address/ethereum/{CLEAN_EVM}", headers=auth())
        assert (await address.json())["exposure_state"] == "unavailable", "screened without exposure, and says so"
    finally:
        await closed.close()
        await opened.close()


async def test_no_decision_without_its_audit_record(client: TestClient[Any, Any], stand_in: StandIn) -> None:
    stand_in.audit_fails = True
    response = await client.post("/v1/screen/withdrawal", data=body(), headers=auth())
    assert response.status == 503
    assert (await response.json())["error"] == "audit_unavailable"


async def test_an_address_screen(client: TestClient[Any, Any]) -> None:
    listed = await (await client.get(f"/v1/screen/address/ethereum/{RONIN_EXPLOITER}", headers=auth())).json()
    assert listed["decision"] == "block" and listed["listed"][0]["list"]["id"] == "ofac_sdn"
    clean = await (await client.get(f"/v1/screen/address/ethereum/{CLEAN_EVM}", headers=auth())).json()
    assert (clean["decision"], clean["listed"], clean["exposure_state"]) == ("allow", [], "current")
    bad = await client.get("/v1/screen/address/dogechain/abc", headers=auth())
    assert bad.status == 400 and "unknown chain" in (await bad.json())["detail"]


def test_tokens_are_required_and_checked() -> None:
    with pytest.raises(ValueError, match="needs callers"):
        Settings(screening_port=1)
    with pytest.raises(ValueError, match="at least 16 characters"):
        Callers.from_settings(settings(screening_tokens="payments:short"))
    with pytest.raises(ValueError, match="unknown scope"):
        Callers.from_settings(settings(screening_tokens=f"payments:{PAYMENTS}:everything"))


async def test_only_the_two_routes_exist_and_only_for_callers(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/v1/tables/rule-state")).status == 401
    assert (await client.get("/v1/tables/rule-state", headers=auth())).status == 404
    assert (await client.get("/v1/screen/withdrawal", headers=auth())).status == 404


async def test_a_streamed_body_over_the_limit_is_a_413_without_reading_it_all(client: TestClient[Any, Any]) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    response = await client.post("/v1/screen/withdrawal", data=chunks(), headers=auth())
    assert response.status == 413


def test_a_tokens_file_names_callers_and_their_scopes(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# name token scopes\npayments {PAYMENTS} withdrawal,address\nops {ADDRESSES_ONLY} address\n")
    callers = Callers.from_settings(Settings(screening_port=1, screening_tokens_file=tokens))
    assert callers.identify(f"Bearer {PAYMENTS}") == Caller("payments", frozenset({"withdrawal", "address"}))
    assert callers.identify(f"Bearer {ADDRESSES_ONLY}") == Caller("ops", frozenset({"address"}))
