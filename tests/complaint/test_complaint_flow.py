"""Tickets through the API: creation, the enforced 4-step flow, its refusals, repeat
detection, idempotent creation, access scoping and bad input naming the field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from complaint_support import CUSTOMER, DIAMOND, OTHER_TEAM, Api, complaint_body, outbox, scalar
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import clock

MANAGER = {"role": "manager", "user": "m1", "team": "t1"}


async def create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/complaints", json=complaint_body(**overrides))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def soon() -> str:
    return (clock.today() + timedelta(days=3)).isoformat()


STEPS: dict[str, tuple[str, dict[str, Any]]] = {
    "acknowledge": ("acknowledge", {"emotion": "客户很生气，认为多次反映无人理会；先致歉并倾听"}),
    "clarify": ("clarify", {"findings": "基站故障，已派单", "responsibility": "ours"}),
    "agree": (
        "agree",
        {
            "agreed": ["三天内修复基站", "赠送10G流量"],
            "disagreements": [
                {"point": "客户要求免一个月月租", "resolution": "改为赠送流量，客户接受"}
            ],
            "actions": [{"description": "修复基站", "owner": "net-ops", "due_on": "2030-01-01"}],
        },
    ),
}


async def step(
    client: httpx.AsyncClient, ticket: dict[str, Any], action: str, **body: Any
) -> httpx.Response:
    payload = {"version": ticket["version"], **body}
    return await client.post(f"/complaints/{ticket['id']}/{action}", json=payload)


async def walk(client: httpx.AsyncClient, ticket: dict[str, Any], to: str) -> dict[str, Any]:
    """Take a new ticket through the flow up to state ``to``."""
    order = ["new", "acknowledged", "facts_clarified", "solution_agreed", "tracking", "closed"]
    for state in order[1 : order.index(to) + 1]:
        if state == "acknowledged":
            r = await step(client, ticket, "acknowledge", **STEPS["acknowledge"][1])
        elif state == "facts_clarified":
            r = await step(client, ticket, "clarify", **STEPS["clarify"][1])
        elif state == "solution_agreed":
            r = await step(client, ticket, "agree", **STEPS["agree"][1])
        elif state == "tracking":
            detail = (await client.get(f"/complaints/{ticket['id']}")).json()
            updates = [
                {"action_id": a["id"], "done": True, "note": "已完成"} for a in detail["actions"]
            ]
            r = await step(client, ticket, "track", actions=updates)
        else:
            r = await step(client, ticket, "close", satisfaction=5)
        assert r.status_code == 200, r.text
        ticket = r.json()
    return ticket


async def test_a_complaint_defaults_to_the_customers_manager_and_starts_its_clocks(
    api: Api, engine: AsyncEngine
) -> None:
    async with api(**MANAGER) as client:
        ticket = await create(client)
        assert ticket["handler_id"] == "m1" and ticket["team_id"] == "t1"
        assert ticket["state"] == "new" and ticket["allowed_next"] == ["acknowledge", "wait"]
        assert ticket["number"].startswith("TS")
        sla = (await client.get(f"/complaints/{ticket['id']}/sla")).json()
    states = {m["metric"]: m["state"] for m in sla["metrics"]}
    assert states["first_response"] == "running" and states["resolution"] == "running"
    assert states["facts_clarified"] == "waiting"
    assert sla["policy_name"].startswith("金卡")  # a gold customer
    (opened,) = await outbox(engine, "complaint.opened")
    assert opened.payload["repeat_count"] == 1 and opened.payload["msisdn"] == CUSTOMER


async def test_the_whole_flow_records_each_step_and_only_customer_facing_contacts(
    api: Api, engine: AsyncEngine
) -> None:
    async with api(**MANAGER) as client:
        ticket = await walk(client, await create(client), "closed")
        assert ticket["state"] == "closed" and ticket["satisfaction"] == 5
        detail = (await client.get(f"/complaints/{ticket['id']}")).json()
    assert [s["step"] for s in detail["steps"]] == [
        "opened",
        "acknowledged",
        "facts_clarified",
        "solution_agreed",
        "tracking",
        "closed",
    ]
    assert all(s["by"] == "m1" for s in detail["steps"])
    assert detail["steps"][3]["data"]["disagreements"][0]["resolution"]
    assert {m["metric"]: m["state"] for m in detail["sla"]["metrics"]} == {
        "first_response": "met",
        "facts_clarified": "met",
        "solution_agreed": "met",
        "tracking": "met",
        "resolution": "met",
    }
    steps = [r.payload["step"] for r in await outbox(engine, "complaint.step_recorded")]
    assert steps == ["acknowledged", "solution_agreed", "closed"]
    contact = (await outbox(engine, "complaint.step_recorded"))[0].payload["contact"]
    assert contact["msisdn"] == CUSTOMER and contact["source"] == "complaint"
    (closed,) = await outbox(engine, "complaint.closed")
    assert closed.payload["satisfaction"] == 5


ALL_ACTIONS = ["acknowledge", "clarify", "agree", "track", "close", "wait", "resume", "reopen"]
ALLOWED = {
    "new": {"acknowledge", "wait"},
    "acknowledged": {"clarify", "wait"},
    "facts_clarified": {"agree", "wait"},
    "solution_agreed": {"track", "wait"},
    "tracking": {"track", "close", "wait"},
    "closed": {"reopen", "satisfaction"},
}
BODIES: dict[str, dict[str, Any]] = {
    "acknowledge": STEPS["acknowledge"][1],
    "clarify": STEPS["clarify"][1],
    "agree": STEPS["agree"][1],
    "track": {"actions": [{"action_id": 1, "done": True}]},
    "close": {"satisfaction": 4},
    "wait": {},
    "resume": {},
    "reopen": {},
}


@pytest.mark.parametrize("state", list(ALLOWED))
async def test_every_refused_transition_names_the_state_and_the_allowed_steps(
    api: Api, state: str
) -> None:
    async with api(**MANAGER) as client:
        ticket = await walk(client, await create(client), state)
        for action in ALL_ACTIONS:
            if action in ALLOWED[state]:
                continue
            r = await step(client, ticket, action, **BODIES[action])
            assert r.status_code == 409, (state, action, r.text)
            body = r.json()
            assert body["code"] == "invalid_transition"
            assert f"state: {state}" in body["message"]
            assert {d["message"] for d in body["details"] if d["code"] == "allowed"} == ALLOWED[
                state
            ]
        after = (await client.get(f"/complaints/{ticket['id']}")).json()
        assert after["version"] == ticket["version"] and after["state"] == state


async def test_waiting_for_the_customer_pauses_the_clocks_and_resumes_where_it_was(
    api: Api,
) -> None:
    async with api(**MANAGER) as client:
        ticket = await walk(client, await create(client), "acknowledged")
        r = await step(client, ticket, "wait", notes="客户出差，约下周再谈")
        assert r.status_code == 200 and r.json()["state"] == "waiting_customer"
        assert r.json()["allowed_next"] == ["resume"]
        sla = (await client.get(f"/complaints/{ticket['id']}/sla")).json()
        running = {m["metric"]: m for m in sla["metrics"]}
        assert running["facts_clarified"]["state"] == "paused"
        assert running["facts_clarified"]["due_at"] is None
        assert running["resolution"]["state"] == "paused"
        r = await step(client, r.json(), "resume")
        assert r.status_code == 200 and r.json()["state"] == "acknowledged"
        sla = (await client.get(f"/complaints/{ticket['id']}/sla")).json()
        assert {m["metric"]: m["state"] for m in sla["metrics"]}["facts_clarified"] == "running"


async def test_a_close_with_open_actions_is_refused(api: Api) -> None:
    async with api(**MANAGER) as client:
        ticket = await walk(client, await create(client), "solution_agreed")
        detail = (await client.get(f"/complaints/{ticket['id']}")).json()
        action_id = detail["actions"][0]["id"]
        r = await step(client, ticket, "track", actions=[{"action_id": action_id, "done": False}])
        assert r.status_code == 200 and r.json()["state"] == "tracking"
        r = await step(client, r.json(), "close", satisfaction=4)
        assert r.status_code == 409 and "open actions" in r.json()["message"]


async def test_a_stale_version_is_refused(api: Api) -> None:
    async with api(**MANAGER) as client:
        ticket = await create(client)
        first = await step(client, ticket, "acknowledge", **STEPS["acknowledge"][1])
        assert first.status_code == 200
        again = await step(client, ticket, "wait")  # version 1 read before the acknowledge
        assert again.status_code == 409 and again.json()["code"] == "stale_version"
        assert again.json()["field"] == "version"


async def test_reopen_resumes_the_flow_at_facts_clarified(api: Api) -> None:
    async with api(**MANAGER) as client:
        ticket = await walk(client, await create(client), "closed")
        r = await step(client, ticket, "reopen", notes="客户来电：问题复现")
        assert r.status_code == 200, r.text
        reopened = r.json()
        assert reopened["state"] == "facts_clarified" and reopened["reopened_count"] == 1
        assert reopened["closed_at"] is None
        sla = (await client.get(f"/complaints/{ticket['id']}/sla")).json()
        states = {m["metric"]: m["state"] for m in sla["metrics"]}
        assert states["resolution"] == "running" and states["solution_agreed"] == "running"
        assert states["first_response"] == "met"
        # ... and goes through to a close again.
        again = await walk_from_facts(client, reopened)
        assert again["state"] == "closed"


async def walk_from_facts(client: httpx.AsyncClient, ticket: dict[str, Any]) -> dict[str, Any]:
    r = await step(client, ticket, "agree", **STEPS["agree"][1])
    detail = (await client.get(f"/complaints/{ticket['id']}")).json()
    updates = [{"action_id": a["id"], "done": True} for a in detail["actions"]]
    r = await step(client, r.json(), "track", actions=updates)
    r = await step(client, r.json(), "close", satisfaction=4)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def test_repeat_complaints_link_raise_severity_and_count_90_days(
    api: Api, engine: AsyncEngine
) -> None:
    async with api(**MANAGER) as client:
        first = await create(client)
        second = await create(client)
        third = await create(client, category="billing")
        fourth = await create(client, severity="critical")
    assert not first["is_repeat"] and first["severity"] == "normal"
    assert second["is_repeat"] and second["repeat_of_id"] == first["id"]
    assert second["severity"] == "urgent"
    assert not third["is_repeat"] and third["severity"] == "normal"
    assert fourth["is_repeat"] and fourth["severity"] == "critical"  # capped
    counts = [r.payload["repeat_count"] for r in await outbox(engine, "complaint.opened")]
    assert counts == [1, 2, 3, 4]


async def test_a_regulator_complaint_is_at_least_urgent_with_tighter_targets(api: Api) -> None:
    async with api(**MANAGER) as client:
        ticket = await create(client, channel="regulator")
        sla = (await client.get(f"/complaints/{ticket['id']}/sla")).json()
    assert ticket["severity"] == "urgent"
    first = {m["metric"]: m for m in sla["metrics"]}["first_response"]
    assert first["target_minutes"] == 120 and first["business_hours"]


async def test_a_complaint_posted_again_with_its_idempotency_key_is_not_opened_twice(
    api: Api, engine: AsyncEngine
) -> None:
    async with api(**MANAGER) as client:
        headers = {"Idempotency-Key": "retry-123"}
        first = await client.post("/complaints", json=complaint_body(), headers=headers)
        second = await client.post("/complaints", json=complaint_body(), headers=headers)
        third = await create(client)
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert third["repeat_of_id"] == first.json()["id"]  # the retry counted as no repeat
    assert [r.payload["repeat_count"] for r in await outbox(engine, "complaint.opened")] == [1, 2]
    assert await scalar(engine, "SELECT count(*) FROM complaint.ticket") == 2


async def test_managers_read_their_teams_tickets_and_change_only_their_own(api: Api) -> None:
    async with api(**MANAGER) as client:
        mine = await create(client)
    async with api("manager", user="m2", team="t1") as colleague:
        assert (await colleague.get(f"/complaints/{mine['id']}")).status_code == 200
        r = await step(colleague, mine, "acknowledge", **STEPS["acknowledge"][1])
        assert r.status_code == 403 and r.json()["code"] == "not_your_complaint"
    async with api("supervisor", user="sup-1", team="t1") as supervisor:
        r = await step(supervisor, mine, "acknowledge", **STEPS["acknowledge"][1])
        assert r.status_code == 200
    async with api("supervisor", user="sup-2", team="t2") as stranger:
        assert (await stranger.get(f"/complaints/{mine['id']}")).status_code == 404
        assert (await stranger.get("/complaints")).json()["items"] == []
    async with api("partner", user="p1") as partner:
        assert (await partner.get("/complaints")).status_code == 403
        assert (await partner.post("/complaints", json=complaint_body())).status_code == 403
    async with api("manager", user="m1", team="t1") as client:
        r = await client.post("/complaints", json=complaint_body(OTHER_TEAM))
        assert r.status_code == 403 and r.json()["field"] == "msisdn"
    async with api("operator", user="op") as operator:
        assert len((await operator.get("/complaints")).json()["items"]) == 1


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"category": "weather"}, "category"),
        ({"msisdn": "13700000000"}, "msisdn"),
        ({"msisdn": "12345"}, "msisdn"),
        ({"channel": "pigeon"}, "channel"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"needs": ["a_pony"]}, "needs.0"),
        (
            {"attachments": [{"ref": "s3://b/k", "size": -1, "content_type": "image/png"}]},
            "attachments.0.size",
        ),
    ],
)
async def test_bad_input_on_create_names_the_field_and_changes_nothing(
    api: Api, engine: AsyncEngine, override: dict[str, Any], field: str
) -> None:
    async with api(**MANAGER) as client:
        r = await client.post("/complaints", json=complaint_body(**override))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert await scalar(engine, "SELECT count(*) FROM complaint.ticket") == 0
    assert await scalar(engine, "SELECT count(*) FROM complaint.outbox") == 0


@pytest.mark.parametrize("satisfaction", [0, 6])
async def test_a_satisfaction_outside_1_to_5_is_refused(api: Api, satisfaction: int) -> None:
    async with api(**MANAGER) as client:
        ticket = await walk(client, await create(client), "tracking")
        r = await step(client, ticket, "close", satisfaction=satisfaction)
        assert r.status_code == 422 and r.json()["field"] == "satisfaction"
        unhappy = await step(client, ticket, "close", satisfaction=2)
        assert unhappy.status_code == 422 and "reason" in unhappy.json()["message"]
        after = (await client.get(f"/complaints/{ticket['id']}")).json()
        assert after["state"] == "tracking" and after["version"] == ticket["version"]


async def test_an_unknown_action_id_is_refused_and_changes_nothing(api: Api) -> None:
    async with api(**MANAGER) as client:
        ticket = await walk(client, await create(client), "solution_agreed")
        detail = (await client.get(f"/complaints/{ticket['id']}")).json()
        updates = [
            {"action_id": detail["actions"][0]["id"], "done": True},
            {"action_id": 99999, "done": True},
        ]
        r = await step(client, ticket, "track", actions=updates)
        assert r.status_code == 422 and r.json()["field"] == "actions.1.action_id"
        after = (await client.get(f"/complaints/{ticket['id']}")).json()
        assert after["state"] == "solution_agreed" and not after["actions"][0]["done"]


async def test_lists_filter_and_page_with_a_cursor_and_my_queue_is_nearest_due_first(
    api: Api,
) -> None:
    async with api(**MANAGER) as client:
        normal = await create(client)
        regulator = await create(client, channel="regulator", category="billing")
        diamond = await create(client, msisdn=DIAMOND, category="tariff")
        page = (await client.get("/complaints", params={"limit": 2})).json()
        assert [t["id"] for t in page["items"]] == [diamond["id"], regulator["id"]]
        rest = (await client.get("/complaints", params={"cursor": page["next_cursor"]})).json()
        assert [t["id"] for t in rest["items"]] == [normal["id"]] and rest["next_cursor"] is None
        billing = (await client.get("/complaints", params={"category": "billing"})).json()
        assert [t["id"] for t in billing["items"]] == [regulator["id"]]
        urgent = (await client.get("/complaints", params={"severity": "urgent"})).json()
        assert [t["id"] for t in urgent["items"]] == [regulator["id"]]
        assert (await client.get("/complaints", params={"breached": True})).json()["items"] == []
        queue = (await client.get("/complaints/queue")).json()["items"]
        dues = [t["next_due_at"] for t in queue]
        assert dues == sorted(dues) and queue[0]["id"] == regulator["id"]
        r = await client.get("/complaints", params={"cursor": "!!"})
        assert r.status_code == 422 and r.json()["field"] == "cursor"


@pytest.mark.parametrize(
    "state", ["new", "acknowledged", "facts_clarified", "solution_agreed", "tracking"]
)
async def test_every_open_state_can_wait_for_the_customer_and_resume_there(
    api: Api, state: str
) -> None:
    async with api(**MANAGER) as client:
        ticket = await walk(client, await create(client), state)
        waiting = await step(client, ticket, "wait")
        assert waiting.status_code == 200 and waiting.json()["state"] == "waiting_customer"
        assert waiting.json()["resume_state"] == state
        back = await step(client, waiting.json(), "resume")
        assert back.status_code == 200 and back.json()["state"] == state


async def test_tracking_can_be_recorded_again_and_a_satisfaction_answer_closes_the_loop(
    api: Api, engine: AsyncEngine
) -> None:
    async with api(**MANAGER) as client:
        ticket = await walk(client, await create(client), "tracking")
        detail = (await client.get(f"/complaints/{ticket['id']}")).json()
        again = await step(
            client, ticket, "track",
            actions=[{"action_id": detail["actions"][0]["id"], "done": True, "note": "复查正常"}],
        )  # fmt: skip
        assert again.status_code == 200 and again.json()["state"] == "tracking"
        closed = await step(client, again.json(), "close")  # no satisfaction yet
        assert closed.status_code == 200 and closed.json()["satisfaction"] is None
        answer = await client.post(
            f"/complaints/{ticket['id']}/satisfaction", json={"satisfaction": 2}
        )
        assert answer.status_code == 422 and "reason" in answer.json()["message"]
        answer = await client.post(
            f"/complaints/{ticket['id']}/satisfaction",
            json={"satisfaction": 2, "reason": "处理太慢"},
        )
        assert answer.status_code == 200 and answer.json()["satisfaction"] == 2
    steps = [r.payload for r in await outbox(engine, "complaint.step_recorded")]
    assert [s["step"] for s in steps] == [
        "acknowledged",
        "solution_agreed",
        "closed",
        "satisfaction",
    ]
    assert steps[-1]["contact"]["direction"] == "inbound"
