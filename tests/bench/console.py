"""The alert console with a large queue: how long 10,000 alerts take to show, and how it stays usable.

    python -m tests.bench.console [--alerts N]

Produces N alerts (eight typologies, four severities, 2,000 accounts, a list match's
evidence each, as workers write them) to a fresh topic on the project's broker, starts
`sentinel console`, and drives Debian's headless Chromium as an analyst would: sign in,
open the queue, narrow it by a filter and by an account, open an alert, and see a new
alert arrive. Each step is timed from the browser's action until the page shows the
result; the server's answer to the queue's JSON is timed on its own (median of 20).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import orjson
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from streams.core.events import format_timestamp
from streams.core.triage import FACETS
from streams.shell.settings import Settings
from tests.bench.common import rss_mb
from tests.factories import RONIN_EXPLOITER, alert
from tests.integration.browser import TOKEN, Console, chromium, queue_ids, sign_in, start_console, wait
from tests.integration.helpers import isolated_settings, prepare_topics, produce, project_broker


def alerts(count: int) -> list[dict[str, Any]]:
    """``count`` alerts spread over typologies, severities, accounts and the last 30 days."""
    now = datetime.now(UTC)
    typologies, severities = FACETS["typology"], FACETS["severity"]
    out = []
    for n in range(count):
        evidence = {
            "event": {"type": "deposit", "event_id": f"bench-{n}", "chain": "ethereum", "asset": "USDT",
                      "amount": f"{1000 + n % 9000}.25", "from_addresses": [RONIN_EXPLOITER]},
            "matches": [{"field": "from_addresses", "address": RONIN_EXPLOITER,
                         "list": {"id": "ofac_sdn", "name": "OFAC SDN list", "category": "sanctioned",
                                  "source": "US Treasury OFAC SDN Advanced XML", "version": "2025-11-19"},
                         "entry": {"address": RONIN_EXPLOITER, "label": "Lazarus Group", "programs": "DPRK3"}}],
        }  # fmt: skip
        out.append(
            alert(
                alert_id=f"bench-{n:06d}",
                typology=typologies[n % len(typologies)],
                severity=severities[n % len(severities)],
                action="freeze" if n % 3 == 0 else "review",
                mode="shadow" if n % 10 == 0 else "enforce",
                account_id=f"acct-{n % 2000}",
                event_time=format_timestamp(now - timedelta(seconds=n * 250)),
                summary=f"Deposit of {1000 + n % 9000}.25 USDT into account acct-{n % 2000} from Lazarus Group",
                evidence=evidence,
            )
        )
    return out


def timed(action: Any, condition: Any, browser: Any) -> float:
    started = time.monotonic()
    action()
    wait(browser, condition, timeout=60)
    return time.monotonic() - started


def run(count: int) -> dict[str, float]:
    """The figures, printed as a table."""
    figures: dict[str, float] = {}
    with project_broker("kafka-bench") as (bootstrap, _), tempfile.TemporaryDirectory() as workdir:
        settings = isolated_settings(bootstrap, uuid.uuid4().hex[:8], console_tokens=f"alice:{TOKEN}")
        asyncio.run(prepare_topics(settings))
        records = [(settings.alerts_topic, a["account_id"].encode(), orjson.dumps(a)) for a in alerts(count)]
        asyncio.run(produce(bootstrap, records))
        started = time.monotonic()
        console = start_console(settings, Path(workdir), "console")
        figures["console start until ready (all read), s"] = time.monotonic() - started
        browser = chromium()
        try:
            measure(figures, console, browser, bootstrap, settings)
        finally:
            browser.quit()
            console.stop()
    print(f"\n## Alert console with {count:,} alerts\n\n| step | figure |\n|---|---|")
    for name, value in figures.items():
        print(f"| {name} | {value:,.2f} |")
    return figures


def measure(figures: dict[str, float], console: Console, browser: Any, bootstrap: str, settings: Settings) -> None:
    """Each step's time, into ``figures``."""
    figures["sign in until the queue shows, s"] = timed(
        lambda: sign_in(browser, console), lambda b: len(queue_ids(b)) == 200, browser
    )
    figures["open the queue (first 200 rows, counts), s"] = timed(
        lambda: browser.get(f"{console.url}/"), lambda b: len(queue_ids(b)) == 200, browser
    )
    figures["filter by typology, s"] = timed(
        lambda: Select(browser.find_element(By.ID, "filter-typology")).select_by_value("fan_in"),
        lambda b: b.execute_script("return document.body.dataset.shown") == "?typology=fan_in#200",
        browser,
    )
    figures["filter by account, s"] = timed(
        lambda: browser.find_element(By.ID, "filter-account").send_keys("acct-4\n"),
        lambda b: len(queue_ids(b)) > 0 and all(i.endswith("004") for i in queue_ids(b)),
        browser,
    )
    figures["show 200 more rows, s"] = timed(
        lambda: (browser.get(f"{console.url}/"), wait(browser, lambda b: len(queue_ids(b)) == 200),
                 browser.find_element(By.ID, "more").click()),
        lambda b: len(queue_ids(b)) == 400,
        browser,
    )  # fmt: skip
    figures["open an alert, s"] = timed(
        lambda: browser.get(f"{console.url}/alerts/bench-000123"),
        lambda b: b.find_elements(By.ID, "summary"),
        browser,
    )
    browser.get(f"{console.url}/?order=time")
    wait(browser, lambda b: "on" in b.execute_script("return document.getElementById('live').className"))
    fresh = alert(alert_id="bench-new", account_id="acct-new", event_time=format_timestamp(datetime.now(UTC)))
    figures["a new alert produced until shown, s"] = timed(
        lambda: asyncio.run(produce(bootstrap, [(settings.alerts_topic, b"acct-new", orjson.dumps(fresh))])),
        lambda b: "bench-new" in queue_ids(b),
        browser,
    )
    figures["queue JSON, 200 rows of all, median ms"] = 1000 * queue_json_seconds(console.url, "")
    figures["queue JSON, one typology, median ms"] = 1000 * queue_json_seconds(console.url, "typology=fan_in")
    figures["console RSS, MB"] = rss_mb(console.process.pid)


def queue_json_seconds(url: str, query: str) -> float:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(urllib.request.Request(f"{url}/login", data=f"token={TOKEN}".encode()), timeout=10)
    took = []
    for _ in range(20):
        started = time.monotonic()
        with opener.open(f"{url}/api/queue?{query}", timeout=10) as response:
            assert len(orjson.loads(response.read())["rows"]) > 0
        took.append(time.monotonic() - started)
    return statistics.median(took)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=10_000)
    run(parser.parse_args().alerts)
