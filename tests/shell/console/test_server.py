"""The console's HTTP side with a stand-in for the topics: sign-in, CSRF, the JSON the page reads, actions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.core.rules.loader import load_ruleset
from streams.core.triage import AlertQueue, Disposition
from streams.shell.console.actions import ActionRefusedError, AllowlistAction
from streams.shell.console.auth import CSRF_COOKIE, CSRF_HEADER, ConsoleAuth
from streams.shell.console.feed import PageHub
from streams.shell.console.server import make_app
from streams.shell.settings import Settings
from tests.data import REPO
from tests.factories import RONIN_EXPLOITER, alert

TOKEN = "alice-token-0123456789"
RULES = load_ruleset([REPO / "rules"])


class StandInFeed:
    """The topics as the routes see them: caught up, and a disposition is read back at once."""

    def __init__(self, queue: AlertQueue, hub: PageHub) -> None:
        self.queue, self.hub = queue, hub
        self.caught_up = asyncio.Event()
        self.caught_up.set()
        self.written: list[Disposition] = []
        self.unreadable_dispositions = 0

    async def decide(self, disposition: Disposition) -> None:
        self.written.append(disposition)
        changed = self.queue.apply(disposition)
        assert changed is not None
        self.hub.publish({"kind": "disposition", "row": changed.row()})


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], StandInFeed]]:
    settings = Settings(console_tokens=f"alice:{TOKEN}", control_signing_key=None)
    queue, hub = AlertQueue(), PageHub()
    queue.add_alert(orjson.dumps(alert(alert_id="sdn-1", summary="<script>alert(1)</script>")), 0, 0)
    queue.add_alert(orjson.dumps(alert(alert_id="fan-1", rule_id="fan-in", typology="fan_in", severity="high")), 0, 1)
    feed = StandInFeed(queue, hub)
    app = make_app(ConsoleAuth(settings), queue, feed, hub, AllowlistAction(settings, RULES))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        yield client, feed


async def sign_in(client: TestClient[Any, Any]) -> str:
    response = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/"
    await client.get("/health")  # the CSRF cookie comes with any answer
    csrf = client.session.cookie_jar.filter_cookies(client.make_url("/"))[CSRF_COOKIE].value
    return str(csrf)


async def test_everything_but_health_and_sign_in_needs_a_user(console: Any) -> None:
    client, _ = console
    assert (await client.get("/health")).status == 200
    assert (await client.get("/login")).status == 200
    page = await client.get("/", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/login"
    for path in ("/api/queue", "/api/alerts/sdn-1", "/api/accounts/acct-1", "/api/updates"):
        response = await client.get(path)
        assert response.status == 401, path
    wrong = await client.post("/login", data={"token": "not-a-token-at-all-xx"}, allow_redirects=False)
    assert wrong.headers["Location"] == "/login?failed=1"
    assert (await client.get("/api/queue")).status == 401


async def test_pages_carry_a_strict_content_security_policy(console: Any) -> None:
    client, _ = console
    await sign_in(client)
    page = await client.get("/")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy
    assert '<script src="/static/console.js"' in await page.text()
    assert (await client.get("/static/../settings.py")).status == 404


async def test_the_queue_json_filters_and_counts(console: Any) -> None:
    client, _ = console
    await sign_in(client)
    data = await (await client.get("/api/queue", params={"severity": "high"})).json()
    assert [r["alert_id"] for r in data["rows"]] == ["fan-1"] and data["user"] == "alice"
    assert data["counts"]["severity"]["critical"] == 1
    bad = await client.get("/api/queue", params={"severity": "urgent"})
    assert bad.status == 400 and "severity must be one of" in (await bad.json())["detail"]
    detail = await (await client.get("/api/alerts/sdn-1")).json()
    # Text stays text in the JSON; the page writes it with textContent.
    assert detail["alert"]["summary"] == "<script>alert(1)</script>" and detail["overridable"] is False
    assert RONIN_EXPLOITER in detail["addresses"]
    assert (await client.get("/api/alerts/nope")).status == 404


async def test_actions_need_the_csrf_token_and_a_reason(console: Any) -> None:
    client, feed = console
    csrf = await sign_in(client)
    body = {"status": "confirmed", "note": "matches the SDN entry"}
    assert (await client.post("/api/alerts/fan-1/disposition", json=body)).status == 403
    bad = await client.post("/api/alerts/fan-1/disposition", json=body, headers={CSRF_HEADER: "x" * 43})
    assert bad.status == 403
    foreign = await client.post(
        "/api/alerts/fan-1/disposition", json=body, headers={CSRF_HEADER: csrf, "Origin": "https://evil.example"}
    )
    assert foreign.status == 403
    no_note = await client.post(
        "/api/alerts/fan-1/disposition", json={"status": "confirmed"}, headers={CSRF_HEADER: csrf}
    )
    assert no_note.status == 400 and "note" in (await no_note.json())["detail"]
    form = await client.post("/api/alerts/fan-1/disposition", data="status=confirmed", headers={CSRF_HEADER: csrf})
    assert form.status == 415
    ok = await client.post("/api/alerts/fan-1/disposition", json=body, headers={CSRF_HEADER: csrf})
    assert ok.status == 200 and (await ok.json())["status"] == "confirmed"
    assert [(d.alert_id, d.status, d.by) for d in feed.written] == [("fan-1", "confirmed", "alice")]


async def test_allowlist_from_an_alert_is_refused_for_a_rule_that_is_not_overridable(console: Any) -> None:
    client, _ = console
    csrf = await sign_in(client)
    body = {"scope": "rule", "subject": "account", "until": "30d", "reason": "known customer"}
    refused = await client.post("/api/alerts/sdn-1/allowlist", json=body, headers={CSRF_HEADER: csrf})
    assert refused.status == 409 and "not overridable" in (await refused.json())["detail"]
    # An overridable rule gets as far as signing: this console has no key, and says so.
    unsigned = await client.post("/api/alerts/fan-1/allowlist", json=body, headers={CSRF_HEADER: csrf})
    assert unsigned.status == 503 and "signing key" in (await unsigned.json())["detail"]
    stranger = {**body, "subject": "address", "address": "0xnot-in-the-evidence"}
    bad = await client.post("/api/alerts/fan-1/allowlist", json=stranger, headers={CSRF_HEADER: csrf})
    assert bad.status == 400 and "evidence addresses" in (await bad.json())["detail"]


async def test_a_proxy_names_the_user(tmp_path: Path) -> None:
    settings = Settings(console_auth="proxy", console_user_header="X-Remote-User")
    queue, hub = AlertQueue(), PageHub()
    feed = StandInFeed(queue, hub)
    app = make_app(ConsoleAuth(settings), queue, feed, hub, AllowlistAction(settings, RULES))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/api/queue")).status == 401
        data = await (await client.get("/api/queue", headers={"X-Remote-User": "carol"})).json()
        assert data["user"] == "carol"


def test_console_users_are_required_and_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no console users"):
        ConsoleAuth(Settings())
    with pytest.raises(ValueError, match="item 1: expected a user name and a token of at least 16"):
        ConsoleAuth(Settings(console_tokens="alice:short"))
    tokens = tmp_path / "tokens"
    tokens.write_text("# users\nbob bob-token-0123456789abc\n")
    auth = ConsoleAuth(Settings(console_tokens_file=tokens))
    session = auth.sign_in("bob-token-0123456789abc")
    assert session is not None and auth.user({"sentinel_console_session": session}, {}) == "bob"
    assert auth.sign_in("bob-token-0123456789abd") is None


async def test_an_unconfirmed_disposition_is_a_503_and_a_proxy_ending_tls_is_no_foreign_origin(console: Any) -> None:
    client, feed = console
    csrf = await sign_in(client)
    body = {"status": "escalated", "note": "to the MLRO"}
    behind_proxy = {CSRF_HEADER: csrf, "Origin": "https://console.example", "X-Forwarded-Host": "console.example"}
    ok = await client.post("/api/alerts/fan-1/disposition", json=body, headers=behind_proxy)
    assert ok.status == 200

    async def no_answer(disposition: Disposition) -> None:
        raise TimeoutError

    feed.decide = no_answer
    late = await client.post("/api/alerts/fan-1/disposition", json=body, headers={CSRF_HEADER: csrf})
    assert late.status == 503 and "reload the alert" in (await late.json())["detail"]


async def test_header_names_match_in_any_case(console: Any, tmp_path: Path) -> None:
    client, _ = console
    csrf = await sign_in(client)
    body = {"status": "escalated", "note": "to the MLRO"}
    lower = await client.post("/api/alerts/fan-1/disposition", json=body, headers={CSRF_HEADER.lower(): csrf})
    assert lower.status == 200
    settings = Settings(console_auth="proxy")
    queue, hub = AlertQueue(), PageHub()
    app = make_app(ConsoleAuth(settings), queue, StandInFeed(queue, hub), hub, AllowlistAction(settings, RULES))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as proxied:
        answer = await proxied.get("/api/queue", headers={"x-forwarded-user": "dave"})
        assert answer.status == 200 and (await answer.json())["user"] == "dave"


def test_an_entry_from_the_console_reads_its_expiry_as_the_command_does() -> None:
    settings = Settings()
    action = AllowlistAction(settings, RULES)
    queue = AlertQueue()
    item = queue.add_alert(orjson.dumps(alert(alert_id="fan-9", rule_id="fan-in", typology="fan_in")), 0, 0)
    assert item is not None
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    body = {"scope": "rule", "subject": "account", "reason": "payroll"}
    assert action.change_for(item, {**body, "until": "30d"}, "alice", now).until == now + timedelta(days=30)
    through_the_day = action.change_for(item, {**body, "until": "2026-12-31"}, "alice", now)
    assert through_the_day.until == datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(ActionRefusedError, match="write a date"):
        action.change_for(item, {**body, "until": "soon"}, "alice", now)
