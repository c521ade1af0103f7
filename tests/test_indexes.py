"""The indexes behind the hot list filters and the event tables' pruning exist as the
queries need them (the plans with and without them, on 1M rows, are in docs/indexes.md)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

EXPECTED = {
    # profile's ?tag= filter (jsonb @>) and q (name ILIKE): GIN, path ops and trigrams
    ("profile", "ix_customer_tags"): ("USING gin (tags jsonb_path_ops)",),
    ("profile", "ix_customer_name_trgm"): ("USING gin (name ", "gin_trgm_ops)"),
    # the open-warning lists, sorted by risk: partial on what the lists ask
    ("warning", "ix_warning_manager_open"): (
        "(manager_id, risk_score)",
        "WHERE ((status)::text <> 'resolved'::text)",
    ),
    ("warning", "ix_warning_team_open"): ("WHERE ((status)::text <> 'resolved'::text)",),
    ("warning", "ix_warning_open_risk"): ("WHERE ((status)::text <> 'resolved'::text)",),
    # care's receipt lookup by the provider's message id
    ("care", "ix_recipient_provider_message"): (
        "(provider_message_id, provider)",
        "WHERE (provider_message_id IS NOT NULL)",
    ),
    # the staff channels' senders claim due pending messages by next_attempt_at
    ("gateway", "ix_channel_message_due"): (
        "(next_attempt_at)",
        "WHERE ((status)::text = 'pending'::text)",
    ),
} | {
    # pruning the event tables takes the oldest rows first, in every service's schema
    (schema, f"ix_{schema}_{table}_{column}"): (f"({column})",)
    for schema in ("profile", "warning", "care", "complaint")
    for table, column in (("outbox", "occurred_at"), ("inbox", "processed_at"))
}


@pytest.mark.parametrize(("where", "parts"), EXPECTED.items(), ids=[i for _, i in EXPECTED])
async def test_the_index_is_there_as_the_query_needs_it(
    engine: AsyncEngine, where: tuple[str, str], parts: tuple[str, ...]
) -> None:
    schema, name = where
    async with engine.connect() as conn:
        definition = (
            await conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE schemaname = :s AND indexname = :n"),
                {"s": schema, "n": name},
            )
        ).scalar_one_or_none()
    assert definition is not None, f"{schema}.{name} is missing"
    for part in parts:
        assert part in definition, definition
