"""Every query of the care service. Dispatch paths are set-based: one statement per batch."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    DateTime,
    String,
    Text,
    Uuid,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.care.models import (
    Campaign,
    CampaignStatus,
    Customer,
    Greeting,
    ListMember,
    Recipient,
    RecipientState,
    Rule,
    SmsReply,
    Task,
    TaskStatus,
)
from services.care.suppression import Policy
from services.kit import clock
from services.kit.clock import BEIJING

R = Recipient.__table__  # type: ignore[attr-defined]
C = Customer.__table__  # type: ignore[attr-defined]
CAMPAIGN = Campaign.__table__  # type: ignore[attr-defined]
REPLY = SmsReply.__table__  # type: ignore[attr-defined]


def pending_opt_out(msisdn: str) -> str:
    """SQL: the number ``msisdn`` (an SQL expression) replied an opt-out keyword that the
    customer copy does not show yet. Sends read it as an SMS opt-out (partial index)."""
    return (
        f"EXISTS (SELECT 1 FROM care.sms_reply o WHERE o.msisdn = {msisdn} "
        "AND o.opt_out_keyword IS NOT NULL AND o.settled_at IS NULL)"
    )


# ---- customers (read model) -----------------------------------------------------------


async def upsert_customers(
    session: AsyncSession, rows: Sequence[dict[str, Any]], *, refill: bool = False
) -> list[str]:
    """Insert or replace customers (one row per number) unless we already hold a version
    at least as new; returns the numbers stored.

    ``refill`` (a rebuild from profile's API) also replaces a copy of the same version that
    differs: one kept before this copy had a column the snapshot now fills."""
    if not rows:
        return []
    statement = insert(C)
    columns = [k for k in rows[0] if k != "msisdn"]
    changed: dict[str, Any] = {k: statement.excluded[k] for k in columns}
    changed["updated_at"] = func.now()
    newer = C.c.version < statement.excluded.version
    if refill:
        held = tuple_(*(C.c[k] for k in columns))
        given = tuple_(*(statement.excluded[k] for k in columns))
        newer = or_(
            newer, and_(C.c.version == statement.excluded.version, held.is_distinct_from(given))
        )
    # Many rows, one statement each few hundred (SQLAlchemy's "insertmanyvalues").
    result = await session.execute(
        statement.values(updated_at=func.now())
        .on_conflict_do_update(index_elements=[C.c.msisdn], set_=changed, where=newer)
        .returning(C.c.msisdn),
        list(rows),
    )
    return list(result.scalars())


async def settle_opt_out_replies(session: AsyncSession, msisdns: Sequence[str]) -> int:
    """Opt-out replies of these numbers the copy now shows as profile's opt-out: from here
    on the archive's flag decides (an opt-in given to profile later is honoured)."""
    if not msisdns:
        return 0
    result = await session.execute(
        text(
            """
            UPDATE care.sms_reply o SET settled_at = now()
            FROM care.customer c
            WHERE o.msisdn = ANY(CAST(:m AS varchar[])) AND o.opt_out_keyword IS NOT NULL
                AND o.settled_at IS NULL AND c.msisdn = o.msisdn AND c.sms_opt_out
            """
        ),
        {"m": list(msisdns)},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def copy_opted_out(session: AsyncSession, msisdn: str) -> bool:
    """Whether the customer copy already shows an SMS opt-out for ``msisdn``."""
    return bool(await session.scalar(select(C.c.sms_opt_out).where(C.c.msisdn == msisdn)))


async def add_reply(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Record a customer's reply; None when this provider's id of it is recorded already
    (the provider pushed it again)."""
    inserted = await session.execute(
        insert(REPLY)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["provider", "provider_ref"])
        .returning(REPLY.c.id)
    )
    found: int | None = inserted.scalar_one_or_none()
    return found


FOLLOW_UP_KEY = re.compile(r"complaint:(?P<complaint>[^:]+):\d+:follow_up")
"""The plan key of a complaint's satisfaction follow-up (services.care.consumers)."""


async def follow_up_answered(session: AsyncSession, msisdn: str, since: datetime) -> str | None:
    """The complaint whose satisfaction follow-up reached ``msisdn`` last, if one was sent
    since ``since``: the one a score the customer replies now answers."""
    plan_key = await session.scalar(
        select(Campaign.plan_key)  # type: ignore[call-overload]
        .join(Recipient, col(Recipient.campaign_id) == col(Campaign.id))
        .where(
            col(Recipient.msisdn) == msisdn,
            col(Recipient.sent_at) >= since,
            col(Recipient.state).in_([RecipientState.sent, RecipientState.delivered]),
            col(Campaign.plan_key).like("complaint:%:follow_up"),
        )
        .order_by(col(Recipient.sent_at).desc())
        .limit(1)
    )
    found = FOLLOW_UP_KEY.fullmatch(plan_key) if plan_key else None
    return found["complaint"] if found else None


async def replies_of(session: AsyncSession, msisdn: str) -> list[SmsReply]:
    rows = await session.execute(
        select(SmsReply)
        .where(col(SmsReply.msisdn) == msisdn)
        .order_by(col(SmsReply.received_at).desc(), col(SmsReply.id).desc())
    )
    return list(rows.scalars())


async def customer_state(session: AsyncSession, msisdn: str) -> tuple[str, str] | None:
    """(status, tier) of the copy as it stands now."""
    row = (await session.execute(select(C.c.status, C.c.tier).where(C.c.msisdn == msisdn))).first()
    return (row.status, row.tier) if row is not None else None


async def customer_team(session: AsyncSession, msisdn: str) -> str | None:
    team: str | None = await session.scalar(select(C.c.team_id).where(C.c.msisdn == msisdn))
    return team


async def get_customer(session: AsyncSession, msisdn: str) -> Customer | None:
    return await session.get(Customer, msisdn)


# ---- audience -------------------------------------------------------------------------


def audience_filter(audience: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """SQL condition over ``c`` (customer) for a filter audience, with its parameters."""
    clauses: list[str] = ["c.status = 'active'"]
    params: dict[str, Any] = {}
    for key, column in (
        ("tiers", "tier"),
        ("service_levels", "service_level"),
        ("lifecycles", "lifecycle"),
        ("regions", "region"),
        ("manager_ids", "manager_id"),
    ):
        values = audience.get(key)
        if values:
            clauses.append(f"c.{column} = ANY(:{key})")
            params[key] = list(values)
    if audience.get("tags"):
        clauses.append("c.tags ?| :tags")
        params["tags"] = list(audience["tags"])
    if audience.get("birthday_month"):
        clauses.append("extract(month FROM c.birthday) = :birthday_month")
        params["birthday_month"] = int(audience["birthday_month"])
    if audience.get("msisdns"):
        clauses.append("c.msisdn = ANY(:msisdns)")
        params["msisdns"] = list(audience["msisdns"])
    return " AND ".join(clauses), params


def _audience_source(campaign: Campaign) -> tuple[str, dict[str, Any]]:
    """FROM clause yielding (msisdn, customer columns) rows; list members may be unknown."""
    # A team's campaign reaches only the team's customers; anyone else on its list reads as
    # not on file (and is suppressed as such), so no other team's data shows through.
    team = "" if campaign.team_id is None else " AND c.team_id = :team"
    scoped = {} if campaign.team_id is None else {"team": campaign.team_id}
    if campaign.audience.get("source") == "list":
        return (
            f"care.list_member m LEFT JOIN care.customer c ON c.msisdn = m.msisdn{team} "
            "WHERE m.campaign_id = :cid",
            {"cid": campaign.id, **scoped},
        )
    where, params = audience_filter(campaign.audience)
    return f"care.customer c WHERE {where}{team}", params | scoped


async def audience_sample(
    session: AsyncSession, campaign: Campaign, limit: int
) -> list[dict[str, Any]]:
    source, params = _audience_source(campaign)
    key = "m.msisdn" if campaign.audience.get("source") == "list" else "c.msisdn"
    rows = await session.execute(
        text(f"SELECT {key} AS target, c.* FROM {source} ORDER BY {key} LIMIT :limit"),
        {**params, "limit": limit},
    )
    return [dict(r._mapping) for r in rows]


def _control_rank(key: str) -> str:
    """Columns ``control_rank`` (place in the campaign's hash order) and ``audience_n``."""
    return (
        f"row_number() OVER (ORDER BY hashtext(:campaign_id_text || {key}), {key}) "
        "AS control_rank, count(*) OVER () AS audience_n"
    )


# Held out: the first floor(n * control_percent / 100) in hash order (control_bp is
# hundredths of a percent).
IN_CONTROL = "{alias}.control_rank * 10000 <= {alias}.audience_n * :control_bp"


def _due(campaign: Campaign, now: datetime, params: dict[str, Any]) -> str:
    """SQL for when a recipient (customer ``c``) is due; adds its parameters to ``params``."""
    params["send_at"] = campaign.send_at or now
    if campaign.send_at is not None and campaign.local_time:
        # send_at's wall-clock time in Beijing is the local time each recipient gets it at.
        params["local_at"] = campaign.send_at.astimezone(BEIJING).replace(tzinfo=None)
        return "coalesce((:local_at)::timestamp AT TIME ZONE c.time_zone, :send_at)"
    return ":send_at"


async def materialise(
    session: AsyncSession, campaign: Campaign, now: datetime, exempt_categories: list[str]
) -> int:
    """Write one recipient row per audience member, with its idempotency key and due time.

    The control group is the first ``floor(audience * control_percent / 100)`` members in
    the order of a hash of (campaign, number) (:func:`_control_rank`): never more than the
    share asked, even for a handful of recipients, and the same members each time.
    Re-running this (it is ON CONFLICT DO NOTHING) never moves anyone between groups.
    """
    source, params = _audience_source(campaign)
    key = "m.msisdn" if campaign.audience.get("source") == "list" else "c.msisdn"
    due = _due(campaign, now, params)
    statement = text(
        f"""
        INSERT INTO care.recipient (campaign_id, msisdn, idempotency_key, state, due_at,
            attempts, manager_id, team_id, tier, counts_toward_cap, updated_at)
        SELECT :campaign_id, s.target, replace(:campaign_id_text, '-', '') || s.target,
            CASE WHEN {IN_CONTROL.format(alias="s")} THEN 'control' ELSE 'queued' END,
            s.due, 0, s.manager_id, s.team_id, s.tier, NOT (:category = ANY(:exempt)), now()
        FROM (SELECT {key} AS target, {due} AS due, c.manager_id, c.team_id, c.tier,
                {_control_rank(key)} FROM {source}) s
        ON CONFLICT (campaign_id, msisdn) DO NOTHING
        """
    ).bindparams(
        bindparam("exempt", type_=ARRAY(String)),
        bindparam("send_at", type_=DateTime(timezone=True)),
    )
    result = await session.execute(
        statement,
        {
            **params,
            "campaign_id": campaign.id,
            "campaign_id_text": str(campaign.id),
            "control_bp": int(campaign.control_percent * 100),
            "category": str(campaign.category),
            "exempt": exempt_categories,
        },
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


LM = ListMember.__table__  # type: ignore[attr-defined]


async def add_list_members(
    session: AsyncSession, campaign_id: uuid.UUID, msisdns: Sequence[str]
) -> list[str]:
    """The numbers newly added (those already on the list are left as they are)."""
    if not msisdns:
        return []
    result = await session.execute(
        text(
            """
            INSERT INTO care.list_member (campaign_id, msisdn)
            SELECT :cid, m FROM unnest(CAST(:m AS text[])) AS m
            ON CONFLICT DO NOTHING RETURNING msisdn
            """
        ),
        {"cid": campaign_id, "m": list(msisdns)},
    )
    return [r[0] for r in result]


async def remove_list_members(
    session: AsyncSession, campaign_id: uuid.UUID, msisdn: str | None
) -> int:
    statement = delete(LM).where(LM.c.campaign_id == campaign_id)
    if msisdn is not None:
        statement = statement.where(LM.c.msisdn == msisdn)
    result = await session.execute(statement)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def list_size(session: AsyncSession, campaign_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).select_from(LM).where(LM.c.campaign_id == campaign_id)
    )
    return int(count or 0)


async def unknown_customers(session: AsyncSession, msisdns: Sequence[str]) -> list[str]:
    """Of ``msisdns``, those not in the customer copy."""
    if not msisdns:
        return []
    rows = await session.execute(
        text(
            "SELECT m FROM unnest(CAST(:m AS text[])) AS m "
            "WHERE NOT EXISTS (SELECT 1 FROM care.customer c WHERE c.msisdn = m) ORDER BY m"
        ),
        {"m": list(msisdns)},
    )
    return [r[0] for r in rows]


# ---- campaigns ------------------------------------------------------------------------


async def get_campaign(
    session: AsyncSession, campaign_id: uuid.UUID, *, for_update: bool = False
) -> Campaign | None:
    statement = select(Campaign).where(Campaign.id == campaign_id)  # type: ignore[arg-type]
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


def _team_customers(team_id: str | None) -> Any:
    """Customers of ``team_id`` (every customer for None), as a condition on an msisdn."""
    return select(C.c.msisdn).where(C.c.team_id == team_id) if team_id is not None else None


async def list_campaigns(
    session: AsyncSession,
    status: CampaignStatus | None,
    limit: int,
    offset: int,
    team_id: str | None = None,
) -> list[Campaign]:
    """Newest first; for a team, its own campaigns and the company-wide ones."""
    statement = select(Campaign).order_by(Campaign.created_at.desc())  # type: ignore[attr-defined]
    if team_id is not None:
        statement = statement.where(
            or_(col(Campaign.team_id) == team_id, col(Campaign.team_id).is_(None))
        )
    if status is not None:
        statement = statement.where(Campaign.status == status)  # type: ignore[arg-type]
    return list((await session.execute(statement.limit(limit).offset(offset))).scalars())


async def touch_campaign(session: AsyncSession, campaign_id: uuid.UUID) -> None:
    await session.execute(
        update(CAMPAIGN).where(CAMPAIGN.c.id == campaign_id).values(heartbeat_at=func.now())
    )


async def dispatch_rows(session: AsyncSession, stall_seconds: float) -> list[dict[str, Any]]:
    """Per campaign meant to be sending: where its recipients stand right now, and whether
    it is stalled (work due, yet neither a batch nor a status change for ``stall_seconds``)."""
    rows = await session.execute(
        text(
            """
            WITH counts AS (SELECT c.id AS campaign_id, c.name, c.status, c.pause_reason,
                c.team_id, c.heartbeat_at AS last_progress_at,
                count(r.id) FILTER (WHERE r.state = 'queued' AND r.due_at <= now()) AS due,
                count(r.id) FILTER (WHERE r.state IN ('queued', 'held') AND r.due_at > now())
                    AS later,
                count(r.id) FILTER (WHERE r.state = 'sending') AS sending,
                count(r.id) FILTER (WHERE r.state = 'sending' AND r.lease_until < now())
                    AS unsettled,
                count(r.id) FILTER (WHERE r.state IN ('sent', 'delivered')) AS sent,
                count(r.id) FILTER (WHERE r.state = 'failed') AS failed,
                c.status = 'dispatching' AND greatest(c.heartbeat_at, c.updated_at)
                    < now() - make_interval(secs => :stall) AS quiet,
                c.created_at
            FROM care.campaign c LEFT JOIN care.recipient r ON r.campaign_id = c.id
            WHERE c.status IN ('approved', 'dispatching', 'paused')
            GROUP BY c.id)
            SELECT *, quiet AND due > 0 AS stalled FROM counts ORDER BY created_at
            """
        ),
        {"stall": stall_seconds},
    )
    return [dict(r._mapping) for r in rows]


async def pause_campaign(session: AsyncSession, campaign_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(CAMPAIGN)
        .where(CAMPAIGN.c.id == campaign_id, CAMPAIGN.c.status == "dispatching")
        .values(status="paused", pause_reason=reason, updated_at=func.now())
    )


async def not_yet_due(session: AsyncSession, campaign_id: uuid.UUID) -> bool:
    """Whether a campaign is still waiting for its send time: work queued for later, none
    due now, nothing attempted yet."""
    found = await session.scalar(
        text(
            """
            SELECT EXISTS (SELECT 1 FROM care.recipient WHERE campaign_id = :cid
                AND state IN ('queued', 'held') AND due_at > now())
            AND NOT EXISTS (SELECT 1 FROM care.recipient WHERE campaign_id = :cid AND (
                (state IN ('queued', 'held') AND due_at <= now())
                OR state IN ('sending', 'sent', 'delivered', 'failed', 'suppressed')))
            """
        ),
        {"cid": campaign_id},
    )
    return bool(found)


async def complete_if_done(session: AsyncSession, campaign_id: uuid.UUID) -> bool:
    result = await session.execute(
        text(
            """
            UPDATE care.campaign SET status = 'completed', completed_at = now(),
                updated_at = now()
            WHERE id = :cid AND status = 'dispatching' AND NOT EXISTS (
                SELECT 1 FROM care.recipient
                WHERE campaign_id = :cid AND state IN ('queued', 'held', 'sending'))
            RETURNING id
            """
        ),
        {"cid": campaign_id},
    )
    return result.first() is not None


async def due_approved_campaigns(session: AsyncSession) -> list[uuid.UUID]:
    """Approved campaigns whose first recipient is due: they start dispatching now."""
    rows = await session.execute(
        text(
            """
            UPDATE care.campaign c SET status = 'dispatching', updated_at = now()
            WHERE c.status = 'approved' AND EXISTS (
                SELECT 1 FROM care.recipient r WHERE r.campaign_id = c.id
                AND r.state IN ('queued', 'held') AND r.due_at <= now())
            RETURNING c.id
            """
        )
    )
    return [r[0] for r in rows]


async def campaigns_with_due_work(session: AsyncSession) -> list[uuid.UUID]:
    rows = await session.execute(
        text(
            """
            SELECT c.id FROM care.campaign c
            WHERE c.status = 'dispatching' AND EXISTS (
                SELECT 1 FROM care.recipient r WHERE r.campaign_id = c.id
                AND r.state IN ('queued', 'held') AND r.due_at <= now())
            """
        )
    )
    return [r[0] for r in rows]


async def finished_candidates(session: AsyncSession) -> list[uuid.UUID]:
    rows = await session.execute(
        text(
            """
            SELECT c.id FROM care.campaign c WHERE c.status = 'dispatching' AND NOT EXISTS (
                SELECT 1 FROM care.recipient r
                WHERE r.campaign_id = c.id AND r.state IN ('queued', 'held', 'sending'))
            """
        )
    )
    return [r[0] for r in rows]


async def cancel_open_recipients(session: AsyncSession, campaign_id: uuid.UUID) -> int:
    result = await session.execute(
        update(R)
        .where(R.c.campaign_id == campaign_id, R.c.state.in_(["queued", "held"]))
        .values(state="cancelled", reason="campaign_cancelled", updated_at=func.now())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# ---- dispatch -------------------------------------------------------------------------


async def claim_due(
    session: AsyncSession, campaign_id: uuid.UUID, limit: int, now: datetime
) -> list[dict[str, Any]]:
    """Lock up to ``limit`` due recipients no other worker holds, with their customer.

    SKIP LOCKED lets any number of jobs share one campaign without ever taking the same row.
    """
    rows = await session.execute(
        text(
            f"""
            SELECT r.id, r.msisdn, r.idempotency_key, r.attempts, r.state AS recipient_state,
                   c.msisdn AS customer_msisdn, c.name, c.gender, c.honorific, c.tier,
                   c.region, c.city, c.service_level, c.status, c.time_zone,
                   c.sms_opt_out OR {pending_opt_out("r.msisdn")} AS sms_opt_out,
                   c.do_not_disturb, c.taboos, c.custom, c.manager_name
            FROM care.recipient r LEFT JOIN care.customer c ON c.msisdn = r.msisdn
            WHERE r.campaign_id = :cid AND r.state IN ('queued', 'held') AND r.due_at <= :now
            LIMIT :limit
            FOR UPDATE OF r SKIP LOCKED
            """
        ),
        {"cid": campaign_id, "limit": limit, "now": now},
    )
    return [dict(r._mapping) for r in rows]


async def lock_customers(session: AsyncSession, msisdns: Sequence[str]) -> None:
    """Row locks on these customers until the transaction ends, taken in one order so two
    batches waiting on each other's customers cannot deadlock."""
    await session.execute(
        text(
            "SELECT 1 FROM care.customer WHERE msisdn = ANY(:m) ORDER BY msisdn FOR NO KEY UPDATE"
        ).bindparams(bindparam("m", type_=ARRAY(String))),
        {"m": list(msisdns)},
    )


async def sent_in_window(
    session: AsyncSession, msisdns: Sequence[str], window_days: int
) -> dict[str, int]:
    rows = await session.execute(
        text(
            """
            SELECT msisdn, count(*) FROM care.recipient
            WHERE msisdn = ANY(:m) AND counts_toward_cap AND state IN ('sending', 'sent',
                'delivered') AND sent_at > now() - make_interval(days => :days)
            GROUP BY msisdn
            """
        ).bindparams(bindparam("m", type_=ARRAY(String))),
        {"m": list(msisdns), "days": window_days},
    )
    return {r[0]: int(r[1]) for r in rows}


async def claim_greetings(
    session: AsyncSession, occasion: str, recipients: dict[str, int]
) -> set[str]:
    """Record that these recipients get the greeting for ``occasion``; returns the numbers
    that are theirs to send. A number another recipient row already holds is not: the
    primary key makes two concurrent campaigns for one occasion agree on a single winner."""
    if not recipients:
        return set()
    now = clock.now()
    inserted = await session.execute(
        insert(Greeting.__table__)  # type: ignore[attr-defined]
        .values(
            [
                {"msisdn": m, "occasion": occasion, "recipient_id": rid, "at": now}
                for m, rid in recipients.items()
            ]
        )
        .on_conflict_do_nothing()
        .returning(Greeting.__table__.c.msisdn)  # type: ignore[attr-defined]
    )
    ours = {r[0] for r in inserted}
    rest = [m for m in recipients if m not in ours]
    if rest:
        # A row re-sent after a crash finds its own earlier claim.
        held = await session.execute(
            select(Greeting.msisdn, Greeting.recipient_id).where(  # type: ignore[call-overload]
                Greeting.occasion == occasion,
                Greeting.msisdn.in_(rest),  # type: ignore[attr-defined]
            )
        )
        ours |= {m for m, rid in held if recipients[m] == rid}
    return ours


async def forget_greetings(session: AsyncSession, recipient_ids: Sequence[int]) -> None:
    if recipient_ids:
        await session.execute(
            delete(Greeting).where(Greeting.recipient_id.in_(list(recipient_ids)))  # type: ignore[attr-defined]
        )


_APPLY = text(
    """
    UPDATE care.recipient r SET
        state = v.state,
        text = coalesce(v.text, r.text),
        reason = v.reason,
        error_message = v.detail,
        due_at = coalesce(v.due_at, r.due_at),
        attempts = r.attempts + CASE WHEN v.state = 'sending' THEN 1 ELSE 0 END,
        claim_token = CASE WHEN v.state = 'sending' THEN :token ELSE NULL END,
        lease_until = CASE WHEN v.state = 'sending' THEN now() + make_interval(secs => :lease)
                      ELSE NULL END,
        sent_at = CASE WHEN v.state = 'sending' THEN now() ELSE r.sent_at END,
        provider = CASE WHEN v.state = 'sending' THEN :provider ELSE r.provider END,
        updated_at = now()
    FROM unnest(:ids, :states, :texts, :reasons, :details, :due)
        AS v(id, state, text, reason, detail, due_at)
    WHERE r.id = v.id
    """
).bindparams(
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("states", type_=ARRAY(String)),
    bindparam("texts", type_=ARRAY(Text)),
    bindparam("reasons", type_=ARRAY(String)),
    bindparam("details", type_=ARRAY(Text)),
    bindparam("due", type_=ARRAY(DateTime(timezone=True))),
    bindparam("token", type_=Uuid),
)


async def apply_decisions(
    session: AsyncSession,
    rows: Sequence[tuple[int, str, str | None, str | None, str | None, datetime | None]],
    *,
    token: uuid.UUID,
    lease_seconds: float,
    provider: str,
) -> None:
    """(id, state, text, reason, detail, due_at) per claimed row; 'sending' takes a lease."""
    if not rows:
        return
    ids, states, texts, reasons, details, due = (list(c) for c in zip(*rows, strict=True))
    await session.execute(
        _APPLY,
        {
            "ids": ids,
            "states": states,
            "texts": texts,
            "reasons": reasons,
            "details": details,
            "due": due,
            "token": token,
            "lease": lease_seconds,
            "provider": provider,
        },
    )


_RESULTS = text(
    """
    UPDATE care.recipient r SET
        state = v.state,
        provider_message_id = coalesce(v.message_id, r.provider_message_id),
        error_code = v.error_code,
        error_message = v.error_message,
        due_at = coalesce(v.due_at, r.due_at),
        attempts = r.attempts - CASE WHEN v.refund THEN 1 ELSE 0 END,
        claim_token = CASE WHEN v.state = 'sending' THEN r.claim_token ELSE NULL END,
        lease_until = CASE WHEN v.state = 'sending' THEN v.due_at ELSE NULL END,
        sent_at = CASE WHEN v.state = 'sent' THEN now() ELSE r.sent_at END,
        updated_at = now()
    FROM unnest(:ids, :states, :message_ids, :codes, :messages, :due, :refund)
        AS v(id, state, message_id, error_code, error_message, due_at, refund)
    WHERE r.id = v.id AND r.state = 'sending' AND r.claim_token = :token
    RETURNING r.id
    """
).bindparams(
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("states", type_=ARRAY(String)),
    bindparam("message_ids", type_=ARRAY(String)),
    bindparam("codes", type_=ARRAY(String)),
    bindparam("messages", type_=ARRAY(Text)),
    bindparam("due", type_=ARRAY(DateTime(timezone=True))),
    bindparam("refund", type_=ARRAY(Boolean)),
    bindparam("token", type_=Uuid),
)


async def record_results(
    session: AsyncSession,
    token: uuid.UUID,
    rows: Sequence[tuple[int, str, str | None, str | None, str | None, datetime | None, bool]],
) -> set[int]:
    """(id, state, message id, error code, error message, due/lease, refund attempt) per
    sent row; only rows still held under ``token`` change. Returns the ids that changed."""
    if not rows:
        return set()
    columns = [list(c) for c in zip(*rows, strict=True)]
    result = await session.execute(
        _RESULTS,
        {
            "ids": columns[0],
            "states": columns[1],
            "message_ids": columns[2],
            "codes": columns[3],
            "messages": columns[4],
            "due": columns[5],
            "refund": columns[6],
            "token": token,
        },
    )
    return {r[0] for r in result}


async def stale_sending(session: AsyncSession, provider: str, limit: int) -> list[dict[str, Any]]:
    """Sends of ``provider`` whose outcome is unknown, locked for the caller to settle;
    ``sent_at`` is when the row was claimed for the attempt."""
    rows = await session.execute(
        text(
            """
            SELECT id, idempotency_key, msisdn, sent_at FROM care.recipient
            WHERE state = 'sending' AND provider = :provider AND lease_until < now()
            ORDER BY lease_until LIMIT :limit FOR UPDATE SKIP LOCKED
            """
        ),
        {"provider": provider, "limit": limit},
    )
    return [dict(r._mapping) for r in rows]


async def settle_stale(
    session: AsyncSession,
    sent: Mapping[int, str | None],
    requeue: Sequence[int],
    ask_later: Mapping[int, datetime],
) -> None:
    """``sent``: id -> provider message id, where known; ``ask_later``: id -> when to ask
    the provider again (the row stays ``sending`` until then)."""
    if sent:
        await session.execute(
            text(
                """
                UPDATE care.recipient r SET state = 'sent',
                    provider_message_id = coalesce(v.mid, r.provider_message_id),
                    claim_token = NULL, lease_until = NULL, updated_at = now()
                FROM unnest(:ids, :mids) AS v(id, mid) WHERE r.id = v.id
                """
            ).bindparams(
                bindparam("ids", type_=ARRAY(BigInteger)), bindparam("mids", type_=ARRAY(String))
            ),
            {"ids": list(sent), "mids": list(sent.values())},
        )
    if ask_later:
        await session.execute(
            text(
                """
                UPDATE care.recipient r SET lease_until = v.at, updated_at = now()
                FROM unnest(:ids, :ats) AS v(id, at) WHERE r.id = v.id
                """
            ).bindparams(
                bindparam("ids", type_=ARRAY(BigInteger)),
                bindparam("ats", type_=ARRAY(DateTime(timezone=True))),
            ),
            {"ids": list(ask_later), "ats": list(ask_later.values())},
        )
    if requeue:
        await session.execute(
            update(R)
            .where(R.c.id.in_(list(requeue)))
            .values(
                state="queued",
                claim_token=None,
                lease_until=None,
                due_at=func.now(),
                updated_at=func.now(),
            )
        )


# ---- receipts -------------------------------------------------------------------------


# Receipts a batch at a time (a provider pushes hundreds in one request): the first
# receipt of each recipient in the batch decides, as one at a time in order would; later
# ones, like a re-push, find the recipient final and change nothing. The provider's time
# of delivery counts unless its clock puts it before our send: then when the receipt
# reached us (never a delivery that precedes its send).
_APPLY_RECEIPTS = """
UPDATE care.recipient r SET
    state = CASE WHEN g.delivered THEN 'delivered' ELSE 'failed' END,
    delivered_at = CASE
        WHEN NOT g.delivered THEN r.delivered_at
        WHEN r.sent_at IS NULL OR g.at >= r.sent_at THEN g.at
        ELSE greatest(r.sent_at, now()) END,
    error_code = CASE WHEN g.delivered THEN r.error_code
        ELSE coalesce(g.error_code, 'undelivered') END,
    claim_token = NULL, lease_until = NULL, updated_at = now()
FROM unnest(CAST(:matches AS varchar[]), CAST(:delivered AS boolean[]),
            CAST(:codes AS varchar[]), CAST(:ats AS timestamptz[]))
    AS g(match, delivered, error_code, at)
WHERE r.{column} = g.match AND r.state IN ('sending', 'sent')
RETURNING r.id, r.campaign_id, r.msisdn, r.text, r.state, r.delivered_at
"""
_APPLY_BY_KEY = text(_APPLY_RECEIPTS.format(column="idempotency_key"))
_APPLY_BY_MESSAGE = text(_APPLY_RECEIPTS.format(column="provider_message_id"))


async def apply_receipts(
    session: AsyncSession,
    receipts: Sequence[tuple[str | None, str | None, bool, str | None, datetime]],
) -> list[dict[str, Any]]:
    """Mark recipients delivered (or failed) once each, from ``(idempotency_key,
    provider_message_id, delivered, error_code, at)``, matched by our key when the provider
    echoes it, else by its message id; returns the recipients changed. A repeated receipt
    changes nothing."""
    by_key: dict[str, tuple[bool, str | None, datetime]] = {}
    by_message: dict[str, tuple[bool, str | None, datetime]] = {}
    for key, message_id, delivered, error_code, at in receipts:
        if key:
            by_key.setdefault(key, (delivered, error_code, at))
        elif message_id:
            by_message.setdefault(message_id, (delivered, error_code, at))
    changed: list[dict[str, Any]] = []
    for statement, matched in ((_APPLY_BY_KEY, by_key), (_APPLY_BY_MESSAGE, by_message)):
        if not matched:
            continue
        rows = await session.execute(
            statement,
            {
                "matches": list(matched),
                "delivered": [m[0] for m in matched.values()],
                "codes": [m[1] for m in matched.values()],
                "ats": [m[2] for m in matched.values()],
            },
        )
        changed.extend(dict(row._mapping) for row in rows)
    return changed


# ---- reports --------------------------------------------------------------------------


async def state_counts(session: AsyncSession, campaign_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(R.c.state, func.count()).where(R.c.campaign_id == campaign_id).group_by(R.c.state)
    )
    return {s: int(n) for s, n in rows}


async def reason_counts(session: AsyncSession, campaign_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(R.c.reason, func.count())
        .where(R.c.campaign_id == campaign_id, R.c.state == "suppressed")
        .group_by(R.c.reason)
    )
    return {str(s): int(n) for s, n in rows}


async def list_recipients(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    state: RecipientState | None,
    limit: int,
    offset: int,
    team_id: str | None = None,
) -> list[Recipient]:
    statement = select(Recipient).where(Recipient.campaign_id == campaign_id)  # type: ignore[arg-type]
    if team_id is not None:
        statement = statement.where(col(Recipient.msisdn).in_(_team_customers(team_id)))
    if state is not None:
        statement = statement.where(Recipient.state == state)  # type: ignore[arg-type]
    statement = statement.order_by(Recipient.id).limit(limit).offset(offset)  # type: ignore[arg-type]
    return list((await session.execute(statement)).scalars())


async def messages_of(
    session: AsyncSession,
    msisdns: Sequence[str],
    states: Sequence[RecipientState] | None,
    limit: int,
    team_id: str | None = None,
) -> list[tuple[Recipient, str]]:
    """Several customers' recipient rows across campaigns with their campaign's name,
    newest first (sent, else due). A team sees what :func:`list_recipients` shows it: rows
    of its own and company-wide campaigns, of its own customers."""
    newest = func.coalesce(col(Recipient.sent_at), col(Recipient.due_at))
    statement = (
        select(Recipient, col(Campaign.name))
        .join(Campaign, col(Campaign.id) == col(Recipient.campaign_id))
        .where(col(Recipient.msisdn).in_(msisdns))
    )
    if team_id is not None:
        statement = statement.where(
            or_(col(Campaign.team_id) == team_id, col(Campaign.team_id).is_(None)),
            col(Recipient.msisdn).in_(_team_customers(team_id)),
        )
    if states:
        statement = statement.where(col(Recipient.state).in_(states))
    statement = statement.order_by(newest.desc(), col(Recipient.id).desc()).limit(limit)
    return [(r, name) for r, name in (await session.execute(statement)).all()]


# ---- rules and tasks ------------------------------------------------------------------


async def rules(session: AsyncSession, include_inactive: bool = False) -> list[Rule]:
    statement = select(Rule).order_by(Rule.created_at)  # type: ignore[arg-type]
    if not include_inactive:
        statement = statement.where(Rule.active)  # type: ignore[arg-type]
    return list((await session.execute(statement)).scalars())


async def get_rule(session: AsyncSession, rule_id: uuid.UUID) -> Rule | None:
    return await session.get(Rule, rule_id, with_for_update=True)


async def customers_where(
    session: AsyncSession, condition: str, params: dict[str, Any]
) -> list[str]:
    rows = await session.execute(
        text(f"SELECT c.msisdn FROM care.customer c WHERE c.status = 'active' AND {condition}"),
        params,
    )
    return [r[0] for r in rows]


async def add_task(
    session: AsyncSession,
    *,
    msisdn: str,
    manager_id: str | None,
    kind: str,
    period: str,
    due_on: date,
    note: str,
) -> bool:
    result = await session.execute(
        insert(Task.__table__)  # type: ignore[attr-defined]
        .values(
            msisdn=msisdn,
            manager_id=manager_id,
            kind=kind,
            period=period,
            due_on=due_on,
            status="open",
            note=note,
            created_at=func.now(),
        )
        .on_conflict_do_nothing()
        .returning(Task.__table__.c.id)  # type: ignore[attr-defined]
    )
    return result.first() is not None


async def list_tasks(
    session: AsyncSession,
    status: TaskStatus,
    manager_id: str | None,
    due_by: date | None,
    limit: int,
    offset: int,
    team_id: str | None = None,
    msisdns: Sequence[str] | None = None,
) -> list[Task]:
    """Open tasks soonest due first; closed ones most recently closed first."""
    statement = select(Task).where(Task.status == status)  # type: ignore[arg-type]
    if msisdns is not None:
        statement = statement.where(col(Task.msisdn).in_(msisdns))
    if team_id is not None:
        statement = statement.where(col(Task.msisdn).in_(_team_customers(team_id)))
    if manager_id is not None:
        statement = statement.where(Task.manager_id == manager_id)  # type: ignore[arg-type]
    if due_by is not None:
        statement = statement.where(Task.due_on <= due_by)  # type: ignore[arg-type]
    if status is TaskStatus.open:
        statement = statement.order_by(col(Task.due_on), col(Task.id))
    else:
        statement = statement.order_by(col(Task.completed_at).desc(), col(Task.id))
    statement = statement.limit(limit).offset(offset)
    return list((await session.execute(statement)).scalars())


async def move_open_tasks(session: AsyncSession, managers: Mapping[str, str | None]) -> None:
    """Each number's open tasks to its manager (``managers``: number to manager id)."""
    if not managers:
        return
    await session.execute(
        text(
            """
            UPDATE care.task t SET manager_id = m.manager_id
            FROM unnest(CAST(:msisdns AS varchar[]), CAST(:managers AS varchar[]))
                AS m(msisdn, manager_id)
            WHERE t.msisdn = m.msisdn AND t.status = 'open'
                AND t.manager_id IS DISTINCT FROM m.manager_id
            """
        ),
        {"msisdns": list(managers), "managers": list(managers.values())},
    )


async def cancel_open_tasks(session: AsyncSession, msisdn: str, reason: str) -> None:
    await session.execute(
        update(Task)
        .where(col(Task.msisdn) == msisdn, col(Task.status) == TaskStatus.open)
        .values(status=TaskStatus.cancelled, completed_at=func.now(), outcome_note=reason)
    )


async def get_task(session: AsyncSession, task_id: int) -> Task | None:
    return await session.get(Task, task_id, with_for_update=True)


async def forecast(
    session: AsyncSession,
    campaign: Campaign,
    policy: Policy,
    window_days: int,
    missing_conditions: list[str],
    params: dict[str, Any],
    now: datetime,
) -> dict[str, int]:
    """How the audience would split if approved at ``now``: control group, each
    suppression reason in the order the dispatcher applies them, ``held`` (due inside quiet
    hours, sent when they end) and ``ok``. The cap counts what was sent so far."""
    source, source_params = _audience_source(campaign)
    key = "m.msisdn" if campaign.audience.get("source") == "list" else "c.msisdn"
    render_error = " OR ".join(missing_conditions) or "false"
    due = _due(campaign, now, source_params)
    start, end = policy.quiet_start_hour, policy.quiet_end_hour
    hour = "extract(hour FROM c.due AT TIME ZONE coalesce(c.time_zone, 'Asia/Shanghai'))"
    if not policy.honours_quiet_hours or start == end:
        quiet = "false"
    elif start > end:
        quiet = f"({hour} >= {start} OR {hour} < {end})"
    else:
        quiet = f"({hour} >= {start} AND {hour} < {end})"
    rows = await session.execute(
        text(
            f"""
            WITH sent AS (
                SELECT msisdn, count(*) AS n FROM care.recipient
                WHERE counts_toward_cap AND state IN ('sending', 'sent', 'delivered')
                    AND sent_at > now() - make_interval(days => :window_days)
                GROUP BY msisdn)
            SELECT CASE
                WHEN {IN_CONTROL.format(alias="c")} THEN 'control'
                WHEN c.msisdn IS NULL THEN 'unknown_customer'
                WHEN c.target !~ '^1[3-9][0-9]{{9}}$' THEN 'invalid_number'
                WHEN c.status = 'churned' THEN 'churned'
                WHEN c.sms_opt_out OR {pending_opt_out("c.target")} THEN 'opt_out'
                WHEN c.do_not_disturb AND :honours_dnd THEN 'do_not_disturb'
                WHEN c.taboos ?| :taboo_tags THEN 'taboo'
                WHEN {render_error} THEN 'render_error'
                WHEN {quiet} THEN 'held'
                WHEN NOT :cap_exempt AND coalesce(s.n, 0) >= :cap THEN 'frequency_cap'
                ELSE 'ok' END AS outcome, count(*)
            FROM (SELECT {key} AS target, {due} AS due, {_control_rank(key)}, c.*
                  FROM {source}) c
            LEFT JOIN sent s ON s.msisdn = c.target
            GROUP BY 1
            """
        ).bindparams(
            bindparam("taboo_tags", type_=ARRAY(String)),
            bindparam("send_at", type_=DateTime(timezone=True)),
        ),
        {
            **source_params,
            **params,
            "campaign_id_text": str(campaign.id),
            "control_bp": int(campaign.control_percent * 100),
            "taboo_tags": list(campaign.taboo_tags),
            "honours_dnd": policy.honours_do_not_disturb,
            "cap_exempt": policy.cap_exempt,
            "cap": policy.frequency_cap,
            "window_days": window_days,
        },
    )
    return {r[0]: int(r[1]) for r in rows}


async def customers_with_managers(
    session: AsyncSession, condition: str
) -> list[tuple[str, str | None]]:
    rows = await session.execute(
        text(
            "SELECT c.msisdn, c.manager_id FROM care.customer c "
            f"WHERE c.status = 'active' AND {condition} ORDER BY c.msisdn"
        )
    )
    return [(r[0], r[1]) for r in rows]


# What care holds about one customer (the access right; `keepwell export` joins every
# service's part into one document).
EXPORT_QUERIES = {
    "customer": "SELECT * FROM care.customer WHERE msisdn = :m",
    "messages": "SELECT c.name AS campaign_name, c.category, r.state, r.text, r.sent_at, "
    "r.delivered_at FROM care.recipient r JOIN care.campaign c ON c.id = r.campaign_id "
    "WHERE r.msisdn = :m ORDER BY r.id",
    "tasks": "SELECT * FROM care.task WHERE msisdn = :m ORDER BY id",
    "replies": "SELECT * FROM care.sms_reply WHERE msisdn = :m ORDER BY id",
    "greetings": "SELECT * FROM care.greeting WHERE msisdn = :m ORDER BY at",
}
