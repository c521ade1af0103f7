"""Bulk import of customers (the operator's nightly feed, partner systems).

A file is CSV with a header row, or JSON lines. Each row is upserted by MSISDN; only the
fields the row carries change (a CSV column that is present, a JSON key that is present),
so a partner feeding three columns never wipes what managers wrote in the archive. A bad
row is reported (line, column, reason) and skipped; every good row is kept. Loading the
same file twice changes nothing the second time (no version bump, no event).

Rows are checked in Python with the same rules as the API (:class:`ImportRow`; a
well-formed row by the same rules without the model, :mod:`row_check`), then
loaded set-based: COPY into a temporary table and a handful of INSERT/UPDATE ... SELECT
statements (``bulk_sql``), all in the caller's transaction.

CSV cells: an empty cell is null; list fields (interests, tags, preferences, taboos,
contact_channels) are separated by ``|``; important_dates and custom are JSON.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import asyncpg
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit import clock
from services.kit.auth import Principal, Role
from services.kit.errors import Forbidden, InvalidInput, chinese_message
from services.profile import bulk_sql
from services.profile.config import get_profile_settings
from services.profile.models import CustomerStatus, Lifecycle
from services.profile.row_check import lean_values
from services.profile.schemas import ImportIssue, ImportRow, ImportSummary
from services.profile.validation import check_custom, time_zone_of

Format = Literal["csv", "jsonl"]
LIST_FIELDS = frozenset({"interests", "tags", "preferences", "taboos", "contact_channels"})
JSON_FIELDS = frozenset({"important_dates", "custom"})
EMPTY_JSON: dict[str, Any] = {"important_dates": [], "custom": {}}
COLUMNS: tuple[str, ...] = ("msisdn", *bulk_sql.FIELDS)
MAX_REPORTED_ERRORS = 1000
CHUNK_ROWS = 20_000


class ImportFileError(InvalidInput):
    """The file as a whole cannot be read (unknown column, no msisdn column...)."""

    code = "invalid_import_file"


@dataclass
class Outcome:
    """What checking the rows found, filled while the rows stream into COPY."""

    rows: int = 0
    issues: list[ImportIssue] = field(default_factory=list)
    rejected: int = 0

    def reject(self, line: int, column: str | None, reason: str) -> None:
        self.rejected += 1
        if len(self.issues) < MAX_REPORTED_ERRORS:
            self.issues.append(ImportIssue(line=line, column=column, reason=reason))


def format_of(name: str, content_type: str | None = None) -> Format:
    if content_type in ("text/csv", "application/csv"):
        return "csv"
    if content_type in ("application/x-ndjson", "application/jsonl", "application/json-lines"):
        return "jsonl"
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ImportFileError(
        "请说明数据是 CSV 还是 JSON lines（文件名以 .csv / .jsonl 结尾，或 "
        "Content-Type 为 text/csv / application/x-ndjson）",
        field="format",
    )


def _csv_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    names = [h.strip() for h in header]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise ImportFileError(
            f"未知列 {unknown[0]!r}；可用的列：{', '.join(COLUMNS)}", field=unknown[0]
        )
    if "msisdn" not in names:
        raise ImportFileError("表头缺少 msisdn 列", field="msisdn")
    for cells in reader:
        line = reader.line_num
        if not any(cells):
            continue
        if len(cells) != len(names):
            yield line, f"has {len(cells)} cells, the header {len(names)}"
            continue
        record: dict[str, Any] = {}
        for name, cell in zip(names, cells, strict=True):
            if cell == "":
                # An empty list cell is an empty list; any other empty cell is null.
                record[name] = [] if name in LIST_FIELDS else EMPTY_JSON.get(name)
            elif name in LIST_FIELDS:
                record[name] = [part for part in cell.split("|") if part.strip()]
            elif name in JSON_FIELDS:
                try:
                    record[name] = json.loads(cell)
                except ValueError:
                    yield line, f"{name}: is not valid JSON"
                    break
            else:
                record[name] = cell
        else:
            yield line, record


def _jsonl_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield line, f"is not valid JSON ({exc.msg})"
            continue
        if not isinstance(record, dict):
            yield line, "is not a JSON object"
            continue
        yield line, record


def _first_error(exc: ValidationError) -> tuple[str | None, str]:
    error = exc.errors()[0]
    loc = [str(p) for p in error["loc"]]
    column = loc[0] if loc else None
    detail = ".".join(loc[1:])
    message = chinese_message(error)
    return column, f"{detail}：{message}" if detail else message


def checked_rows(
    records: Iterable[tuple[int, dict[str, Any] | str]],
    outcome: Outcome,
    today: str,
    allowed: frozenset[str] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Staging rows for COPY: (line, given-mask, msisdn, field values...). Bad rows are
    recorded in ``outcome`` and left out, as is a row that carries a field outside
    ``allowed`` (what a partner may set)."""
    attributes = get_profile_settings().custom_attributes
    bits = bulk_sql.BITS
    day = date.fromisoformat(today)
    for line, record in records:
        outcome.rows += 1
        if isinstance(record, str):
            outcome.reject(line, None, record)
            continue
        values = lean_values(record, day)
        if values is None:
            try:
                row = ImportRow.model_validate(record)
            except ValidationError as exc:
                column, reason = _first_error(exc)
                outcome.reject(line, column, reason)
                continue
            broken = row.rule_broken()
            if broken is not None:
                outcome.reject(line, broken.field, broken.message)
                continue
            values = row.given()
        msisdn = values.pop("msisdn")
        refused = sorted(set(values) - allowed) if allowed is not None else []
        if refused:
            outcome.reject(line, refused[0], "a partner import may not set this field")
            continue
        if values.get("custom") is not None:
            clean, problem = check_custom(values["custom"], attributes, complete=False)
            if problem is not None:
                outcome.reject(line, problem[0], problem[1])
                continue
            values["custom"] = clean
        _settle(values, today)
        mask = 0
        for name in values:
            mask |= bits[name]
        yield (line, mask, msisdn, *bulk_sql.staging_values(values))


def _settle(values: dict[str, Any], today: str) -> None:
    """The same implied changes as the API: time zone from the region, churn's date and
    lifecycle, reactivation clearing the churn."""
    if "region" in values and "time_zone" not in values:
        values["time_zone"] = time_zone_of(values["region"])
    status = values.get("status")
    if status == CustomerStatus.churned:
        values.setdefault("churned_on", today)
        values["lifecycle"] = Lifecycle.churn
    elif status == CustomerStatus.active:
        values.setdefault("churned_on", None)
        values.setdefault("churn_reason", None)


async def import_lines(
    conn: asyncpg.Connection,
    lines: Iterable[str],
    fmt: Format,
    *,
    actor: str,
    on_rows: Callable[[int], None] | None = None,
    max_rows: int | None = None,
    allowed: frozenset[str] | None = None,
) -> ImportSummary:
    """Check and upsert every row of ``lines`` within the caller's transaction on ``conn``;
    ``allowed`` limits the fields a row may carry (a partner's import)."""
    records = _csv_records(lines) if fmt == "csv" else _jsonl_records(lines)
    outcome = Outcome()
    as_of = clock.today().isoformat()
    await bulk_sql.prepare(conn)
    staged = checked_rows(records, outcome, as_of, allowed)
    while True:
        chunk = []
        for row in staged:
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                break
        if chunk:
            await bulk_sql.stage(conn, chunk)
        if on_rows is not None:
            on_rows(outcome.rows)
        if max_rows is not None and outcome.rows > max_rows:
            raise InvalidInput(
                f"一次请求超过 {max_rows} 行；请改用 `keepwell import customers`",
                field="body",
            )
        if len(chunk) < CHUNK_ROWS:
            break
    counts, issues = await bulk_sql.apply(conn, actor=actor)
    for issue in issues:
        outcome.reject(issue.line, issue.column, issue.reason)
    ordered = sorted(outcome.issues, key=lambda i: i.line)
    return ImportSummary(
        rows=outcome.rows,
        inserted=counts["inserted"],
        updated=counts["updated"],
        unchanged=counts["unchanged"],
        superseded=counts["superseded"],
        rejected=outcome.rejected,
        errors=ordered,
        errors_truncated=outcome.rejected > len(ordered),
    )


async def import_file(
    conn: asyncpg.Connection,
    path: Path,
    *,
    actor: str,
    on_bytes: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import a CSV or JSON-lines file in one transaction; ``on_bytes`` is told the size of
    each line as it is read (progress against the file's size, without reading it twice)."""
    fmt = format_of(path.name)
    with path.open(encoding="utf-8-sig", newline="") as handle:

        def lines() -> Iterator[str]:
            for text in handle:
                if on_bytes is not None:
                    on_bytes(len(text.encode()))
                yield text

        async with conn.transaction():
            return await import_lines(conn, lines(), fmt, actor=actor)


async def import_request(
    session: AsyncSession, principal: Principal, body: bytes, content_type: str, max_rows: int
) -> ImportSummary:
    """The batch endpoint: the same import, in the request's transaction."""
    if principal.role not in (Role.admin, Role.operator, Role.partner):
        raise Forbidden("只有运营人员和合作方系统可以导入客户")
    fmt = format_of("", content_type)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("body：不是 UTF-8 文本", field="body") from None
    from services.profile.service import driver_connection

    conn = await driver_connection(session)
    allowed = (
        frozenset(get_profile_settings().partner_import_fields)
        if principal.role is Role.partner
        else None
    )
    return await import_lines(
        conn,
        text.splitlines(keepends=True),
        fmt,
        actor=principal.user_id,
        max_rows=max_rows,
        allowed=allowed,
    )
