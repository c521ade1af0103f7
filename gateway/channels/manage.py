"""Admins' management of the channels (``keepwell gateway channels``): add, list with
the URL's key masked, remove, and a test message sent at once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.channels import robots
from gateway.models import ChannelKind, ChannelMessage, MessageStatus, TeamChannel
from services.kit import clock
from services.kit.errors import InvalidInput, NotFound

TEST_TITLE = "Keepwell 测试消息"


@dataclass(frozen=True)
class Listed:
    """A channel as lists show it: never its key or secret."""

    id: int
    team_id: str
    kind: str
    name: str
    url: str
    signed: bool
    active: bool
    counts: dict[str, int]
    """Its messages by status (pending, sent, dead)."""


async def add(
    session: AsyncSession,
    *,
    team_id: str,
    kind: str,
    name: str,
    url: str,
    secret: str | None,
    created_by: str,
    production: bool,
) -> TeamChannel:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", team_id):
        raise InvalidInput("team：1 到 32 个字母、数字或 _-（档案中的团队编号）", field="team_id")
    try:
        channel_kind = ChannelKind(kind)
    except ValueError:
        raise InvalidInput("kind：wecom 或 dingtalk", field="kind") from None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput("url：机器人的 webhook 地址（https://...）", field="url")
    if production and parts.scheme != "https":
        raise InvalidInput("url：须使用 https", field="url")
    if channel_kind is ChannelKind.wecom and secret:
        raise InvalidInput(
            "secret：企业微信机器人没有加签密钥（密钥在地址的 key 里）", field="secret"
        )
    if not name.strip() or len(name) > 100:
        raise InvalidInput("name：1 到 100 个字符", field="name")
    row = TeamChannel(
        team_id=team_id,
        kind=channel_kind,
        name=name.strip(),
        webhook_url=url,
        secret=secret or None,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    return row


async def listed(session: AsyncSession, team_id: str | None = None) -> list[Listed]:
    query = select(TeamChannel).order_by(col(TeamChannel.team_id), col(TeamChannel.id))
    if team_id is not None:
        query = query.where(col(TeamChannel.team_id) == team_id)
    channels = list((await session.execute(query)).scalars())
    counts: dict[int, dict[str, int]] = {}
    for channel_id, status, count in await session.execute(
        select(col(ChannelMessage.channel_id), col(ChannelMessage.status), func.count())
        .where(col(ChannelMessage.channel_id).in_([c.id for c in channels]))
        .group_by(col(ChannelMessage.channel_id), col(ChannelMessage.status))
    ):
        counts.setdefault(channel_id, {})[MessageStatus(status).value] = count
    return [
        Listed(
            id=c.id or 0,
            team_id=c.team_id,
            kind=c.kind.value,
            name=c.name,
            url=robots.masked_url(c.webhook_url),
            signed=c.secret is not None,
            active=c.active,
            counts={s.value: counts.get(c.id or 0, {}).get(s.value, 0) for s in MessageStatus},
        )
        for c in channels
    ]


async def get(session: AsyncSession, channel_id: int) -> TeamChannel:
    row = await session.get(TeamChannel, channel_id)
    if row is None:
        raise NotFound(f"渠道 {channel_id} 不存在", field="id")
    return row


async def remove(session: AsyncSession, channel_id: int) -> TeamChannel:
    """Delete a channel with its messages (its URL and secret are gone with it)."""
    row = await get(session, channel_id)
    await session.execute(delete(TeamChannel).where(col(TeamChannel.id) == channel_id))
    return row


async def send_test(http: httpx.AsyncClient, channel: TeamChannel) -> robots.Answer:
    """A test message to the channel now, outside the queue and its rate limit."""
    lines = [f"渠道「{channel.name}」（团队 {channel.team_id}）已接入 Keepwell。"]
    return await robots.post(
        http,
        channel.kind,
        channel.webhook_url,
        channel.secret,
        robots.body(channel.kind, TEST_TITLE, lines),
        10.0,
        int(clock.now().timestamp() * 1000),
    )
