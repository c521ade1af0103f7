"""Production refuses to start without the keys of internal tokens; development needs none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.kit import keys
from services.kit.config import Settings
from services.kit.keys import MissingKey, Signer, require_signing_key

NO_KEYS: dict[str, Any] = {
    f"{signer.value}_{kind}_key": None for signer in Signer for kind in ("public", "signing")
}


def public_keys() -> dict[str, Any]:
    return {f"{signer.value}_public_key": keys.generate()[1] for signer in Signer}


def test_production_refuses_to_start_without_the_public_keys() -> None:
    with pytest.raises(ValidationError, match="KEEPWELL_USER_PUBLIC_KEY"):
        Settings(env="production", **NO_KEYS)
    partial = {**NO_KEYS, **public_keys(), "rebuild_public_key": None}
    with pytest.raises(ValidationError, match="KEEPWELL_REBUILD_PUBLIC_KEY"):
        Settings(env="production", **partial)


def test_production_with_public_keys_only_verifies_and_cannot_sign() -> None:
    settings = Settings(env="production", **{**NO_KEYS, **public_keys()})
    for signer in Signer:
        assert keys.public_key(settings, signer) is not None
        with pytest.raises(MissingKey, match=f"KEEPWELL_{signer.value.upper()}_SIGNING_KEY"):
            require_signing_key(settings, signer)


def test_a_malformed_key_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="KEEPWELL_RELAY_"):
        Settings(**{**NO_KEYS, "relay_public_key": "not-a-key"})


def test_development_makes_one_key_pair_per_signer_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(env="development", data_dir=tmp_path, **NO_KEYS)
    first = keys.signing_key(settings, Signer.relay)
    again = Settings(env="development", data_dir=tmp_path, **NO_KEYS)
    assert keys.encode_private(keys.signing_key(again, Signer.relay)) == keys.encode_private(first)
    assert keys.encode_public(keys.public_key(again, Signer.relay)) == keys.encode_public(
        first.public_key()
    )
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["relay.key"]


def test_service_urls_default_to_host_and_port_and_can_be_overridden() -> None:
    settings = Settings(host="10.0.0.5", profile_port=9001, care_url="http://care.internal")
    assert settings.url_of("profile") == "http://10.0.0.5:9001"
    assert settings.url_of("care") == "http://care.internal"
