"""The care processes refuse to start in production without their own SMS settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from services.care.config import CareSettings
from services.kit import keys
from services.kit.config import get_settings


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KEEPWELL_ENV", "production")
    for signer in keys.Signer:
        monkeypatch.setenv(f"KEEPWELL_{signer.value.upper()}_PUBLIC_KEY", keys.generate()[1])
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_production_names_every_missing_care_setting(production: None) -> None:
    with pytest.raises(ValidationError) as refused:
        CareSettings(receipt_token="r" * 40)
    message = str(refused.value)
    assert "CARE_SMS_PROVIDER" in message and "CARE_ALIYUN_ACCESS_KEY_ID" in message
    assert "CARE_RECEIPT_TOKEN" not in message


ALIYUN_IN_PRODUCTION = {
    "CARE_SMS_PROVIDER": "aliyun",
    "CARE_RECEIPT_TOKEN": "r" * 40,
    "CARE_ALIYUN_ACCESS_KEY_ID": "id",
    "CARE_ALIYUN_ACCESS_KEY_SECRET": "secret",
    "CARE_ALIYUN_SIGN_NAME": "客户关怀",
}


def test_production_starts_with_every_care_setting_from_the_environment(
    production: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ALIYUN_IN_PRODUCTION.items():
        monkeypatch.setenv(name, value)
    assert CareSettings().sms_provider == "aliyun"


def test_the_replies_url_secret_is_the_receipt_token_unless_a_strong_one_of_its_own_is_given(
    production: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty CARE_UPLINK_TOKEN, as the compose file passes it when unset.
    for name, value in {**ALIYUN_IN_PRODUCTION, "CARE_UPLINK_TOKEN": ""}.items():
        monkeypatch.setenv(name, value)
    assert CareSettings().uplink_secret.get_secret_value() == "r" * 40
    monkeypatch.setenv("CARE_UPLINK_TOKEN", "u" * 40)
    assert CareSettings().uplink_secret.get_secret_value() == "u" * 40
    monkeypatch.setenv("CARE_UPLINK_TOKEN", "short")
    with pytest.raises(ValidationError, match="CARE_UPLINK_TOKEN"):
        CareSettings()
