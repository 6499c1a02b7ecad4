"""The one module that touches Faust's private names fails loudly when Faust changes them."""

from __future__ import annotations

import inspect

import pytest
from faust.transport.consumer import Fetcher
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.core.rules.loader import load_ruleset
from streams.shell.app import SentinelApp
from streams.shell.faust_adapter import PRIVATE_NAMES, BatchConsumer, BatchTransport, check_faust_internals, table_bytes
from streams.shell.settings import Settings
from tests.data import REPO


def app() -> SentinelApp:
    """A worker app, built but not started (no broker needed)."""
    settings = Settings(bootstrap_servers="127.0.0.1:1", metrics_port=0, rule_paths=[str(REPO / "rules")])
    return SentinelApp(settings, load_ruleset([REPO / "rules"]))


def test_the_installed_faust_has_every_private_name_the_adapter_uses() -> None:
    worker = app()
    consumer = worker.consumer  # built lazily, without connecting
    assert isinstance(consumer, BatchConsumer)
    assert isinstance(worker.transport, BatchTransport) and worker.transport.receiver is worker
    check_faust_internals(consumer)
    assert table_bytes(worker.state_table) == {}
    assert worker.committed_offset(TP("deposits", 0)) is None


@pytest.mark.parametrize(("owner", "name", "kind"), [n for n in PRIVATE_NAMES if n[2] == "method"])
def test_a_missing_method_is_named_at_start_up(
    monkeypatch: pytest.MonkeyPatch, owner: type, name: str, kind: str
) -> None:
    for cls in owner.__mro__:  # wherever it is defined, overridden or inherited
        if name in vars(cls):
            monkeypatch.delattr(cls, name)
    with pytest.raises(RuntimeError, match=name):
        check_faust_internals()


def test_a_missing_instance_attribute_is_named() -> None:
    consumer = app().consumer
    del consumer._read_offset  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="_read_offset"):
        check_faust_internals(consumer)


def test_the_batch_loop_overrides_the_method_faust_calls() -> None:
    """Faust's fetcher calls _drain_messages; if it stopped doing so, our loop would never run."""
    assert BatchConsumer._drain_messages is not faust_aiokafka.Consumer._drain_messages
    assert "consumer._drain_messages(self)" in inspect.getsource(Fetcher)
