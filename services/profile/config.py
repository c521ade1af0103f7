"""Settings of the profile service (environment variables prefixed ``PROFILE_``).

Tier thresholds and the value classification are configuration, not code: an operator
retunes them per deployment and the next monthly recompute applies them.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CustomAttribute(BaseModel):
    """One operator-defined field of ``customer.custom`` (see PROFILE_CUSTOM_ATTRIBUTES)."""

    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    required: bool = False
    max_length: int | None = None
    choices: list[str] | None = None
    description: str = ""
    # Personal data (an ID card or passport number, a VIP card number...): hidden from
    # callers who see masked phone numbers, and every unmasked read of it is audited.
    personal: bool = False


class ProfileSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROFILE_", extra="ignore")

    # Average monthly spend (yuan) over the last 3 complete months that earns each tier.
    tier_diamond_spend: Decimal = Decimal("500")
    tier_gold_spend: Decimal = Decimal("300")
    tier_silver_spend: Decimal = Decimal("150")
    # Months with spend (of the 3) a customer needs to keep a tier above "none".
    tier_min_active_months: int = Field(2, ge=1, le=3)
    # RFM monetary score 1..5: the average monthly spend must reach each bound for the next score.
    rfm_monetary_bounds: list[Decimal] = [
        Decimal("100"),
        Decimal("200"),
        Decimal("350"),
        Decimal("500"),
    ]
    # Value quadrant (sales-profit matrix, without cost data): "high value" at this average
    # spend, "growing" when the last month's spend is at least (1 + growth) x the first's.
    quadrant_value_spend: Decimal = Decimal("300")
    quadrant_growth: Decimal = Decimal("0.05")
    # Customer fields an operator adds without a migration: {"name": {"type": ...}, ...}.
    custom_attributes: dict[str, CustomAttribute] = {}
    # What a partner system's import rows may carry: facts a partner holds (plan, contract,
    # balance, identity), never what the operator decides (tier, manager, status, levels).
    partner_import_fields: list[str] = [
        "name", "gender", "birthday", "region", "city", "join_date", "plan_name", "plan_fee",
        "contract_name", "contract_end", "balance", "sms_opt_out",
    ]  # fmt: skip
    # The most rows one batch-import request may carry; larger feeds use the command.
    import_max_rows_per_request: int = 50_000
    # The import's body limit (the other routes have KEEPWELL_MAX_BODY_BYTES): 50,000 rows of
    # a full archive are about 25 MB of CSV. Read once, when the routes are built.
    import_max_body_bytes: int = 64 * 1024 * 1024
    # Memory for the import's sorts and intermediate rows (SET LOCAL, that transaction
    # only): with the default 4 MB a 100,000-row import sorts and spills on disk.
    import_work_mem_mb: int = Field(256, ge=4)
    page_size_max: int = 500
    # Free text of the contact log (the note) older than this is anonymised by the worker's
    # nightly retention job (PIPL: kept no longer than needed); the entries stay, so the
    # reach rate still counts them.
    contact_text_retention_days: int = Field(3 * 365, ge=1)

    @model_validator(mode="after")
    def _thresholds_descend(self) -> ProfileSettings:
        if not self.tier_diamond_spend >= self.tier_gold_spend >= self.tier_silver_spend >= 0:
            raise ValueError("PROFILE_TIER_*_SPEND must satisfy diamond >= gold >= silver >= 0")
        if sorted(self.rfm_monetary_bounds) != self.rfm_monetary_bounds:
            raise ValueError("PROFILE_RFM_MONETARY_BOUNDS must be ascending")
        return self


@lru_cache
def get_profile_settings() -> ProfileSettings:
    return ProfileSettings()
