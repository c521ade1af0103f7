"""Settings of the care service (environment variables prefixed ``CARE_``)."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.care.optout import DEFAULT_HINT, DEFAULT_KEYWORDS, has_hint, keywords_of
from services.kit.config import get_settings

DEVELOPMENT_RECEIPT_TOKEN = "keepwell-development-receipt-token"


class CareSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARE_", extra="ignore")

    sms_provider: Literal["sandbox", "aliyun"] = "sandbox"
    sandbox_url: str = "http://127.0.0.1:8009"
    sandbox_port: int = 8009
    receipt_token: SecretStr = SecretStr(DEVELOPMENT_RECEIPT_TOKEN)
    """Shared secret in the receipt callback URL (``?token=``) for either provider."""
    uplink_token: SecretStr | None = None
    """Shared secret in the inbound-SMS (uplink) callback URL; unset, the receipt token.
    A separate secret keeps a leaked receipt URL from being able to opt customers out."""

    aliyun_access_key_id: str = ""
    aliyun_access_key_secret: SecretStr = SecretStr("")
    aliyun_sign_name: str = ""
    aliyun_endpoint: str = "https://dysmsapi.aliyuncs.com"
    aliyun_lookup_settles_seconds: float = 300.0
    """How long after an attempt Aliyun's send records are trusted to show it: a send of
    unknown outcome not found by then is sent again, one found is never resent."""

    batch_size: int = 500
    """Recipients per provider call (the sandbox takes any size; Aliyun is capped per call)."""
    rate_per_second: float = 0.0
    """Provider token bucket in Redis; 0 means unthrottled."""
    dispatch_concurrency: int = 4
    """Dispatch jobs started per campaign; they share the work through row claims."""
    lease_seconds: float = 60.0
    """How long a claimed batch is a worker's; must exceed the provider call's timeout."""
    max_attempts: int = 5
    retry_base_seconds: float = 5.0
    job_seconds: float = 30.0
    """A dispatch job hands over to a fresh job after this long, so jobs stay short."""
    redrive_every_seconds: int = 5
    stall_seconds: float = 15.0
    """The re-driver tops a campaign's jobs up to ``dispatch_concurrency`` at most this often."""

    quiet_start_hour: int = 21
    quiet_end_hour: int = 8
    frequency_cap: int = 3
    frequency_window_days: int = 7
    cap_exempt_categories: list[str] = ["greeting", "alert"]
    complaint_follow_up_hours: float = 24.0
    """The satisfaction follow-up SMS (回访) goes this long after a complaint is closed."""
    complaint_satisfaction_reply_days: float = Field(7.0, gt=0)
    """A score 1-5 replied this long after the follow-up reached the customer answers it."""

    opt_out_hint: str = DEFAULT_HINT
    """Appended to messages of ``opt_out_hint_categories`` whose text names no keyword to
    reply; it must itself name one of ``opt_out_keywords``."""
    opt_out_hint_categories: list[str] = ["marketing", "care", "greeting"]
    """Commercial messages, which must say how to refuse more; alerts and complaint service
    messages (category ``alert``) are notifications and carry none."""
    opt_out_keywords: list[str] = list(DEFAULT_KEYWORDS)
    """A reply that is exactly one of these (after trimming, full-width to half-width, any
    case) opts the customer out of every SMS."""

    PRODUCTION_REQUIRES: ClassVar[tuple[str, ...]] = (
        "sms_provider",
        "receipt_token",
        "aliyun_access_key_id",
        "aliyun_access_key_secret",
        "aliyun_sign_name",
    )
    """Settings the care processes (service and worker) must be given in production: the
    defaults send nothing (sandbox) or are development secrets. The deployment test checks
    that every care process is given each of them."""

    @property
    def keywords(self) -> frozenset[str]:
        return keywords_of(self.opt_out_keywords)

    @property
    def uplink_secret(self) -> SecretStr:
        return self.uplink_token or self.receipt_token

    @field_validator("uplink_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # ``CARE_UPLINK_TOKEN=`` (an empty line in a compose file) means "not given".
        return None if value == "" else value

    @field_validator("opt_out_hint_categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        known = {"marketing", "care", "greeting", "alert"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown categories {unknown}; known: {sorted(known)}")
        return value

    @model_validator(mode="after")
    def _hint_names_a_keyword(self) -> CareSettings:
        if not self.keywords:
            raise ValueError("CARE_OPT_OUT_KEYWORDS must name at least one keyword")
        if not has_hint(self.opt_out_hint, self.keywords):
            raise ValueError(
                f"CARE_OPT_OUT_HINT {self.opt_out_hint!r} must tell the customer to reply one "
                f"of CARE_OPT_OUT_KEYWORDS {sorted(self.keywords)}, e.g. 拒收请回复R"
            )
        return self

    @model_validator(mode="after")
    def _refuse_weak_secrets_in_production(self) -> CareSettings:
        if get_settings().env != "production":
            return self
        missing = [n for n in self.PRODUCTION_REQUIRES if n not in self.model_fields_set]
        if missing:
            names = ", ".join(f"CARE_{n.upper()}" for n in missing)
            raise ValueError(f"{names} must be set in production")
        token = self.receipt_token.get_secret_value()
        if token == DEVELOPMENT_RECEIPT_TOKEN or len(token) < 32:
            raise ValueError("CARE_RECEIPT_TOKEN must be a secret of your own (32+ bytes)")
        if self.uplink_token is not None:
            uplink = self.uplink_token.get_secret_value()
            if uplink == DEVELOPMENT_RECEIPT_TOKEN or len(uplink) < 32:
                raise ValueError("CARE_UPLINK_TOKEN must be a secret of your own (32+ bytes)")
        if self.sms_provider == "sandbox":
            raise ValueError("CARE_SMS_PROVIDER=sandbox sends nothing; production needs aliyun")
        return self


@lru_cache
def get_care_settings() -> CareSettings:
    return CareSettings()
