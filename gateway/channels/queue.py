"""Queueing a notice for a team's channels, in the caller's transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.channels import robots
from gateway.models import ChannelMessage, MessageStatus, NoticeKind, TeamChannel
from services.kit import clock


@dataclass(frozen=True)
class Notice:
    """One thing a team's staff should hear of, rendered (in Chinese) by whoever took the
    event: its title and a few lines of markdown-safe text."""

    event_id: uuid.UUID
    team_id: str
    kind: str
    """``warning``, ``sla_breached`` or ``escalated``."""
    title: str
    lines: list[str]


async def queue_notice(session: AsyncSession, notice: Notice) -> int:
    """Queue ``notice`` for each active channel of its team, in the caller's transaction
    (so it is queued exactly when the event is taken); a notice already queued for a
    channel (the same event again) is not queued twice. Returns how many were queued."""
    kind = NoticeKind(notice.kind)
    channels = (
        await session.execute(
            select(col(TeamChannel.id), col(TeamChannel.kind)).where(
                col(TeamChannel.team_id) == notice.team_id, col(TeamChannel.active)
            )
        )
    ).all()
    if not channels:
        return 0
    now = clock.now()
    rows = [
        {
            "channel_id": channel_id,
            "event_id": notice.event_id,
            "kind": kind,
            "body": robots.body(channel_kind, notice.title, notice.lines),
            "status": MessageStatus.pending,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for channel_id, channel_kind in channels
    ]
    queued = await session.execute(
        insert(ChannelMessage)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["channel_id", "event_id"])
        .returning(col(ChannelMessage.id))
    )
    return len(queued.all())
