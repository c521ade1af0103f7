"""Staff channels: notices queued for a team's WeCom and DingTalk robots reach a stand-in
that checks DingTalk's signature, with retries, back-off, a per-team rate limit shared by
every gateway process, and exactly-once queueing and sending."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from gateway.app import create_app
from gateway.channels import ChannelPolicy, ChannelSender, Notice, manage, queue_notice
from gateway.channels.robots import body, masked_url
from gateway.channels.sender import lock_team
from gateway.models import ChannelKind, ChannelMessage, MessageStatus, TeamChannel
from services.kit import clock
from services.kit.config import Settings
from services.kit.db import create_engine, create_sessionmaker, session_scope
from services.kit.testing import serve
from tests.gateway.conftest import GATEWAY
from tests.gateway.robots import Robots

SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"


@dataclass
class World:
    robots: Robots
    url: str
    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient

    def sender(self, **policy: Any) -> ChannelSender:
        return ChannelSender(self.sessionmaker, self.http, ChannelPolicy(**policy))

    async def channel(
        self, team: str, kind: str, token: str, secret: str | None = None, active: bool = True
    ) -> int:
        path = "cgi-bin/webhook/send?key=" if kind == "wecom" else "robot/send?access_token="
        async with session_scope(self.sessionmaker) as session:
            row = await manage.add(
                session,
                team_id=team,
                kind=kind,
                name=f"{team} 值班群",
                url=f"{self.url}/{path}{token}",
                secret=secret,
                created_by="test",
                production=False,
            )
            row.active = active
            assert row.id is not None
            return row.id

    async def queue(self, team: str, count: int = 1, kind: str = "warning") -> list[uuid.UUID]:
        events = [uuid.uuid4() for _ in range(count)]
        async with session_scope(self.sessionmaker) as session:
            for n, event in enumerate(events):
                notice = Notice(event, team, kind, f"流失预警 {n}", [f"客户 138****{n:04d}"])
                await queue_notice(session, notice)
        return events

    async def messages(self) -> list[ChannelMessage]:
        async with self.sessionmaker() as session:
            query = select(ChannelMessage).order_by(col(ChannelMessage.id))
            return list((await session.execute(query)).scalars())


@pytest.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[World]:
    robots = Robots()
    async with serve(robots.app()) as url, httpx.AsyncClient() as http:
        yield World(robots, url, create_sessionmaker(engine), http)


async def test_wecom_and_dingtalk_receive_their_markdown_bodies(world: World) -> None:
    world.robots.secrets["dt-1"] = SECRET
    await world.channel("T001", "wecom", "wk-1")
    await world.channel("T001", "dingtalk", "dt-1", SECRET)
    await world.channel("T002", "wecom", "wk-2")
    event = uuid.uuid4()
    notice = Notice(
        event, "T001", "sla_breached", "投诉超时：C20261203001", ["处理人 M0001", "已超时 15 分钟"]
    )
    async with session_scope(world.sessionmaker) as session:
        assert await queue_notice(session, notice) == 2

    assert await world.sender().send_due() == 2

    assert world.robots.bodies("wecom:wk-1") == [
        {
            "msgtype": "markdown",
            "markdown": {"content": "**投诉超时：C20261203001**\n> 处理人 M0001\n> 已超时 15 分钟"},
        }
    ]
    assert world.robots.bodies("dingtalk:dt-1") == [
        {
            "msgtype": "markdown",
            "markdown": {
                "title": "投诉超时：C20261203001",
                "text": "#### 投诉超时：C20261203001\n\n处理人 M0001\n\n已超时 15 分钟",
            },
        }
    ]
    assert world.robots.refused == []
    rows = await world.messages()
    assert [(r.status, r.attempts, r.event_id, r.kind) for r in rows] == [
        (MessageStatus.sent, 1, event, "sla_breached")
    ] * 2
    assert all(r.sent_at is not None and r.claim is None for r in rows)


async def test_a_wrong_dingtalk_secret_is_refused_retried_then_dead(world: World) -> None:
    world.robots.secrets["dt-1"] = SECRET
    await world.channel("T001", "dingtalk", "dt-1", "SECnot-the-right-one")
    await world.queue("T001")
    sender = world.sender(max_attempts=3)

    now = clock.now()
    for attempt in (1, 2, 3):
        assert await sender.send_due(now) == 0
        [row] = await world.messages()
        assert row.attempts == attempt and row.last_error is not None
        assert "310000" in row.last_error and "dt-1" not in row.last_error
        now = row.next_attempt_at
    assert row.status is MessageStatus.dead
    assert world.robots.received == []
    assert world.robots.refused == ["sign not match"] * 3
    assert await sender.send_due(now + timedelta(hours=1)) == 0


async def test_errors_are_retried_with_exponential_back_off(world: World) -> None:
    await world.channel("T001", "wecom", "wk-1")
    await world.queue("T001")
    world.robots.answer_next(3, status=500)
    sender = world.sender()

    now = clock.now()
    for attempt, delay in ((1, 2), (2, 4), (3, 8)):
        assert await sender.send_due(now) == 0
        [row] = await world.messages()
        assert row.attempts == attempt and row.status is MessageStatus.pending
        assert row.last_error is not None and row.last_error.startswith("HTTP 500")
        waited = (row.next_attempt_at - now).total_seconds()
        assert 0.8 * delay <= waited <= 1.2 * delay, (attempt, waited)
        # Not due before its time.
        assert await sender.send_due(now + timedelta(seconds=0.7 * delay)) == 0
        now = row.next_attempt_at

    assert await sender.send_due(now) == 1
    [row] = await world.messages()
    assert (row.status, row.attempts, row.last_error) == (MessageStatus.sent, 4, None)


async def test_the_robots_rate_limit_answers_wait_a_minute_without_counting(
    world: World,
) -> None:
    world.robots.secrets["dt-1"] = SECRET
    await world.channel("T001", "wecom", "wk-1")
    await world.channel("T001", "dingtalk", "dt-1", SECRET)
    await world.queue("T001")
    world.robots.answer_next(1, errcode=45009)
    world.robots.answer_next(1, errcode=130101)
    sender = world.sender(max_attempts=1)

    now = clock.now()
    assert await sender.send_due(now) == 0
    rows = await world.messages()
    assert [(r.status, r.attempts) for r in rows] == [(MessageStatus.pending, 0)] * 2
    assert all(60 <= (r.next_attempt_at - now).total_seconds() <= 72 for r in rows)
    assert await sender.send_due(now + timedelta(seconds=30)) == 0
    assert await sender.send_due(now + timedelta(seconds=73)) == 2
    assert len(world.robots.received) == 2


async def test_a_team_over_its_rate_waits_and_another_team_is_not_held_back(
    world: World,
) -> None:
    await world.channel("T001", "wecom", "wk-1")
    await world.channel("T002", "wecom", "wk-2")
    await world.queue("T001", 25)
    await world.queue("T002", 3)
    sender = world.sender(rate_per_minute=20)

    now = clock.now()
    assert await sender.send_due(now) == 23
    assert len(world.robots.bodies("wecom:wk-1")) == 20
    assert len(world.robots.bodies("wecom:wk-2")) == 3
    waiting = [r for r in await world.messages() if r.status is MessageStatus.pending]
    assert len(waiting) == 5 and all(
        r.next_attempt_at == now + timedelta(minutes=1) for r in waiting
    )
    assert all(r.attempts == 0 for r in waiting)

    await world.queue("T002", 2)
    assert await sender.send_due(now + timedelta(seconds=30)) == 2  # T002 only
    assert await sender.send_due(now + timedelta(minutes=1)) == 5
    assert len(world.robots.bodies("wecom:wk-1")) == 25
    # Everything once; the first 20 queued went first.
    titles = [b["markdown"]["content"].split("\n")[0] for b in world.robots.bodies("wecom:wk-1")]
    assert sorted(titles[:20]) == sorted(f"**流失预警 {n}**" for n in range(20))
    assert sorted(titles) == sorted(f"**流失预警 {n}**" for n in range(25))


@pytest.fixture
async def second_process(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Another gateway process's connection pool over the same database."""
    engine = create_engine(settings.database_url, pool_size=2)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def test_two_gateway_processes_send_each_message_once_within_the_rate(
    world: World, second_process: async_sessionmaker[AsyncSession]
) -> None:
    for team in ("T001", "T002", "T003"):
        await world.channel(team, "wecom", f"wk-{team}")
    events = [e for team in ("T001", "T002", "T003") for e in await world.queue(team, 30)]
    world.robots.delay_seconds = 0.02  # so the two passes overlap
    policy = {"rate_per_minute": 20, "batch_size": 20, "concurrency": 5}
    senders = [
        world.sender(**policy),
        ChannelSender(second_process, world.http, ChannelPolicy(**policy)),
    ]

    now = clock.now()
    for _ in range(3):  # both senders at once, over and over, at the same instant
        await asyncio.gather(*(s.send_due(now) for s in senders))
    assert len(world.robots.received) == 60  # 20 per team: the limit holds across processes
    later = now + timedelta(minutes=1)
    for _ in range(3):
        await asyncio.gather(*(s.send_due(later) for s in senders))

    sent = [(r.robot, r.body["markdown"]["content"]) for r in world.robots.received]
    assert len(sent) == len(set(sent)) == 90 == len(events)
    rows = await world.messages()
    assert all(r.status is MessageStatus.sent and r.attempts == 1 for r in rows)


async def test_two_processes_claiming_for_one_team_at_once_take_turns_within_its_rate(
    world: World, second_process: async_sessionmaker[AsyncSession]
) -> None:
    await world.channel("T001", "wecom", "wk-1")
    await world.queue("T001", 30)
    senders = [
        world.sender(batch_size=15),
        ChannelSender(second_process, world.http, ChannelPolicy(batch_size=15)),
    ]
    now = clock.now()
    async with world.sessionmaker() as third, third.begin():
        await lock_team(third, "T001")  # a third process, counting for the team now
        passes = [asyncio.create_task(s.send_due(now)) for s in senders]
        # Both have locked 15 rows each and wait for the team's turn.
        await both_waiting(third)
    assert sorted(await asyncio.gather(*passes)) == [5, 15]
    assert len(world.robots.received) == 20


async def both_waiting(session: AsyncSession) -> None:
    """Until two sessions wait for an advisory lock (checked every 10 ms, for 10 s)."""
    query = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    async with asyncio.timeout(10):
        while True:
            if (await session.execute(query)).scalar_one() == 2:
                return
            await asyncio.sleep(0.01)


async def test_the_same_event_queued_twice_is_queued_once(world: World) -> None:
    await world.channel("T001", "wecom", "wk-1")
    notice = Notice(uuid.uuid4(), "T001", "escalated", "投诉升级", ["已升级到主管"])
    for expected in (1, 0):
        async with session_scope(world.sessionmaker) as session:
            assert await queue_notice(session, notice) == expected
    assert len(await world.messages()) == 1
    assert await world.sender().send_due() == 1
    assert await world.sender().send_due() == 0


async def test_inactive_channels_get_nothing(world: World) -> None:
    await world.channel("T001", "wecom", "wk-off", active=False)
    paused = await world.channel("T001", "wecom", "wk-paused")
    await world.queue("T001")  # queued for the active channel only
    async with session_scope(world.sessionmaker) as session:
        await session.execute(
            update(TeamChannel).where(col(TeamChannel.id) == paused).values(active=False)
        )
    assert await world.sender().send_due() == 0
    assert world.robots.received == []
    [row] = await world.messages()
    assert row.channel_id == paused and row.status is MessageStatus.pending  # waits, kept

    async with session_scope(world.sessionmaker) as session:
        assert await queue_notice(session, Notice(uuid.uuid4(), "T001", "warning", "t", [])) == 0
        assert await queue_notice(session, Notice(uuid.uuid4(), "T009", "warning", "t", [])) == 0


async def test_a_claim_lost_with_its_process_is_sent_when_the_lease_runs_out(
    world: World,
) -> None:
    await world.channel("T001", "wecom", "wk-1")
    await world.queue("T001")
    now = clock.now()
    async with session_scope(world.sessionmaker) as session:  # claimed by a process now dead
        await session.execute(
            update(ChannelMessage).values(
                claim=uuid.uuid4(), attempted_at=now, next_attempt_at=now + timedelta(seconds=120)
            )
        )
    sender = world.sender(lease_seconds=120)
    assert await sender.send_due(now + timedelta(seconds=60)) == 0
    assert await sender.send_due(now + timedelta(seconds=121)) == 1
    assert len(world.robots.received) == 1


async def test_the_gateway_sends_queued_notices_while_it_runs(
    world: World, settings: Settings
) -> None:
    await world.channel("T001", "wecom", "wk-1")
    app = create_app(settings, GATEWAY)
    async with LifespanManager(app):
        await world.queue("T001", 2)
        app.state.channel_sender.nudge()
        await world.robots.wait_for(2)
    assert [r.status for r in await world.messages()] == [MessageStatus.sent] * 2

    off = create_app(settings, GATEWAY.model_copy(update={"channel_sender": False}))
    async with LifespanManager(off):
        assert not hasattr(off.state, "channel_sender")


async def test_sent_and_dead_messages_are_deleted_after_the_events_retention(
    world: World,
) -> None:
    await world.channel("T001", "wecom", "wk-1")
    await world.queue("T001", 3)
    sender = world.sender(keep_days=7, max_attempts=1)
    world.robots.answer_next(1, status=500)
    assert await sender.send_due() == 2  # one dead
    await world.queue("T001")  # pending: kept whatever its age
    now = clock.now()
    assert await sender.prune(now + timedelta(days=6)) == 0
    assert await sender.prune(now + timedelta(days=8)) == 3
    assert [r.status for r in await world.messages()] == [MessageStatus.pending]


def test_a_long_notice_is_cut_to_what_the_robot_takes() -> None:
    lines = ["客户流失风险上升，请尽快联系。" * 10] * 40
    wecom = body(ChannelKind.wecom, "流失预警", lines)["markdown"]["content"]
    assert len(wecom.encode()) <= 4096 and wecom.endswith("…")
    dingtalk = body(ChannelKind.dingtalk, "流失预警", lines)["markdown"]["text"]
    assert len(dingtalk.encode()) <= 20000 and dingtalk.startswith("#### 流失预警\n\n客户")


def test_lists_show_a_robot_url_without_its_key() -> None:
    assert (
        masked_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7a0c-4bc4-97a0")
        == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a****"
    )
    assert masked_url("https://u:pw@oapi.dingtalk.com/robot/send?access_token=abcdef") == (
        "https://u:****@oapi.dingtalk.com/robot/send?access_token=abcd****"
    )
