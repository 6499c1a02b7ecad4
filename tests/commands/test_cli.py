"""The ``sentinel`` command's offline subcommands, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.data import REPO
from tests.factories import RONIN_EXPLOITER, deposit, raw


def sentinel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.commands.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rules_check_summarises_the_shipped_pack() -> None:
    result = sentinel("rules", "check", "rules")
    assert result.returncode == 0, result.stderr
    assert "9 rule(s), 4 list(s)" in result.stdout
    assert "ofac_sdn" in result.stdout and "745 addresses" in result.stdout
    assert "pass-through" in result.stdout


def test_rules_check_fails_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("required_engine_version: 1\nrules:\n  - id: x\n    nme: typo\n")
    result = sentinel("rules", "check", str(tmp_path))
    assert result.returncode != 0
    assert f"{tmp_path / 'bad.yaml'}:4:5: rule 'x': unknown key 'nme'" in result.stderr


def test_keys_generate_writes_a_pair_and_refuses_to_overwrite_it(tmp_path: Path) -> None:
    result = sentinel("keys", "generate", "publisher", "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "publisher.key").exists() and (tmp_path / "publisher.pub").exists()
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    again = sentinel("keys", "generate", "publisher", "--directory", str(tmp_path))
    assert again.returncode != 0 and "refusing to overwrite a key" in again.stderr


def test_rules_publish_with_a_bad_key_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "wrong.key").write_text("-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n")
    result = sentinel("rules", "publish", "rules", "--key", str(tmp_path / "wrong.key"))
    assert result.returncode != 0
    assert f"{tmp_path / 'wrong.key'}: not a readable private key" in result.stderr


def test_a_worker_with_a_missing_public_key_stops_with_a_clear_error(tmp_path: Path) -> None:
    result = sentinel("worker", env={**os.environ, "SENTINEL_CONTROL_PUBLIC_KEYS": str(tmp_path / "absent.pub")})
    assert result.returncode != 0
    assert f"SENTINEL_CONTROL_PUBLIC_KEYS: {tmp_path / 'absent.pub'}: not a readable public key" in result.stderr


def test_rules_test_passes_on_the_shipped_pack() -> None:
    result = sentinel("rules", "test", "rules")
    assert result.returncode == 0, result.stdout
    assert "FAIL" not in result.stdout and " 0 failed" in result.stdout
    assert "rules without tests" not in result.stdout


def test_rules_test_reports_a_failing_case(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "required_engine_version: 1\n"
        "rules:\n"
        "  - {id: r, version: 1.0.0, name: R, description: d, typology: velocity, severity: low,\n"
        "     action: review,\n"
        "     events: [deposit], condition: {field: amount, gte: 10}, summary: s,\n"
        "     tests: [{name: small, events: [{type: deposit, amount: '1'}], expect: [{}]}]}\n"
    )
    result = sentinel("rules", "test", str(tmp_path))
    assert result.returncode == 1
    assert "FAIL  r: small" in result.stdout and "expected 1 alert(s), got 0" in result.stdout


def test_backtest_writes_alerts_as_on_the_topic(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(raw(deposit(event_id="bad", from_addresses=[RONIN_EXPLOITER])) + b"\n" + raw(deposit()) + b"\n")
    alerts = tmp_path / "alerts.jsonl"
    result = sentinel("backtest", "--input", str(events), "--output", str(alerts), "--rules", "rules")
    assert result.returncode == 0, result.stderr
    [alert] = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    assert alert["rule_id"] == "ofac-sanctioned-sender" and alert["event_ids"] == ["bad"]
    assert "2 events" in result.stdout and "events/s" in result.stdout


def test_backtest_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    result = sentinel("backtest", "--input", str(tmp_path / "none.jsonl"))
    assert result.returncode != 0
    assert "none.jsonl: No such file or directory" in result.stderr


def test_backtest_jobs_gives_the_same_alerts_and_refuses_nonsense(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lines = [raw(deposit(event_id=f"d{i}", account_id=f"acct-{i}", from_addresses=[RONIN_EXPLOITER])) for i in range(6)]
    events.write_bytes(b"\n".join(lines) + b"\n")
    outputs = []
    for jobs in ("1", "2"):
        alerts = tmp_path / f"alerts-{jobs}.jsonl"
        result = sentinel("backtest", "--input", str(events), "--output", str(alerts), "--jobs", jobs)
        assert result.returncode == 0, result.stderr
        outputs.append([orjson.loads(line)["alert_id"] for line in alerts.read_bytes().splitlines()])
    assert len(outputs[0]) == 6 and outputs[0] == outputs[1]
    refused = sentinel("backtest", "--input", str(events), "--jobs", "0")
    assert refused.returncode != 0 and "--jobs: 0 is less than 1" in refused.stderr


def test_explain_prints_every_rules_verdict_in_plain_words_and_as_json(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    band = [raw(deposit(event_id=f"d{n}", usd_value="9500", timestamp=f"2026-11-27T0{n}:00:00Z")) for n in range(2)]
    events.write_bytes(b"\n".join([*band, raw(deposit(event_id="s", from_addresses=[RONIN_EXPLOITER]))]) + b"\n")
    result = sentinel("explain", "--input", str(events), "--event", "d1", "--rules", "rules")
    assert result.returncode == 0, result.stderr
    assert "deposit d1 of acct-1 at 2026-11-27T01:00:00Z" in result.stdout
    assert "events in the 24h window: 2 (2 events since 2026-11-27T00:00:00Z), needs gte 3" in result.stdout
    everything = sentinel("explain", "--input", str(events), "--account", "acct-1", "--json", "--rules", "rules")
    explained = [orjson.loads(line) for line in everything.stdout.splitlines()]
    assert [e["event"]["event_id"] for e in explained] == ["d0", "d1", "s"]
    [sanctions] = [v for v in explained[2]["verdicts"] if v["rule_id"] == "ofac-sanctioned-sender"]
    assert sanctions["outcome"] == "alert" and "Lazarus Group" in sanctions["reason"] and sanctions["alert_ids"]
    missing = sentinel("explain", "--input", str(events), "--event", "nope")
    assert missing.returncode != 0 and "no event 'nope'" in missing.stderr


def test_backtest_with_labels_scores_and_writes_json(tmp_path: Path) -> None:
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.csv"
    events.write_bytes(
        raw(deposit(event_id="s", from_addresses=[RONIN_EXPLOITER])) + b"\n" + raw(deposit(event_id="c"))
    )
    labels.write_text("event_id,label,typology\ns,1,sanctions\nc,0,\n")
    scores = tmp_path / "scores.json"
    result = sentinel(
        "backtest", "--input", str(events), "--labels", str(labels), "--score-output", str(scores), "--rules", "rules"
    )
    assert result.returncode == 0, result.stderr
    assert "scored against 2 labelled event_ids (1 laundering)" in result.stdout
    [row] = [r for r in orjson.loads(scores.read_bytes())["rules"] if r["name"] == "ofac-sanctioned-sender"]
    assert (row["precision"], row["recall"], row["f1"]) == (1.0, 1.0, 1.0)
    labels.write_text("account,label\n")
    bad = sentinel("backtest", "--input", str(events), "--labels", str(labels), "--rules", "rules")
    assert bad.returncode != 0 and "needs one of event_id or account_id" in bad.stderr
