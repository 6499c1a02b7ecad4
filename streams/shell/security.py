"""TLS and SASL settings for every Kafka client of the project.

Secrets come from the environment (``SENTINEL_SASL_PASSWORD``) or a file
(``SENTINEL_SASL_PASSWORD_FILE``, e.g. a mounted Kubernetes secret) and are never logged:
the settings model keeps them as ``SecretStr`` and errors name the user, not the password.
"""

from __future__ import annotations

import ssl
from typing import Any

from streams.shell.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL, verifying the brokers against the CA file."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=settings.ssl_cafile)
    context.check_hostname = settings.ssl_check_hostname
    if settings.ssl_certfile:
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka producers, consumers and admin clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_list,
        "security_protocol": settings.security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_secret()
    return options


def faust_credentials(settings: Settings) -> Any:
    """The same settings in Faust's terms (``None`` for PLAINTEXT)."""
    import faust

    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_secret(),
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


async def check_connection(settings: Settings, topics: tuple[str, ...] = (), wait: float = 30.0) -> None:
    """Connect once and fail with a plain message (not a retry loop) if the cluster refuses us.

    With ``topics``, also wait (up to ``wait`` seconds) until each exists with a leader for
    every partition: a consumer group joined before then is given no partitions and would
    sit idle until its next metadata refresh.
    """
    import asyncio

    from aiokafka.errors import KafkaError

    from streams.shell.clients import admin_client

    admin = admin_client(settings, request_timeout_ms=15_000)
    try:
        await admin.start()
        await admin.list_topics()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while topics:
            described = await admin.describe_topics(list(topics))
            ready = {
                d["topic"]
                for d in described
                if d.get("error_code", 0) == 0
                and d.get("partitions")
                and all(p.get("leader", -1) >= 0 for p in d["partitions"])
            }
            if ready >= set(topics):
                break
            if loop.time() > deadline:
                missing = ", ".join(sorted(set(topics) - ready))
                raise ConnectionError(f"topic(s) {missing} not found on the cluster (run: sentinel topics create)")
            await asyncio.sleep(0.2)
    except KafkaError as exc:
        who = f" as {settings.sasl_username!r} ({settings.sasl_mechanism})" if settings.sasl_username else ""
        raise ConnectionError(
            f"cannot connect to {settings.kafka_bootstrap_servers} over {settings.security_protocol}{who}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    finally:
        await admin.close()
