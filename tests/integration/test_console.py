"""The console end to end: a real headless Chromium, `sentinel console` processes and the real broker.

Screenshots of each step are kept in ``test-artifacts/console/`` (ignored by git).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select

from streams.core.events import format_timestamp
from streams.core.rules.loader import load_ruleset
from streams.shell.settings import Settings
from streams.shell.signing import generate_key_pair
from tests.core.test_exposure_ronin import deposit_from, exposure_alerts, peel_tranche_trail
from tests.data import REPO
from tests.factories import alert
from tests.integration.browser import TOKEN, Console, chromium, queue_ids, shot, sign_in, start_console, text_of, wait
from tests.integration.helpers import (
    isolated_settings,
    prepare_topics,
    produce,
    run_sentinel,
)

pytestmark = pytest.mark.kafka
SCRIPT_SUMMARY = "Deposit <script>window.__pwned = 1</script> <b>bold</b> from a sanctioned address"


@dataclass
class Setup:
    settings: Settings
    workdir: Path
    exposure: dict[str, Any]
    hops: list[str]


def ronin_exposure_alert() -> tuple[dict[str, Any], list[str]]:
    """A real 3-hop indirect-exposure alert: the shipped rules on the Ronin trail and three generated hops."""
    transfers, hops, start = peel_tranche_trail()
    deposit = deposit_from(hops[2], 1, start + timedelta(days=1))
    found = exposure_alerts(load_ruleset([REPO / "rules"]), [*transfers, deposit])
    assert len(found) == 1 and found[0].evidence["exposure"]["hops"] == 3
    seed = found[0].evidence["exposure"]["seed_address"]
    return orjson.loads(found[0].to_json()), [seed, *hops[:3]]


@pytest.fixture(scope="module")
def setup(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    suffix = uuid.uuid4().hex[:8]
    workdir = tmp_path_factory.mktemp("console")
    private_key, public_key = generate_key_pair(workdir / "keys", "console")
    settings = isolated_settings(
        kafka_bootstrap,
        suffix,
        console_tokens=f"alice:{TOKEN}",
        control_signing_key=str(private_key),
        control_public_keys=str(public_key),
    )
    asyncio.run(prepare_topics(settings))
    exposure, hops = ronin_exposure_alert()
    now = datetime.now(UTC)
    history = [
        exposure,
        alert(alert_id="script-1", summary=SCRIPT_SUMMARY, account_id="acct-script", event_time=format_timestamp(now)),
        *(
            alert(alert_id=f"fan-{n}", rule_id="fan-in", typology="fan_in", severity="high", action="review",
                  account_id=f"acct-{n}", event_time=format_timestamp(now - timedelta(minutes=n)))
            for n in range(20)
        ),
    ]  # fmt: skip
    records = [(settings.alerts_topic, a["account_id"].encode(), orjson.dumps(a)) for a in history]
    asyncio.run(produce(kafka_bootstrap, records))
    yield Setup(settings, workdir, exposure, hops)


@pytest.fixture(scope="module")
def console(setup: Setup) -> Iterator[Console]:
    running = start_console(setup.settings, setup.workdir, "console-a")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser(console: Console) -> Iterator[WebDriver]:
    driver = chromium()
    try:
        sign_in(driver, console)
        yield driver
    finally:
        driver.quit()


def test_a_new_alert_appears_in_the_open_queue_within_two_seconds(
    setup: Setup, console: Console, browser: WebDriver
) -> None:
    browser.get(f"{console.url}/?order=time")
    wait(browser, lambda b: "on" in b.execute_script("return document.getElementById('live').className"))
    now = format_timestamp(datetime.now(UTC))
    fresh = alert(alert_id=f"new-{uuid.uuid4().hex[:8]}", account_id="acct-new", event_time=now)
    record = (setup.settings.alerts_topic, b"acct-new", orjson.dumps(fresh))
    sent = time.monotonic()
    asyncio.run(produce(setup.settings.kafka_bootstrap_servers, [record]))
    wait(browser, lambda b: fresh["alert_id"] in queue_ids(b), timeout=5)
    shown_after = time.monotonic() - sent
    shot(browser, "queue")
    print(f"new alert shown {shown_after:.2f} s after it was produced (acknowledged)")
    assert shown_after < 2.0


def test_filters_narrow_the_queue_and_show_counts(console: Console, browser: WebDriver) -> None:
    browser.get(f"{console.url}/")
    wait(browser, lambda b: len(queue_ids(b)) >= 22)
    options = [o.text for o in Select(browser.find_element(By.ID, "filter-typology")).options]
    assert "fan in (20)" in options and "indirect exposure (1)" in options
    Select(browser.find_element(By.ID, "filter-typology")).select_by_value("fan_in")
    wait(browser, lambda b: "typology=fan_in" in b.current_url and len(queue_ids(b)) == 20)
    assert all(i.startswith("fan-") for i in queue_ids(browser))
    browser.find_element(By.ID, "filter-account").send_keys("acct-3\n")
    wait(browser, lambda b: queue_ids(b) == ["fan-3"])
    shot(browser, "queue-filtered")


def test_keys_move_through_the_queue_and_open_an_alert(console: Console, browser: WebDriver) -> None:
    browser.get(f"{console.url}/?typology=fan_in&order=time")
    wait(browser, lambda b: len(queue_ids(b)) == 20)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("j")
    body.send_keys("j")
    selected = "return document.querySelector('#queue-rows tr.selected').dataset.index"
    wait(browser, lambda b: b.execute_script(selected) == "2")
    body.send_keys("\n")
    wait(browser, lambda b: b.current_url.endswith("/alerts/fan-2"))


def test_an_exposure_alert_shows_its_path_of_funds(setup: Setup, console: Console, browser: WebDriver) -> None:
    browser.get(f"{console.url}/alerts/{setup.exposure['alert_id']}")
    nodes = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#exposure-path g.node[data-address]"))
    assert [n.get_attribute("data-address") for n in nodes] == setup.hops
    transfers = browser.find_elements(By.CSS_SELECTOR, "#exposure-path g.transfer")
    path = setup.exposure["evidence"]["exposure"]["path"]
    assert [t.get_attribute("data-tx") for t in transfers] == [hop["tx_hash"] for hop in path]
    drawn = browser.find_element(By.ID, "exposure-path").text
    assert "Lazarus Group" in drawn and all(f"{hop['amount']} {hop['asset']}" in drawn for hop in path)
    shot(browser, "exposure-path")


def test_a_summary_holding_markup_is_shown_as_text(console: Console, browser: WebDriver) -> None:
    browser.get(f"{console.url}/?account=acct-script")
    wait(browser, lambda b: queue_ids(b) == ["script-1"])
    assert browser.execute_script("return document.querySelector('#queue-rows td.summary').innerText") == SCRIPT_SUMMARY
    browser.get(f"{console.url}/alerts/script-1")
    heading = wait(browser, lambda b: b.find_element(By.ID, "summary"))
    assert heading.text == SCRIPT_SUMMARY and not heading.find_elements(By.TAG_NAME, "b")
    assert browser.execute_script("return window.__pwned === undefined") is True
    shot(browser, "markup-as-text")


def test_allowlisting_from_an_alert_of_a_rule_that_is_not_overridable_is_refused(
    setup: Setup, console: Console, browser: WebDriver
) -> None:
    browser.get(f"{console.url}/alerts/script-1")  # ofac-sanctioned-sender: overridable: false
    wait(browser, lambda b: b.find_element(By.ID, "allowlist-reason")).send_keys("known customer")
    browser.find_element(By.CSS_SELECTOR, "#allowlist button[type=submit]").click()
    result = wait(browser, lambda b: text_of(b, "allowlist-result") or None)
    assert result.startswith("refused: rule ofac-sanctioned-sender is not overridable")
    shot(browser, "allowlist-refused")
    # An overridable rule's entry is signed, written and read back by `sentinel allow`.
    browser.get(f"{console.url}/alerts/fan-4")
    wait(browser, lambda b: b.find_element(By.ID, "allowlist-reason")).send_keys("payroll account, checked")
    browser.find_element(By.CSS_SELECTOR, "#allowlist button[type=submit]").click()
    added = wait(browser, lambda b: text_of(b, "allowlist-result") or None)
    assert added.startswith("added al-") and "rule fan-in, account acct-4" in added
    listed = run_sentinel(setup.settings, setup.workdir, "allow", "list", "--json")
    entries = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert [(e["rule_id"], e["account_id"], e["by"]) for e in entries] == [("fan-in", "acct-4", "alice")], listed.stderr


def test_a_disposition_survives_a_restart_and_shows_in_a_second_console(
    setup: Setup, console: Console, browser: WebDriver
) -> None:
    browser.get(f"{console.url}/alerts/fan-7")
    Select(wait(browser, lambda b: b.find_element(By.ID, "disposition-status"))).select_by_value("false_positive")
    browser.find_element(By.ID, "disposition-note").send_keys("salary payments from the employer")
    browser.find_element(By.CSS_SELECTOR, "#disposition button[type=submit]").click()
    wait(browser, lambda b: text_of(b, "disposition-result") == "saved")
    assert "alice: false positive" in text_of(browser, "history")
    shot(browser, "disposition")

    second = start_console(setup.settings, setup.workdir, "console-b")
    other = chromium()
    try:
        sign_in(other, second)
        other.get(f"{second.url}/?status=false_positive")
        wait(other, lambda b: queue_ids(b) == ["fan-7"])
        other.get(f"{second.url}/alerts/fan-7")
        history = wait(other, lambda b: text_of(b, "history") or None)
        assert "alice: false positive — salary payments from the employer" in history
        other.get(f"{second.url}/accounts/acct-7")
        wait(other, lambda b: "false positive by alice" in text_of(b, "queue-rows"))
        shot(other, "disposition-second-console")
    finally:
        other.quit()
        second.stop()

    console.stop()
    restarted = start_console(setup.settings, setup.workdir, "console-a-again")
    try:
        sign_in(browser, restarted)  # the old session died with the old process
        browser.get(f"{restarted.url}/alerts/fan-7")
        wait(browser, lambda b: "alice: false positive" in text_of(b, "history"))
    finally:
        restarted.stop()
