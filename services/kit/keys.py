"""The key pairs internal tokens are signed with (Ed25519), one per kind of signer.

Each signer holds only its own private key; every service holds only the public keys, so a
service (or anyone who reads its environment) can verify a token but never mint one.

Keys come from the environment (``KEEPWELL_<SIGNER>_SIGNING_KEY`` for a private key,
``KEEPWELL_<SIGNER>_PUBLIC_KEY`` for a public one), as PEM or as the 32 raw bytes in
base64. Outside production a key that is not configured is a development key kept under
``KEEPWELL_DATA_DIR/keys/`` and made on first use (``keepwell run`` makes them before it
starts its children), so development and tests need nothing configured. Production never
falls back: :class:`~services.kit.config.Settings` refuses to load without the public keys,
and a signer refuses to sign without its private key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import tempfile
from collections.abc import Callable
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

if TYPE_CHECKING:
    from services.kit.config import Settings


class Signer(StrEnum):
    """Who signs a token, and so what the token may claim (see ARCHITECTURE.md)."""

    user = "user"  # the gateway and `keepwell token`: people, with their role and team
    relay = "relay"  # every worker's event relay: accepted at POST /events, nowhere else
    rebuild = "rebuild"  # read-model rebuilds: GET profile's /customers, nothing else


class MissingKey(RuntimeError):
    """A process was asked to sign or verify without the key (production only)."""


def encode_private(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()


def encode_public(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def generate() -> tuple[str, str]:
    """A fresh key pair as (private, public), in the form the settings take."""
    key = Ed25519PrivateKey.generate()
    return encode_private(key), encode_public(key.public_key())


@lru_cache(maxsize=32)
def parse_private(value: str) -> Ed25519PrivateKey:
    value = value.strip()
    if value.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(value.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the signing key must be an Ed25519 private key")
        return key
    return Ed25519PrivateKey.from_private_bytes(_raw(value))


@lru_cache(maxsize=32)
def parse_public(value: str) -> Ed25519PublicKey:
    value = value.strip()
    if value.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(value.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the public key must be an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(_raw(value))


def _raw(value: str) -> bytes:
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a key must be PEM or 32 bytes in base64") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 key in base64 must be 32 bytes, not {len(raw)}")
    return raw


def development_key(data_dir: Path, signer: Signer) -> str:
    """The development private key of ``signer`` under ``data_dir``, made once."""
    return development_secret(data_dir / "keys" / f"{signer.value}.key", lambda: generate()[0])


def development_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in ``path``, made by ``make`` on first use. Several processes may ask
    at once: the file appears whole (written aside, then linked) and the first one linked
    wins."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(make() + "\n")
            os.chmod(scratch, 0o600)
            with contextlib.suppress(FileExistsError):
                os.link(scratch, path)
        finally:
            os.unlink(scratch)
    return path.read_text().strip()


def signing_key(settings: Settings, signer: Signer) -> Ed25519PrivateKey:
    """The private key this process signs ``signer``'s tokens with."""
    configured = getattr(settings, f"{signer.value}_signing_key")
    if configured is not None:
        return parse_private(configured.get_secret_value())
    if settings.env == "production":
        name = f"KEEPWELL_{signer.value.upper()}_SIGNING_KEY"
        raise MissingKey(f"{name} is not set: this process cannot sign {signer.value} tokens")
    return parse_private(development_key(settings.data_dir, signer))


def public_key(settings: Settings, signer: Signer) -> Ed25519PublicKey:
    """The public key that verifies ``signer``'s tokens."""
    configured: str | None = getattr(settings, f"{signer.value}_public_key")
    if configured is not None:
        return parse_public(configured)
    if settings.env == "production":  # Settings refuses production without them
        raise MissingKey(f"KEEPWELL_{signer.value.upper()}_PUBLIC_KEY is not set")
    private = getattr(settings, f"{signer.value}_signing_key")
    value = (
        private.get_secret_value()
        if private is not None
        else development_key(settings.data_dir, signer)
    )
    return parse_private(value).public_key()


def require_signing_key(settings: Settings, signer: Signer) -> None:
    """Fail now (at process start) rather than at the first token, if the key is missing."""
    signing_key(settings, signer)
