"""Production refuses to start with a development or weak internal key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.kit.config import DEVELOPMENT_INTERNAL_KEY, Settings


@pytest.mark.parametrize("key", [DEVELOPMENT_INTERNAL_KEY, "short-secret"])
def test_production_refuses_a_development_or_short_key(key: str) -> None:
    with pytest.raises(ValidationError, match="KEEPWELL_INTERNAL_KEY"):
        Settings(env="production", internal_key=key)


def test_production_accepts_a_strong_key_and_development_accepts_the_default() -> None:
    assert Settings(env="production", internal_key="k" * 40).env == "production"
    assert Settings(env="development").internal_key.get_secret_value() == DEVELOPMENT_INTERNAL_KEY


def test_service_urls_default_to_host_and_port_and_can_be_overridden() -> None:
    settings = Settings(host="10.0.0.5", profile_port=9001, care_url="http://care.internal")
    assert settings.url_of("profile") == "http://10.0.0.5:9001"
    assert settings.url_of("care") == "http://care.internal"
