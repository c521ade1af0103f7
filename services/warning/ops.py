"""What the warning commands do: import usage files, run detection, rebuild the read model."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.kit.bulk import copy_rows, raw_connection
from services.kit.config import get_settings
from services.kit.db import create_engine, create_sessionmaker, session_scope
from services.kit.errors import chinese_message
from services.kit.http import create_http_client
from services.kit.progress import FileProgress, file_progress
from services.profile.client import customer_snapshots
from services.warning import repository, service
from services.warning.config import get_warning_settings
from services.warning.models import SCHEMA
from services.warning.schemas import DetectionResult, RowError, UsageRow

OPTIONAL = {
    "competitor_hotline_calls",
    "forwarded_to_other_network",
    "other_network_call_share",
    "competitor_marketing_contacts",
}


async def run_detection_command(day: date | None) -> DetectionResult:
    settings = get_settings()
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            return await service.run_detection(
                session, day or service.business_today() - timedelta(days=1)
            )
    finally:
        await engine.dispose()


def _records(
    path: Path, progress: FileProgress | None = None
) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, record or a parse error) for a CSV with a header or JSON lines;
    ``progress`` is told of every line read."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        first = f.readline()
        f.seek(0)

        def lines() -> Iterator[str]:
            for line in f:
                if progress is not None:
                    progress.line(len(line.encode()))
                yield line

        if first.lstrip().startswith("{"):
            for number, line in enumerate(lines(), 1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, f"not valid JSON: {exc.msg}"
            return
        reader = csv.DictReader(lines())
        for record in reader:
            # An empty cell of an optional column means "not reported": its default applies.
            yield (
                reader.line_num,
                {
                    k: v
                    for k, v in record.items()
                    if k is not None and not (v == "" and k in OPTIONAL)
                },
            )


def _parse(number: int, record: dict[str, Any] | str) -> UsageRow | RowError:
    if isinstance(record, str):
        return RowError(row=number, field=None, message=record)
    try:
        return UsageRow.model_validate(record)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or None
        return RowError(row=number, field=field, message=f"{field}：{chinese_message(error)}")


async def _flush(conn: Any, batch: list[tuple[Any, ...]]) -> int:
    """COPY a batch into a staging table, then upsert it in one statement."""
    async with conn.transaction():
        await conn.execute(
            f"CREATE TEMP TABLE usage_stage (LIKE {SCHEMA}.daily_usage INCLUDING DEFAULTS) "
            "ON COMMIT DROP"
        )
        # The last row of a subscriber-day wins, as it would if sent one by one.
        latest = {(row[0], row[1]): row for row in batch}
        await copy_rows(conn, "pg_temp", "usage_stage", repository.USAGE_COLUMNS, latest.values())
        await conn.execute(repository.usage_upsert_from("usage_stage"))
    return len(batch)


async def import_usage_file(path: Path, batch_rows: int) -> dict[str, Any]:
    """Import a usage file: a progress bar on a terminal (bytes read against the file's
    size), then a summary line on stderr."""
    settings = get_settings()
    errors: list[RowError] = []
    imported = rows = 0
    batch: list[tuple[Any, ...]] = []
    with file_progress(path) as progress:
        async with raw_connection(settings.database_url) as conn:
            for number, record in _records(path, progress):
                rows += 1
                parsed = _parse(number, record)
                if isinstance(parsed, RowError):
                    errors.append(parsed)
                else:
                    batch.append(parsed.as_tuple())
                if len(batch) >= batch_rows:
                    imported += await _flush(conn, batch)
                    batch = []
            if batch:
                imported += await _flush(conn, batch)
        progress.finished(rows)
    return {"imported": imported, "errors": errors}


async def rebuild_customers(profile_url: str | None) -> dict[str, int]:
    """Reload the read model from the profile service; newer snapshots win, as with events."""
    settings = get_settings()
    url = profile_url or settings.url_of("profile")
    engine = create_engine(settings.database_url, pool_size=1)
    fetched = applied = 0
    try:
        async with create_http_client(settings.http_timeout_seconds) as client:
            async for page in customer_snapshots(
                client,
                settings,
                acting_as=service.SYSTEM_ACTOR,
                page_size=get_warning_settings().rebuild_page_size,
                profile_url=url,
            ):
                fetched += len(page)
                # One transaction per page: a failure halfway keeps what was loaded.
                async with session_scope(create_sessionmaker(engine)) as session:
                    applied += await service.apply_snapshots(session, page)
    finally:
        await engine.dispose()
    return {"fetched": fetched, "applied": applied}
