"""The warning API: follow-up workflow, roles, rules, reports and usage loading."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner
from warning_support import DAY, History, World

from keepwell.cli import app as keepwell_app
from services.kit.app import Resources
from services.kit.auth import Principal, Role
from services.kit.config import get_settings
from services.kit.db import create_sessionmaker
from services.warning import service
from services.warning.app import create_app
from services.warning.jobs import detect_day
from services.warning.models import Signal
from services.warning.schemas import RuleUpdate

M1 = "13800138001"  # M0001's customer, team T001
M2 = "13800138002"  # M0002's customer, team T001
M3 = "13800138003"  # M0003's customer, team T002


async def _three_warnings(world: World) -> dict[str, int]:
    soon = {"contract_end": DAY + timedelta(days=10)}
    await world.customer(M1, manager_id="M0001", team_id="T001", **soon)
    await world.customer(M2, manager_id="M0002", team_id="T001", **soon)
    await world.customer(M3, manager_id="M0003", team_id="T002", **soon)
    await world.detect()
    return {w.msisdn: w.id or 0 for w in await world.warnings()}


async def test_follow_up_runs_open_contact_resolved_and_rejects_invalid_steps(
    world: World, app_client: Callable[..., Any]
) -> None:
    ids = await _three_warnings(world)
    wid = ids[M1]
    async with app_client(create_app(), role="manager", user="M0001", team="T001") as client:
        early = await client.post(
            f"/warnings/{wid}/resolve",
            json={"outcome": "retained", "retention_action": "plan_change"},
        )
        assert early.status_code == 409 and early.json()["code"] == "invalid_transition"

        contact = await client.post(
            f"/warnings/{wid}/contacts",
            json={"channel": "call", "outcome": "reached", "note": "客户考虑换套餐"},
        )
        assert contact.status_code == 201
        assert (await client.get(f"/warnings/{wid}")).json()["status"] == "in_progress"

        missing = await client.post(f"/warnings/{wid}/resolve", json={"outcome": "retained"})
        assert missing.status_code == 422 and missing.json()["field"] == "retention_action"
        wrong = await client.post(
            f"/warnings/{wid}/resolve", json={"outcome": "churned", "churn_reason": "price"}
        )
        assert wrong.status_code == 422 and wrong.json()["field"] == "churn_reason"

        done = await client.post(
            f"/warnings/{wid}/resolve",
            json={"outcome": "retained", "retention_action": "bundle_renewal"},
        )
        assert done.status_code == 200
        assert done.json()["status"] == "resolved" and done.json()["resolved_by"] == "M0001"

        again = await client.post(f"/warnings/{wid}/resolve", json={"outcome": "false_alarm"})
        assert again.status_code == 409
        late = await client.post(
            f"/warnings/{wid}/contacts", json={"channel": "sms", "outcome": "delivered"}
        )
        assert late.status_code == 409

    events = {e["type"]: e["payload"] for e in await world.outbox() if e["aggregate_id"] == M1}
    assert events["warning.contact_recorded"]["contact"]["source"] == "warning"
    assert events["warning.contact_recorded"]["contact"]["channel"] == "call"
    assert events["warning.resolved"]["retention_action"] == "bundle_renewal"


async def test_a_contact_posted_again_with_its_idempotency_key_is_recorded_once(
    world: World, app_client: Callable[..., Any]
) -> None:
    wid = (await _three_warnings(world))[M1]
    contact = {"channel": "call", "outcome": "reached", "note": "客户考虑换套餐"}
    headers = {"Idempotency-Key": "app-contact-1"}
    async with app_client(create_app(), role="manager", user="M0001", team="T001") as client:
        first = await client.post(f"/warnings/{wid}/contacts", json=contact, headers=headers)
        again = await client.post(f"/warnings/{wid}/contacts", json=contact, headers=headers)
        elsewhere = await client.post(f"/warnings/{wid}/contacts", json={}, headers=headers)
    assert first.status_code == again.status_code == 201, first.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert elsewhere.status_code == 422 and elsewhere.json()["field"] == "Idempotency-Key"
    count = "SELECT count(*) FROM warning.contact"
    assert await world.run(lambda s: s.scalar(text(count))) == 1
    recorded = [e for e in await world.outbox() if e["type"] == "warning.contact_recorded"]
    assert len(recorded) == 1


async def test_a_false_alarm_may_be_closed_without_a_contact(
    world: World, app_client: Callable[..., Any]
) -> None:
    ids = await _three_warnings(world)
    async with app_client(create_app(), role="admin") as client:
        response = await client.post(
            f"/warnings/{ids[M3]}/resolve", json={"outcome": "false_alarm", "note": "合约已续"}
        )
    assert response.status_code == 200 and response.json()["outcome"] == "false_alarm"


async def test_managers_and_supervisors_see_their_teams_managers_follow_up_their_own(
    world: World, app_client: Callable[..., Any]
) -> None:
    ids = await _three_warnings(world)

    async def visible(**claims: str) -> set[str]:
        async with app_client(create_app(), **claims) as client:
            response = await client.get("/warnings")
            assert response.status_code == 200
            return {w["msisdn"] for w in response.json()}

    assert await visible(role="manager", user="M0001", team="T001") == {M1, M2}
    assert await visible(role="manager", user="M0001") == {M1}  # no team in the token
    assert await visible(role="supervisor", user="S1", team="T001") == {M1, M2}
    assert await visible(role="operator", user="ops") == {M1, M2, M3}
    async with app_client(create_app(), role="manager", user="M0001", team="T001") as client:
        colleague = await client.post(
            f"/warnings/{ids[M2]}/contacts", json={"channel": "call", "outcome": "reached"}
        )
        assert colleague.status_code == 403 and colleague.json()["code"] == "not_your_warning"
        assert (await client.get(f"/warnings/{ids[M2]}")).status_code == 200
        assert (await client.get(f"/warnings/{ids[M3]}")).status_code == 404
    async with app_client(create_app(), role="partner", user="p", scopes=["customers:read"]) as c:
        assert (await c.get("/warnings")).status_code == 403  # no warnings:read
    async with app_client(create_app(), role="partner", user="p", scopes=["warnings:read"]) as c:
        shown = (await c.get("/warnings")).json()
        # Every team's, as a partner sees them: masked, and nothing of the people.
        assert {w["id"] for w in shown} == set(ids.values())
        assert all("****" in w["msisdn"] and w["manager_id"] is None for w in shown)
        one = (await c.get(f"/warnings/{ids[M3]}")).json()
        assert one["contacts"] == [] and one["resolution_note"] == ""


async def test_retained_customer_gets_a_new_warning_only_after_the_cooling_off(
    world: World, app_client: Callable[..., Any]
) -> None:
    today = service.business_today()
    await world.customer(M1, contract_end=today + timedelta(days=25))
    await world.detect(today)
    [first] = await world.warnings(M1)
    async with app_client(create_app(), role="admin") as client:
        await client.post(
            f"/warnings/{first.id}/contacts", json={"channel": "visit", "outcome": "reached"}
        )
        resolved = await client.post(
            f"/warnings/{first.id}/resolve",
            json={"outcome": "retained", "retention_action": "prepaid_gift"},
        )
        assert resolved.status_code == 200

    await world.detect(today + timedelta(days=5))
    assert len(await world.warnings(M1)) == 1  # still cooling off (14 days)

    await world.detect(today + timedelta(days=15))
    old, new = await world.warnings(M1)
    assert old.status.value == "resolved"
    assert new.status.value == "open" and new.first_detected_on == today + timedelta(days=15)


async def test_risk_is_explained_by_its_signals(
    world: World, app_client: Callable[..., Any]
) -> None:
    await world.customer(M1, contract_end=DAY + timedelta(days=10))
    await world.usage(History(M1).set([0, 2], forwarded_to_other_network=2))
    await world.detect()

    async with app_client(create_app(), role="admin") as client:
        risk = (await client.get(f"/subscribers/{M1}/risk")).json()

    assert risk["score"] == 70 and risk["severity"] == "critical"
    assert [(c["signal"], c["weight"]) for c in risk["components"]] == [
        ("call_forwarding", 45),
        ("contract_expiry", 25),
    ]
    assert risk["components"][0]["summary"] == "近7天呼叫转移至异网号码4次"


async def test_rule_edits_make_versions_and_tier_overrides_apply(
    world: World, app_client: Callable[..., Any]
) -> None:
    await world.customer(M1, tier="diamond")
    await world.customer(M2, tier="silver")
    await world.usage(
        History(M1).set([0], balance=Decimal("30")), History(M2).set([0], balance=Decimal("30"))
    )
    async with app_client(create_app(), role="supervisor", user="S1", team="T001") as client:
        bad = await client.put("/rules/signals/low_balance", json={"params": {"max_balance": -1}})
        assert bad.status_code == 422 and bad.json()["field"] == "params.max_balance"
        unknown = await client.put(
            "/rules/signals/usage_drop", json={"params": {"drop_percent": 30}}
        )
        assert unknown.status_code == 422 and unknown.json()["field"] == "params.drop_percent"
        edited = await client.put(
            "/rules/signals/low_balance",
            json={"tier": "diamond", "params": {"max_balance": 50}, "note": "钻卡余额预警提高"},
        )
        assert edited.status_code == 200 and edited.json()["version"] == 2
        assert (await client.get("/rules/1")).json()["version"] == 1
    async with app_client(create_app(), role="manager", user="M0001") as client:
        denied = await client.put("/rules/signals/low_balance", json={"weight": 99})
        assert denied.status_code == 403

    await world.detect()

    [warning] = await world.warnings(M1)
    assert warning.signal.value == "low_balance" and warning.rule_version == 2
    assert await world.warnings(M2) == []


async def test_reports_count_open_warnings_outcomes_and_churn_reasons(
    world: World, app_client: Callable[..., Any]
) -> None:
    ids = await _three_warnings(world)
    today = service.business_today()
    async with app_client(create_app(), role="admin") as client:
        for msisdn, outcome in [
            (M1, {"outcome": "retained", "retention_action": "plan_change"}),
            (
                M2,
                {"outcome": "churned", "churn_reason": "tariff", "retention_action": "plan_change"},
            ),
        ]:
            await client.post(
                f"/warnings/{ids[msisdn]}/contacts", json={"channel": "call", "outcome": "reached"}
            )
            assert (
                await client.post(f"/warnings/{ids[msisdn]}/resolve", json=outcome)
            ).status_code == 200
        open_report = (await client.get("/reports/open")).json()
        retention = (await client.get("/reports/retention")).json()
        churn = (
            await client.get(
                "/reports/churn-reasons",
                params={"from": str(today), "to": str(today + timedelta(days=1))},
            )
        ).json()

    assert open_report["by_signal"] == [{"key": "contract_expiry", "count": 1}]
    assert open_report["by_manager"] == [{"key": "M0003", "count": 1}]
    assert retention["by_action"] == [
        {"key": "plan_change", "retained": 1, "churned": 1, "false_alarm": 0, "success_rate": 0.5}
    ]
    assert retention["by_signal"][0]["key"] == "contract_expiry"
    assert churn["reasons"] == [{"key": "tariff", "count": 1}]


async def test_usage_batch_keeps_good_rows_and_names_bad_ones(
    world: World, app_client: Callable[..., Any]
) -> None:
    good = {"msisdn": M1, "day": "2026-11-20", "outgoing_calls": 3, "minutes": 9,
            "data_mb": 100, "spend": "4.50", "balance": "80.00"}  # fmt: skip
    bad = good | {"msisdn": "12345"}
    async with app_client(create_app(), role="operator", user="feed") as client:
        response = await client.post("/usage/batch", json={"rows": [good, bad, good]})
        again = await client.post("/usage/batch", json={"rows": [good]})
    assert response.status_code == 200
    assert response.json()["accepted"] == 2
    assert response.json()["rejected"][0]["row"] == 2
    assert response.json()["rejected"][0]["field"] == "msisdn"
    assert again.json() == {"accepted": 1, "rejected": []}


def test_import_usage_reports_bad_lines_keeps_good_rows_and_is_idempotent(
    infra: Any, tmp_path: Path
) -> None:
    header = (
        "msisdn,day,outgoing_calls,minutes,data_mb,spend,balance,competitor_hotline_calls,"
        "forwarded_to_other_network,other_network_call_share,competitor_marketing_contacts"
    )
    lines = [
        header,
        f"{M1},2026-11-19,10,50,500,5.00,100.00,0,0,0.3,",
        f"{M1},2026-11-20,abc,50,500,5.00,95.00,0,0,0.3,1",
        f"{M1},2026-11-20,8,40,450,5.00,95.00,1,0,0.35,1",
    ]
    path = tmp_path / "usage.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    runner = CliRunner()

    first = runner.invoke(keepwell_app, ["import", "usage", str(path)])
    second = runner.invoke(keepwell_app, ["import", "usage", str(path)])

    assert first.exit_code == 0, first.output
    assert "line 3: outgoing_calls" in first.output
    assert "imported: 2, rejected: 1" in first.output
    assert "imported: 2, rejected: 1" in second.output

    async def stored() -> list[Any]:
        import asyncpg

        from services.kit.db import libpq_url

        conn = await asyncpg.connect(libpq_url(get_settings().database_url))
        try:
            return await conn.fetch(
                "SELECT day, outgoing_calls, competitor_marketing_contacts "
                "FROM warning.daily_usage ORDER BY day"
            )
        finally:
            await conn.close()

    rows = asyncio.run(stored())
    assert [tuple(r) for r in rows] == [(date(2026, 11, 19), 10, None), (date(2026, 11, 20), 8, 1)]


async def test_the_detection_job_runs_a_given_day(world: World) -> None:
    await world.customer(M1, contract_end=DAY + timedelta(days=3))
    resources = Resources.open("warning", get_settings())
    try:
        result = await detect_day({"resources": resources}, DAY.isoformat())
        again = await detect_day({"resources": resources}, DAY.isoformat())
    finally:
        await resources.close()
    assert (result["raised"], again["raised"], again["updated"]) == (1, 0, 0)


async def test_rebuild_customers_reloads_the_read_model_from_the_profile_service(
    world: World,
) -> None:
    from keepwell.demo import generate
    from services.kit.bulk import raw_connection
    from services.kit.testing import serve
    from services.profile import seed as profile_seed
    from services.profile.app import create_app as create_profile_app
    from services.warning.ops import rebuild_customers

    settings = get_settings()
    data = generate(customers=5, seed=11)
    async with raw_connection(settings.database_url) as conn:
        await profile_seed.load_demo(conn, data)
    first, second = list(data.customers())[:2]
    # The warning copy already has a newer version of one customer: it is kept. Another it
    # copied at profile's version before the copy kept customer ids: the rebuild fills it.
    await world.customer(first.msisdn, version=5, tier="gold")
    await world.customer(second.msisdn, version=1, tier=second.tier, manager_id=second.manager_id)

    async with serve(create_profile_app(settings)) as url:
        counts = await rebuild_customers(url)

    assert counts == {"fetched": 5, "applied": 4}
    rows = list(
        await world.run(
            lambda s: s.execute(
                text("SELECT msisdn, tier, manager_id, customer_id FROM warning.customer")
            )
        )
    )
    copied = {r.msisdn: (r.tier, r.manager_id) for r in rows}
    expected = {c.msisdn: (c.tier, c.manager_id) for c in data.customers()}
    expected[first.msisdn] = ("gold", copied[first.msisdn][1])
    assert copied == expected
    ids = await world.run(lambda s: s.execute(text("SELECT msisdn, id FROM profile.customer")))
    by_number = {r.msisdn: r.id for r in ids}
    assert {r.msisdn: r.customer_id for r in rows if r.msisdn != first.msisdn} == {
        n: i for n, i in by_number.items() if n != first.msisdn
    }


async def test_asking_for_a_detection_run_queues_one_job_per_day(
    app_client: Callable[..., Any], redis: Any
) -> None:
    async with app_client(create_app(), role="operator", user="ops") as client:
        first = await client.post("/detection/runs", params={"day": "2026-11-20"})
        second = await client.post("/detection/runs", params={"day": "2026-11-20"})
    async with app_client(create_app(), role="manager", user="M0001") as denied_client:
        denied = await denied_client.post("/detection/runs")

    assert first.status_code == 202 and first.json()["queued"] is True
    assert second.json() == {
        "day": "2026-11-20",
        "job_id": "detect_day:2026-11-20",
        "queued": False,
    }
    assert await redis.zcard("keepwell:warning") == 1
    assert denied.status_code == 403


async def test_two_rule_edits_at_once_both_survive(engine: AsyncEngine) -> None:
    """The second edit reads the rule set only once the first has committed its version."""
    sessions = create_sessionmaker(engine)
    editor = Principal(user_id="S1", role=Role.supervisor, team_id="T001")
    async with sessions() as session, session.begin():
        await service.current_rules(session)  # version 1, the defaults

    async def edit(signal: Signal, weight: int) -> None:
        async with sessions() as session, session.begin():
            await service.update_rule(session, signal, RuleUpdate(weight=weight), editor)

    async def second_waits_on_the_lock() -> bool:
        async with engine.connect() as probe:
            return bool(
                await probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
                    )
                )
            )

    async with sessions() as first, first.begin():
        await service.update_rule(first, Signal.low_balance, RuleUpdate(weight=11), editor)
        second = asyncio.create_task(edit(Signal.zero_calls, 22))
        for _ in range(200):
            if await second_waits_on_the_lock():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the second edit never waited for the first")
    await second

    async with sessions() as session:
        current = await service.current_rules(session)
    weights = {(r.signal, r.tier): r.weight for r in service.rules_of(current)}
    assert current.version == 3
    assert (weights[(Signal.low_balance, None)], weights[(Signal.zero_calls, None)]) == (11, 22)


async def test_a_zero_baseline_is_refused_before_it_can_break_the_nightly_run(
    app_client: Callable[..., Any],
) -> None:
    async with app_client(create_app(), role="supervisor", user="S1", team="T001") as client:
        zero = await client.put(
            "/rules/signals/usage_drop", json={"params": {"min_baseline_minutes": 0}}
        )
    assert zero.status_code == 422 and zero.json()["field"] == "params.min_baseline_minutes"
