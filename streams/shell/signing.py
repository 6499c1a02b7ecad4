"""Signed control-plane messages: who may change what every worker runs.

Whoever can write to the control topic could otherwise replace the rules of every worker
(an empty pack stops every freeze alert). So a control record is an *envelope* that
carries its payload with an Ed25519 signature, and a worker accepts it only if one of its
configured public keys verifies it::

    {"format": "sentinel-signed", "version": 1, "kind": "ruleset-bundle",
     "key_id": "3f2a9c0d5e7b1a64", "signature": "<base64>", "payload": "<base64>"}

The signature covers ``SIGNED_PREFIX``, the kind and the payload, so a signature made for
one kind of message cannot be passed off as another. ``key_id`` names the key (the first
16 hex digits of the SHA-256 of its raw public bytes) so a worker holding several keys
(during a rotation) knows which to try; it is a hint, not trust: the signature decides.

Keys are PEM files (``sentinel keys generate``): the private key stays with whoever
publishes (a file readable by its owner only), workers get public keys. Nothing here logs
key material. Which messages are *newer* (no replay of an old, weaker pack) is the
reader's concern (:mod:`streams.shell.reload`), since only the payload says when it was made.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ENVELOPE_FORMAT = "sentinel-signed"
ENVELOPE_VERSION = 1
SIGNED_PREFIX = b"deposit-sentinel control message v1\n"
RULESET_BUNDLE = "ruleset-bundle"
ALLOWLIST_CHANGE = "allowlist-change"


class ControlRejectedError(Exception):
    """A control message that must not be applied; the text says why (never any key material)."""


class KeyFileError(Exception):
    """A key file that is missing or not an Ed25519 key of the expected kind."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class ControlTrust:
    """Which control messages a worker accepts: those signed by ``keys``, and unsigned ones only if told."""

    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    accept_unsigned: bool = False

    def open(self, record: bytes, kind: str) -> tuple[bytes, str | None]:
        """The payload of a control record and the id of the key that signed it (``None``: unsigned).

        Raises :class:`ControlRejectedError` for anything unsigned (unless accepted), signed by an
        unknown key, wrongly signed, of another kind or not an envelope at all.
        """
        try:
            data = orjson.loads(record)
        except orjson.JSONDecodeError as exc:
            raise ControlRejectedError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ControlRejectedError("not a JSON object")
        if data.get("format") != ENVELOPE_FORMAT:
            if self.accept_unsigned:
                return record, None
            if not self.keys:
                raise ControlRejectedError("unsigned, and no public keys are configured (SENTINEL_CONTROL_PUBLIC_KEYS)")
            raise ControlRejectedError("unsigned")
        return self._verify(data, kind)

    def _verify(self, data: dict[str, Any], kind: str) -> tuple[bytes, str]:
        if data.get("version") != ENVELOPE_VERSION:
            found = data.get("version")
            raise ControlRejectedError(f"envelope version {found!r}, this worker reads {ENVELOPE_VERSION}")
        if data.get("kind") != kind:
            raise ControlRejectedError(f"a {data.get('kind')!r} message where a {kind!r} was expected")
        name = data.get("key_id")
        public_key = self.keys.get(name) if isinstance(name, str) else None
        if public_key is None or not isinstance(name, str):
            raise ControlRejectedError(f"signed by an unknown key {name!r}")
        try:
            payload = base64.b64decode(data["payload"], validate=True)
            signature = base64.b64decode(data["signature"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise ControlRejectedError("payload or signature missing or not base64") from None
        try:
            public_key.verify(signature, _signed_bytes(kind, payload))
        except InvalidSignature:
            raise ControlRejectedError(f"the signature does not verify with key {name}") from None
        return payload, name


def sign(payload: bytes, kind: str, private_key: Ed25519PrivateKey) -> bytes:
    """The control record that carries ``payload`` signed with ``private_key``."""
    signature = private_key.sign(_signed_bytes(kind, payload))
    return orjson.dumps(
        {
            "format": ENVELOPE_FORMAT,
            "version": ENVELOPE_VERSION,
            "kind": kind,
            "key_id": key_id(private_key.public_key()),
            "signature": base64.b64encode(signature).decode(),
            "payload": base64.b64encode(payload).decode(),
        }
    )


def _signed_bytes(kind: str, payload: bytes) -> bytes:
    return SIGNED_PREFIX + kind.encode() + b"\n" + payload


def generate_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (private, mode 0600) and ``NAME.pub`` (public) below ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} exists; refusing to overwrite a key")
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Created with its final mode, so the private key is never readable by others, not even briefly.
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path.write_bytes(public_pem)
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file (unencrypted PKCS#8, as ``generate_key_pair`` writes it)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a readable private key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key")
    return key


def load_public_keys(paths: Sequence[str | Path]) -> dict[str, Ed25519PublicKey]:
    """Every public key in the given files, or in the ``*.pub`` files of the given directories, by id."""
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in paths:
        path = Path(entry)
        files = sorted(path.glob("*.pub")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise KeyFileError(f"{path}: no *.pub files")
        for file in files:
            try:
                key = serialization.load_pem_public_key(file.read_bytes())
            except (OSError, ValueError) as exc:
                raise KeyFileError(f"{file}: not a readable public key ({type(exc).__name__})") from None
            if not isinstance(key, Ed25519PublicKey):
                raise KeyFileError(f"{file}: not an Ed25519 public key")
            keys[key_id(key)] = key
    return keys
