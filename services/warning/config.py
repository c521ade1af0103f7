"""Settings of the warning service (prefix ``WARNING_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class WarningSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARNING_", extra="ignore")

    # The operator's business day: "yesterday" for the nightly run, cooling-off dates.
    time_zone: str = "Asia/Shanghai"
    # Nightly detection for the previous day, in ``time_zone``.
    detect_hour: int = 3
    detect_minute: int = 30
    # Memory for detection's per-subscriber aggregate (SET LOCAL, that transaction only).
    detect_work_mem_mb: int = 256
    max_batch_rows: int = 10_000
    rebuild_page_size: int = 500


@lru_cache
def get_warning_settings() -> WarningSettings:
    return WarningSettings()
