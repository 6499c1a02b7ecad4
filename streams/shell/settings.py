"""Worker settings: one frozen model, read from the environment and validated at start-up.

Every setting has an environment variable ``SENTINEL_<NAME>``; the bootstrap servers
also honour the conventional ``KAFKA_BOOTSTRAP_SERVERS``. See docs/operations.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """How a worker connects, what it reads and writes, and which rules it runs."""

    model_config = SettingsConfigDict(env_prefix="SENTINEL_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("SENTINEL_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of the Kafka cluster.",
    )
    app_id: str = Field("deposit-sentinel", description="Consumer group and prefix of internal topics.")
    deposits_topic: str = "deposits"
    withdrawals_topic: str = "withdrawals"
    alerts_topic: str = "freeze-alerts"
    dead_letter_topic: str = "sentinel-dlq"
    control_topic: str = Field(
        "sentinel-control", description="Compacted topic of published rule bundles; empty turns it off."
    )
    transfers_topic: str = Field(
        "chain-transfers",
        description="On-chain transfers keyed by chain, for exposure rules (docs/events.md); empty turns it off.",
    )
    allowlist_topic: str = Field(
        "sentinel-allowlist",
        description="Compacted topic of allowlist changes (`sentinel allow`), signed like bundles; empty turns it off.",
    )
    control_public_keys: str = Field(
        "",
        description=(
            f"Ed25519 public key files (PEM) or directories of *.pub files, separated by {os.pathsep!r}:"
            " a bundle or allowlist change is applied only if one of them verifies its signature."
        ),
    )
    control_accept_unsigned: bool = Field(
        False,
        description="Also apply unsigned bundles from the control topic: anyone who can write it changes the rules."
        " For a local demo only.",
    )
    control_signing_key: Path | None = Field(
        default=None, description="Ed25519 private key file (PEM) that `sentinel rules publish` signs with."
    )
    reload_interval: float = Field(2.0, ge=0, description="Seconds between looks at the rule files; 0 turns it off.")
    topic_partitions: int = Field(
        4, ge=1, description="Partitions of the topics and the state table; inputs must have this many."
    )
    replication_factor: int = Field(1, ge=1, description="Replicas of topics the worker creates (changelog).")
    rules: str = Field(
        "rules",
        description=f"Rule directories or files, separated by {os.pathsep!r}; later ones add to them.",
    )
    session_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds without heartbeat before the group gives a dead worker's partitions away.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(default=None, description="Never logged; or use sasl_password_file.")
    sasl_password_file: Path | None = Field(default=None, description="A file holding the password (a secret mount).")
    ssl_cafile: str | None = Field(default=None, description="CA bundle the brokers' certificates are checked against.")
    ssl_certfile: str | None = Field(default=None, description="Client certificate, for mutual TLS.")
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    max_poll_records: int = Field(
        2000, ge=1, le=100_000, description="Most input records screened as one batch (one poll)."
    )
    stall_timeout: float = Field(
        120.0,
        ge=0,
        description="Seconds with records waiting and none screened before the worker exits to be restarted; 0: never.",
    )
    state_sweep_interval: float = Field(
        30.0,
        ge=0,
        description="Seconds between sweeps that delete the rule state of idle accounts (see docs/rules.md); 0: never.",
    )
    state_cache_accounts: int = Field(
        250_000,
        ge=1,
        description=(
            "Accounts whose decoded rule state a worker keeps in memory (the rest are decoded again on use,"
            " counted in sentinel_state_decoded_total)."
        ),
    )
    full_collection_interval: float = Field(
        300.0,
        ge=0,
        description=(
            "Seconds between the worker's full garbage collections, which pause it (CPython's automatic ones"
            " are then off, see docs/operations.md); 0: CPython's own schedule."
        ),
    )
    metrics_host: str = Field("127.0.0.1", description="Address the /metrics endpoint binds to.")
    metrics_port: int = Field(9108, ge=0, le=65535, description="Port of /metrics; 0 disables it.")
    # Pre-withdrawal screening API (docs/screening.md): off unless a port and tokens are given.
    screening_port: int = Field(0, ge=0, le=65535, description="Port of the screening API; 0 turns it off.")
    screening_host: str = Field("127.0.0.1", description="Address the screening API binds to.")
    screening_url: str | None = Field(
        default=None, description="How other workers reach this one's screening API (default: scheme://host:port)."
    )
    screening_tokens: SecretStr | None = Field(
        default=None, description="Callers and tokens, 'name:token[:scopes]' comma-separated; never logged."
    )
    screening_tokens_file: Path | None = Field(
        default=None, description="A file of callers, one 'name token [scopes]' per line (a secret mount)."
    )
    screening_tls_certfile: Path | None = Field(default=None, description="Serve the API over TLS with this cert.")
    screening_tls_keyfile: Path | None = None
    screening_max_body: int = Field(16_384, ge=256, le=1_048_576, description="Largest request body, in bytes.")
    screening_rate: float = Field(500.0, gt=0, description="Requests per second per caller (a token bucket).")
    screening_fail_mode: Literal["closed", "open"] = Field(
        "closed", description="Without the account's state: closed answers 503 and hold; open screens without it."
    )
    screening_decisions_topic: str = Field("screening-decisions", description="The audit topic of every decision.")
    screening_route_timeout: float = Field(
        2.0, gt=0, description="Seconds to wait for a routed request, or for an audit record's acknowledgement."
    )
    # The alert console (docs/console.md): `sentinel console`.
    console_port: int = Field(9300, ge=1, le=65535, description="Port of the alert console (`sentinel console`).")
    console_host: str = Field("127.0.0.1", description="Address the alert console binds to.")
    console_auth: Literal["tokens", "proxy"] = Field(
        "tokens", description="tokens: users sign in with a token; proxy: a trusted proxy names the user in a header."
    )
    console_tokens: SecretStr | None = Field(
        default=None, description="Console users and tokens, 'name:token' comma-separated; never logged."
    )
    console_tokens_file: Path | None = Field(
        default=None, description="A file of console users, one 'name token' per line (a secret mount)."
    )
    console_user_header: str = Field(
        "X-Forwarded-User", description="With console_auth=proxy: the header in which the proxy names the user."
    )
    console_history_days: float = Field(
        30.0, gt=0, description="How far back the console reads alerts at start (days; offsets for times)."
    )
    console_tls_certfile: Path | None = Field(default=None, description="Serve the console over TLS with this cert.")
    console_tls_keyfile: Path | None = None
    dispositions_topic: str = Field(
        "alert-dispositions", description="Compacted topic of triage decisions (the console's state and audit trail)."
    )
    data_dir: str = Field(".local/worker", description="Faust's local data directory.")
    log_level: str = "info"

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("at least one host:port is needed")
        for server in servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return ",".join(servers)

    @model_validator(mode="after")
    def _sasl_complete(self) -> Settings:
        if self.security_protocol.startswith("SASL"):
            if not self.sasl_username:
                raise ValueError("SASL needs SENTINEL_SASL_USERNAME")
            if self.sasl_password is None and self.sasl_password_file is None:
                raise ValueError("SASL needs SENTINEL_SASL_PASSWORD or SENTINEL_SASL_PASSWORD_FILE")
        return self

    @model_validator(mode="after")
    def _screening_secure(self) -> Settings:
        if self.screening_port and self.screening_tokens is None and self.screening_tokens_file is None:
            raise ValueError(
                "the screening API needs callers: SENTINEL_SCREENING_TOKENS or SENTINEL_SCREENING_TOKENS_FILE"
            )
        if (self.screening_tls_certfile is None) != (self.screening_tls_keyfile is None):
            raise ValueError("TLS for the screening API needs both SCREENING_TLS_CERTFILE and SCREENING_TLS_KEYFILE")
        return self

    def sasl_secret(self) -> str | None:
        """The SASL password, from the environment or its file (read when needed, never stored in logs)."""
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        if self.sasl_password_file is not None:
            return self.sasl_password_file.read_text().strip()
        return None

    @property
    def bootstrap_list(self) -> list[str]:
        """The bootstrap servers as a list."""
        return self.kafka_bootstrap_servers.split(",")

    @property
    def control_key_paths(self) -> list[str]:
        """The public key files or directories for the control topic, in order."""
        return [p for p in self.control_public_keys.split(os.pathsep) if p]

    @property
    def rule_paths(self) -> list[str]:
        """The rule directories or files, in order."""
        return [p for p in self.rules.split(os.pathsep) if p]

    @property
    def exposure_checks_topic(self) -> str:
        """The repartition topic that takes deposits to the partition of their chain's exposure state."""
        return f"{self.app_id}-exposure-checks"

    @property
    def topic_event_types(self) -> dict[str, str]:
        """Which event type each input topic carries."""
        return {self.deposits_topic: "deposit", self.withdrawals_topic: "withdrawal"}
