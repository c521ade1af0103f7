"""The warning service's arq worker: nightly detection for the previous day."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from arq import cron

from services.kit.worker import worker_settings
from services.warning.config import get_warning_settings
from services.warning.jobs import detect_day, nightly_detection

_settings = get_warning_settings()

WorkerSettings = worker_settings(
    "warning",
    [detect_day, nightly_detection],
    cron_jobs=[
        cron(
            nightly_detection,
            hour=_settings.detect_hour,
            minute=_settings.detect_minute,
            unique=True,
            timeout=3600,
        )
    ],
)
# Cron times are in the operator's time zone, not the server's.
WorkerSettings.timezone = ZoneInfo(_settings.time_zone)  # type: ignore[attr-defined]
