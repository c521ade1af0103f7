"""Settling sends of unknown outcome on Aliyun with QuerySendDetails, against a fake of
Aliyun's gateway over real HTTP that checks signatures, and through the dispatcher on real
PostgreSQL: a send Aliyun holds is never resent, one it does not hold is sent again only
once Aliyun's answer is conclusive, and a query that fails concludes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aliyun_fake import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BEIJING, FakeDysms, Record, create_app
from care_support import SeedCustomers, snapshot
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.care.config import CareSettings
from services.care.dispatch import Dispatcher
from services.care.providers import AliyunSmsConfig, AliyunSmsProvider, SentQuery
from services.kit.app import Resources
from services.kit.embedded import free_port
from services.kit.testing import serve

PHONE = "13800000001"
OTHER = "13800000002"


@pytest.fixture
async def dysms() -> AsyncIterator[tuple[FakeDysms, str]]:
    fake = FakeDysms()
    async with serve(create_app(fake)) as url:
        yield fake, url


def _provider(endpoint: str, client: httpx.AsyncClient, **overrides: Any) -> AliyunSmsProvider:
    values: dict[str, Any] = {
        "access_key_id": ACCESS_KEY_ID,
        "access_key_secret": SecretStr(ACCESS_KEY_SECRET),
        "sign_name": "客户关怀",
        "endpoint": endpoint,
    }
    values.update(overrides)
    return AliyunSmsProvider(AliyunSmsConfig(**values), client)


def _at(day: int, hour: int, minute: int, second: int = 0) -> datetime:
    """A moment in Beijing time."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=BEIJING)


@pytest.mark.parametrize("signature_version", ["v1", "v3"])
async def test_a_send_aliyun_holds_is_found_and_one_it_does_not_hold_is_not(
    dysms: tuple[FakeDysms, str], signature_version: str
) -> None:
    fake, url = dysms
    attempted = _at(20, 10, 0)
    fake.records += [
        Record(PHONE, "care-delivered", attempted + timedelta(seconds=2)),
        Record(PHONE, "care-waiting", attempted + timedelta(seconds=3), status=1),
        Record(PHONE, "care-undelivered", attempted + timedelta(seconds=4), status=2),
        Record(OTHER, "care-other-phone", attempted),
    ]
    queries = [
        SentQuery(idempotency_key=key, phone=PHONE, attempted_at=attempted)
        for key in (
            "care-delivered",
            "care-waiting",
            "care-undelivered",
            "care-never",
            "care-other-phone",
        )
    ]
    async with httpx.AsyncClient() as client:
        result = await _provider(url, client, signature_version=signature_version).lookup(queries)

    # Accepted whatever became of it: sending any of these again would be a duplicate.
    # Aliyun's records carry no BizId; the receipt brings it.
    assert result.found == {"care-delivered": None, "care-waiting": None, "care-undelivered": None}
    assert result.unanswered == frozenset()
    assert {q["SendDate"] for q in fake.queries} == {"20261120"}


async def test_paging_reaches_a_record_beyond_the_first_fifty(
    dysms: tuple[FakeDysms, str],
) -> None:
    fake, url = dysms
    attempted = _at(20, 10, 0)
    fake.records += [Record(PHONE, f"care-{i:03}", attempted) for i in range(120)]
    async with httpx.AsyncClient() as client:
        result = await _provider(url, client).lookup(
            [
                SentQuery(idempotency_key="care-119", phone=PHONE, attempted_at=attempted),
                SentQuery(idempotency_key="care-none", phone=PHONE, attempted_at=attempted),
            ]
        )

    assert result.found == {"care-119": None}
    pages = sorted(int(q["CurrentPage"]) for q in fake.queries)
    assert pages == [1, 1, 2, 2, 3, 3]  # both keys read all three pages, and no fourth


async def test_an_attempt_just_before_beijing_midnight_is_found_on_the_next_day(
    dysms: tuple[FakeDysms, str],
) -> None:
    fake, url = dysms
    attempted = _at(20, 23, 59, 30)
    fake.records.append(Record(PHONE, "care-late", _at(21, 0, 0, 20)))
    async with httpx.AsyncClient() as client:
        result = await _provider(url, client).lookup(
            [SentQuery(idempotency_key="care-late", phone=PHONE, attempted_at=attempted)]
        )

    assert result.found == {"care-late": None}
    assert [q["SendDate"] for q in fake.queries] == ["20261120", "20261121"]


async def test_the_beijing_date_is_asked_for_even_when_the_attempt_is_in_utc(
    dysms: tuple[FakeDysms, str],
) -> None:
    fake, url = dysms
    attempted = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)  # 01:00 on the 21st in Beijing
    fake.records.append(Record(PHONE, "care-utc", attempted))
    async with httpx.AsyncClient() as client:
        result = await _provider(url, client).lookup(
            [SentQuery(idempotency_key="care-utc", phone=PHONE, attempted_at=attempted)]
        )

    assert result.found == {"care-utc": None}
    assert [q["SendDate"] for q in fake.queries] == ["20261121"]


async def test_a_throttled_query_answers_nothing_for_its_key_and_the_others_still_count(
    dysms: tuple[FakeDysms, str],
) -> None:
    fake, url = dysms
    attempted = _at(20, 10, 0)
    fake.records += [
        Record(PHONE, "care-throttled", attempted),
        Record(OTHER, "care-ok", attempted),
    ]
    fake.throttled.add(PHONE)
    async with httpx.AsyncClient() as client:
        result = await _provider(url, client).lookup(
            [
                SentQuery(idempotency_key="care-throttled", phone=PHONE, attempted_at=attempted),
                SentQuery(idempotency_key="care-ok", phone=OTHER, attempted_at=attempted),
            ]
        )

    assert result.found == {"care-ok": None}
    assert result.unanswered == {"care-throttled"}


async def test_a_refused_signature_or_an_unreachable_gateway_answers_nothing(
    dysms: tuple[FakeDysms, str],
) -> None:
    fake, url = dysms
    attempted = _at(20, 10, 0)
    fake.records.append(Record(PHONE, "care-1", attempted))
    query = SentQuery(idempotency_key="care-1", phone=PHONE, attempted_at=attempted)
    async with httpx.AsyncClient() as client:
        wrong_secret = _provider(url, client, access_key_secret=SecretStr("not-the-secret"))
        unreachable = _provider(f"http://127.0.0.1:{free_port()}", client)
        refused = await wrong_secret.lookup([query])
        down = await unreachable.lookup([query])

    assert (refused.found, refused.unanswered) == ({}, {"care-1"})
    assert (down.found, down.unanswered) == ({}, {"care-1"})
    assert fake.queries == []


async def test_reconcile_on_aliyun_never_resends_what_it_holds_and_waits_to_be_sure_it_does_not(
    dysms: tuple[FakeDysms, str],
    seed_customers: SeedCustomers,
    start_campaign,
    resources: Resources,
    care_settings: CareSettings,
    engine: AsyncEngine,
) -> None:
    fake, url = dysms
    phones = {
        "13800000001": "held by Aliyun",
        "13800000002": "not held, attempted 10 minutes ago",
        "13800000003": "not held, attempted a minute ago",
        "13800000004": "Aliyun throttles the query",
    }
    await seed_customers(*(snapshot(p) for p in phones))
    campaign_id = await start_campaign()
    # A worker claimed every row for Aliyun and died mid-call.
    async with engine.begin() as conn:
        rows = {
            r.msisdn: r
            for r in await conn.execute(
                text(
                    "UPDATE care.recipient SET state = 'sending', provider = 'aliyun', "
                    "attempts = 1, sent_at = now() - CASE msisdn WHEN '13800000003' "
                    "THEN interval '1 minute' ELSE interval '10 minutes' END, "
                    "lease_until = now() - interval '1 second' "
                    "WHERE campaign_id = :c RETURNING id, msisdn, idempotency_key, sent_at"
                ),
                {"c": campaign_id},
            )
        }
    fake.records.append(
        Record("13800000001", rows["13800000001"].idempotency_key, rows["13800000001"].sent_at)
    )
    fake.throttled.add("13800000004")
    async with httpx.AsyncClient() as client:
        provider = _provider(url, client, lookup_settles_seconds=300)
        dispatcher = Dispatcher(resources.session, resources.redis, provider, care_settings)

        assert await dispatcher.reconcile() == 2
        queries_after_first_sweep = len(fake.queries)
        assert await dispatcher.reconcile() == 0

    async with engine.connect() as conn:
        now = (await conn.execute(text("SELECT now()"))).scalar_one()
        after = {
            r.msisdn: r
            for r in await conn.execute(
                text(
                    "SELECT msisdn, state, attempts, lease_until, due_at FROM care.recipient "
                    "WHERE campaign_id = :c"
                ),
                {"c": campaign_id},
            )
        }
    assert {m: r.state for m, r in after.items()} == {
        "13800000001": "sent",
        "13800000002": "queued",
        "13800000003": "sending",
        "13800000004": "sending",
    }
    assert fake.actions == ["QuerySendDetails"] * len(fake.actions)  # nothing was sent
    assert after["13800000002"].due_at <= now  # due for its second attempt right away
    # Not found yet, but too recent to be sure: asked again once Aliyun's answer is final.
    young = after["13800000003"]
    assert young.lease_until == rows["13800000003"].sent_at + timedelta(seconds=300)
    # The throttled one keeps its expired lease, so the next sweep asks again.
    assert after["13800000004"].lease_until < now
    second_sweep = [q["PhoneNumber"] for q in fake.queries[queries_after_first_sweep:]]
    assert second_sweep == ["13800000004"]
