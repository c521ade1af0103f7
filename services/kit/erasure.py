"""Erasing one customer's personal data from what the kernel keeps in a service's schema.

Each service anonymises its own tables (it knows which columns are personal); what every
schema has alike is here: the outbox payloads that name the customer (a replay, a
read-model catch-up or a partner's delivery log must not bring the values back), the error
texts of their deliveries (a consumer's validation error quotes the values it refused),
the kept answers of the create routes (``idempotency_key``: the customer as created), and
the change audit's rows whose path named the number (``change_audit``: the number gives way
to the stand-in; who changed what and when stays).
A scrubbed payload still validates as its event type, so a replay of it applies as an
anonymised, older version, which the read models ignore.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.audit import change_audit_table
from services.kit.errors import InvalidInput
from services.kit.events.tables import event_tables
from services.kit.idempotency import idempotency_table
from services.kit.values import normalise_lookup

ERASED_NAME = "已删除客户"
"""What an erased customer's name reads everywhere."""

# The payload fields that hold a customer's personal values, whatever the event (the
# customer snapshot's, a contact's note, a reply's text), and what stands in for them: each
# replacement is valid for the field's type in every contract.
PERSONAL_FIELDS: Mapping[str, Any] = {
    "name": ERASED_NAME,
    "honorific": ERASED_NAME,
    "gender": "unknown",
    "birthday": None,
    "family_notes": None,
    "important_dates": [],
    "custom": {},
    "tags": [],
    "interests": [],
    "taboos": [],
    "preferences": [],
    "churn_reason": None,
    "note": None,
    "content": "",
}

AUDIT_REWRITE_SETTING = "keepwell.erasure"
"""While ``on`` in a transaction, the append-only audit tables' triggers let an erasure
replace the personal values they hold (never delete a row): see the migrations."""


def scrub_value(value: Any, msisdn: str, stand_in: str) -> Any:
    """``value`` (JSON-like) with the number replaced by its stand-in wherever it occurs and
    every personal field replaced, however deep."""
    if isinstance(value, str):
        return value.replace(msisdn, stand_in)
    if isinstance(value, list):
        return [scrub_value(v, msisdn, stand_in) for v in value]
    if isinstance(value, dict):
        return {
            k: PERSONAL_FIELDS[k] if k in PERSONAL_FIELDS else scrub_value(v, msisdn, stand_in)
            for k, v in value.items()
        }
    return value


async def scrub_events(
    session: AsyncSession, schema: str, msisdn: str, stand_in: str, *, aggregates: bool = False
) -> int:
    """Scrub the retained events of ``schema`` that name ``msisdn``: payloads (see
    :func:`scrub_value`), the errors of their deliveries and attempts, and, with
    ``aggregates``, the aggregate ids. Those stay until every earlier event has reached its
    consumers, since the relay keeps an aggregate's events in order by them. Also drops the
    kept create answers that hold the number, and files the change audit's rows that name it
    under the stand-in. Returns how many events it scrubbed."""
    tables = event_tables(schema)
    outbox, delivery, attempt = tables.outbox, tables.delivery, tables.attempt
    # strpos over the payload's text: the number may sit anywhere in it (a snapshot, a
    # contact, an id); scrubbing is rare enough that a scan of the retained events is fine.
    rows = (
        await session.execute(
            text(
                f"SELECT seq, payload FROM {schema}.outbox "
                "WHERE aggregate_id = :m OR strpos(payload::text, :m) > 0 FOR UPDATE"
            ),
            {"m": msisdn},
        )
    ).all()
    if rows:
        await session.execute(
            update(outbox)
            .where(outbox.c.seq == bindparam("s"))
            .values(payload=bindparam("p", type_=JSONB)),
            [{"s": r.seq, "p": scrub_value(r.payload, msisdn, stand_in)} for r in rows],
        )
        seqs = [r.seq for r in rows]
        await session.execute(
            update(delivery).where(delivery.c.event_seq.in_(seqs)).values(last_error=None)
        )
        await session.execute(
            update(attempt)
            .where(
                attempt.c.delivery_id.in_(
                    select(delivery.c.id).where(delivery.c.event_seq.in_(seqs))
                )
            )
            .values(error=None)
        )
    if aggregates:
        for table in (outbox, delivery):
            await session.execute(
                update(table).where(table.c.aggregate_id == msisdn).values(aggregate_id=stand_in)
            )
    answers = idempotency_table(schema)
    await session.execute(
        answers.delete().where(
            text(f"position(convert_to(:m, 'UTF8') in {schema}.idempotency_key.body) > 0")
        ),
        {"m": msisdn},
    )
    changes = change_audit_table(schema)
    async with audit_rewrite(session):
        await session.execute(
            update(changes)
            .where(changes.c.resource_ids.contains([msisdn]))
            .values(resource_ids=func.array_replace(changes.c.resource_ids, msisdn, stand_in))
        )
    return len(rows)


@asynccontextmanager
async def audit_rewrite(session: AsyncSession) -> AsyncIterator[None]:
    """Within the block, the audit tables' triggers accept an erasure's UPDATE. A block
    inside another leaves the setting on for the rest of the outer one."""
    before = await session.scalar(text(f"SELECT current_setting('{AUDIT_REWRITE_SETTING}', true)"))
    await session.execute(text(f"SELECT set_config('{AUDIT_REWRITE_SETTING}', 'on', true)"))
    try:
        yield
    finally:
        await session.execute(
            text("SELECT set_config(:name, :value, true)"),
            {"name": AUDIT_REWRITE_SETTING, "value": "on" if before == "on" else "off"},
        )


async def erase_copies(
    session: AsyncSession,
    schema: str,
    msisdn: str,
    stand_in: str,
    blanked: Mapping[str, Mapping[str, Any]],
) -> dict[str, int]:
    """A consumer's part of an erasure, for the tables of ``schema`` keyed by number: the
    customer copy under the old number goes (the caller has filed the anonymised one under
    the stand-in); every table of ``blanked`` takes the stand-in for the number and the
    given value for each personal column (rows stay, so counts and rates do not move); then
    the retained events are scrubbed (:func:`scrub_events`). Rows changed, by table."""
    counts: dict[str, int] = {}
    deleted = await session.execute(
        text(f"DELETE FROM {schema}.customer WHERE msisdn = :m"), {"m": msisdn}
    )
    counts["customer"] = _rows(deleted)
    for table, columns in blanked.items():
        sets = "".join(f", {column} = :v{i}" for i, column in enumerate(columns))
        changed = await session.execute(
            text(f"UPDATE {schema}.{table} SET msisdn = :s{sets} WHERE msisdn = :m"),
            {"m": msisdn, "s": stand_in, **{f"v{i}": v for i, v in enumerate(columns.values())}},
        )
        counts[table] = _rows(changed)
    counts["events"] = await scrub_events(session, schema, msisdn, stand_in, aggregates=True)
    return counts


def _rows(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def export_rows(
    session: AsyncSession, queries: Mapping[str, str], raw_msisdn: str
) -> dict[str, list[Any]]:
    """A service's part of a customer's export (the access right): each query's rows (it
    names the number ``:m``) as JSON objects, by kind; ``raw_msisdn`` as the path gave it
    (a number in any usual form, or an erased customer's stand-in)."""
    try:
        msisdn = normalise_lookup(raw_msisdn)
    except ValueError as exc:
        raise InvalidInput(f"msisdn：{exc}", field="msisdn") from None
    exported: dict[str, list[Any]] = {}
    for kind, sql in queries.items():
        rows = await session.execute(text(f"SELECT to_jsonb(t) FROM ({sql}) t"), {"m": msisdn})
        exported[kind] = list(rows.scalars())
    return exported
