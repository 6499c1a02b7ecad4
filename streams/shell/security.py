"""TLS and SASL settings for every Kafka client of the project.

Secrets come from the environment (``SENTINEL_SASL_PASSWORD``) or a file
(``SENTINEL_SASL_PASSWORD_FILE``, e.g. a mounted Kubernetes secret) and are never logged:
the settings model keeps them as ``SecretStr`` and errors name the user, not the password.
"""

from __future__ import annotations

import asyncio
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


async def tls_problem(settings: Settings, timeout: float = 10.0) -> str | None:
    """Why a TLS handshake with the first bootstrap server fails, in words; ``None`` if it succeeds.

    The Kafka client reports a refused certificate only as "unable to bootstrap" (the
    reason goes to its log); this repeats the handshake alone to name the cause.
    """
    context = ssl_context(settings)
    if context is None:
        return None
    host, _, port = settings.bootstrap_list[0].rpartition(":")
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port), ssl=context, server_hostname=host), timeout
        )
    except ssl.SSLCertVerificationError as exc:
        return (
            f"the broker's TLS certificate is not trusted ({exc.verify_message}); "
            f"check SENTINEL_SSL_CAFILE ({settings.ssl_cafile or 'the system CAs'})"
        )
    except ssl.SSLError as exc:
        return f"the TLS handshake failed ({exc.reason or exc})"
    except (OSError, TimeoutError):
        return None  # not a TLS problem: the caller's own error says what happened
    writer.close()
    return None
