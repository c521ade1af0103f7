"""Settings of the complaint service (environment variables prefixed ``COMPLAINT_``)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ComplaintSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMPLAINT_", extra="ignore")

    repeat_window_days: int = 30
    """A complaint by the same customer in the same category within this many days is a
    repeat: linked to the earlier one and raised one severity level."""
    repeat_count_days: int = 90
    """``repeat_count`` on ``complaint.opened``: the customer's complaints in this window."""
    reopen_days: int = 7
    """A closed complaint can be reopened for this many days after it closed."""

    warn_lead_minutes: int = 15
    """The handler is warned this long before a target falls due."""
    escalate_after_minutes: int = 60
    """After a breach (escalated to the team supervisor), the next escalation level (the
    team's escalation manager) this long later."""
    default_escalation_manager: str | None = None
    """Used for teams that have no escalation contact of their own configured."""
    sweep_batch: int = 5000
    """Clocks one sweep transaction takes at most; a sweep loops until none is due."""
    text_retention_days: int = Field(2 * 365, ge=1)
    """A complaint's free text (description, step notes and what they record, actions,
    compensation reasons) is anonymised this long after the ticket closed (PIPL: kept no
    longer than needed); the tickets stay, so the reports count them."""

    approval_supervisor_above: dict[str, Decimal] = {
        "bill_credit": Decimal("50"),
        "data_pack": Decimal("30"),
        "gift": Decimal("100"),
        "points": Decimal("200"),
        "other": Decimal("50"),
    }
    """A compensation above this amount (yuan, per kind) needs a supervisor's approval."""
    approval_admin_above: dict[str, Decimal] = {
        "bill_credit": Decimal("500"),
        "data_pack": Decimal("300"),
        "gift": Decimal("1000"),
        "points": Decimal("2000"),
        "other": Decimal("500"),
    }
    """... and above this amount an admin's."""
    max_compensation: Decimal = Decimal("100000")
    """Anything above this is refused as a typing error."""


@lru_cache
def get_complaint_settings() -> ComplaintSettings:
    return ComplaintSettings()
