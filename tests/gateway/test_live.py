"""Live updates: GraphQL subscriptions over graphql-transport-ws, fed by the services' events.

Two gateways (each served over real HTTP, sharing PostgreSQL and Redis, as two processes
behind a load balancer) with the four services: an event is delivered by a relay to one
gateway only, and every client, on either gateway, gets it once, if it is theirs to see.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI

from gateway.app import create_app as create_gateway
from gateway.channels import manage
from services.kit import clock
from services.kit.auth import issue_token, relay_principal
from services.kit.config import Settings, get_settings
from services.kit.db import session_scope
from services.kit.testing import serve
from tests.gateway.conftest import GATEWAY, bearer, deliver_events, fetch
from tests.gateway.robots import Robots

WAIT = 20.0
PROTOCOL = "graphql-transport-ws"

WARNINGS = """subscription ($min: WarningSeverity!) {
  warningRaised(minSeverity: $min) {
    eventId warning { id msisdn signal severity managerId customer { msisdn } }
  }
}"""
BREACHES = """subscription {
  slaBreached { eventId metric complaint { id number teamId } }
}"""


@dataclass
class Gateway:
    app: FastAPI
    url: str

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    def listeners(self) -> int:
        return len(self.app.state.hub.listeners)


@pytest.fixture
async def gateways(
    demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Gateway, Gateway, Settings]]:
    """Two gateways; the services' relays deliver to the first, as KEEPWELL_GATEWAY_URL
    says where the gateway is."""
    async with AsyncExitStack() as stack:
        running = []
        for _ in range(2):
            app = create_gateway(demo, GATEWAY)
            running.append(Gateway(app, await stack.enter_async_context(serve(app))))
        monkeypatch.setenv("KEEPWELL_GATEWAY_URL", running[0].url)
        get_settings.cache_clear()
        try:
            yield running[0], running[1], demo.model_copy(update={"gateway_url": running[0].url})
        finally:
            get_settings.cache_clear()


class Client:
    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ids = 0

    async def subscribe(self, query: str, **variables: Any) -> str:
        self.ids += 1
        op = str(self.ids)
        payload = {"query": query, "variables": variables}
        await self.socket.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))
        return op

    async def next(self) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), WAIT))
            if message["type"] != "ping":
                return dict(message)


@asynccontextmanager
async def connected(gateway: Gateway, payload: dict[str, Any] | None) -> AsyncIterator[Client]:
    async with websockets.connect(gateway.ws, subprotocols=[PROTOCOL]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
        ack = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
        assert ack["type"] == "connection_ack", ack
        yield Client(socket)


async def until(condition: Any) -> None:
    """Until ``condition()`` holds (the hubs' state, read in this process), every 20 ms."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the gateways")
        await asyncio.sleep(0.02)


async def quiet_customer(settings: Settings) -> dict[str, Any]:
    """A customer with a manager and no complaint warning yet, so a complaint raises one."""
    rows = await fetch(
        settings.database_url,
        "SELECT c.msisdn, c.manager_id, m.team_id FROM profile.customer c "
        "JOIN profile.manager m ON m.id = c.manager_id WHERE c.msisdn NOT IN "
        "(SELECT msisdn FROM warning.warning WHERE signal = 'complaint') ORDER BY c.msisdn",
    )
    return dict(rows[0])


async def open_complaint(gateway: Gateway, msisdn: str) -> str:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        response = await http.post(
            "/graphql",
            headers=bearer("operator"),
            json={
                "query": """mutation ($m: String!) {
                  openComplaint(complaint: {msisdn: $m, channel: "hotline", category: "billing",
                                            description: "未订购的增值业务每月扣费"}) {
                    __typename ... on Complaint { id }
                  }
                }""",
                "variables": {"m": msisdn},
            },
        )
    opened = response.json()["data"]["openComplaint"]
    assert opened["__typename"] == "Complaint", opened
    return str(opened["id"])


async def test_a_warning_raised_in_the_system_reaches_each_client_on_either_gateway_once(
    gateways: tuple[Gateway, Gateway, Settings],
) -> None:
    first, second, settings = gateways
    customer = await quiet_customer(settings)
    manager, team = customer["manager_id"], customer["team_id"]
    async with (
        connected(first, bearer("manager", manager, team)) as mine_on_first,
        connected(second, bearer("supervisor", "sup", team)) as team_on_second,
        connected(second, bearer("manager", "another-manager", team)) as not_mine,
    ):
        for client in (mine_on_first, team_on_second, not_mine):
            await client.subscribe(WARNINGS, min="low")
        await until(lambda: first.listeners() == 1 and second.listeners() == 2)

        # A complaint in the running system: complaint's relay takes it to warning, which
        # raises a complaint warning; warning's relay delivers that to the first gateway.
        await open_complaint(first, customer["msisdn"])
        await deliver_events(settings)
        await deliver_events(settings)

        got = [await c.next() for c in (mine_on_first, team_on_second)]
        for message in got:
            assert message["type"] == "next", message
            raised = message["payload"]["data"]["warningRaised"]
            assert raised["warning"]["msisdn"] == customer["msisdn"]
            assert raised["warning"]["signal"] == "complaint"
            assert raised["warning"]["customer"]["msisdn"] == customer["msisdn"]
        event_id = got[0]["payload"]["data"]["warningRaised"]["eventId"]
        assert got[1]["payload"]["data"]["warningRaised"]["eventId"] == event_id

        # The other manager's subscription had the event offered on the second gateway
        # at the same moment as the supervisor's, and let it by.
        assert all(listener.queue.empty() for listener in second.app.state.hub.listeners)

        # The relay sending it again, to either gateway, changes nothing: the gateways
        # share one inbox, and publish only what it took for the first time. Once both
        # hubs have passed a later event on, they are seen to have had nothing else.
        received = [g.app.state.hub.received for g in (first, second)]
        envelope = await _envelope(settings, event_id)
        for gateway in (first, second):
            results = await _post_events(gateway, settings, [envelope])
            assert results == [{"id": event_id, "status": "duplicate", "error": None}]
        marker = _breach(envelope, team)
        assert (await _post_events(second, settings, [marker]))[0]["status"] == "processed"
        await until(lambda: all(g.app.state.hub.seen(marker["id"]) for g in (first, second)))
        assert [g.app.state.hub.received for g in (first, second)] == [n + 1 for n in received]
        assert all(listener.queue.empty() for listener in second.app.state.hub.listeners)


async def _envelope(settings: Settings, event_id: str) -> dict[str, Any]:
    row = (
        await fetch(
            settings.database_url,
            "SELECT id, seq, type, version, aggregate_id, occurred_at, payload "
            "FROM warning.outbox WHERE id = $1",
            uuid.UUID(event_id),
        )
    )[0]
    return {
        "id": str(row["id"]),
        "seq": row["seq"],
        "type": row["type"],
        "version": row["version"],
        "producer": "warning",
        "aggregate_id": row["aggregate_id"],
        "occurred_at": row["occurred_at"].isoformat(),
        "payload": json.loads(row["payload"])
        if isinstance(row["payload"], str)
        else row["payload"],
    }


def _breach(like: dict[str, Any], team: str, complaint_id: str = "1") -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "seq": 1,
        "type": "complaint.sla_breached",
        "version": 1,
        "producer": "complaint",
        "aggregate_id": complaint_id,
        "occurred_at": clock.now().isoformat(),
        "payload": {
            "complaint_id": complaint_id,
            "number": "TS0",
            "msisdn": like["payload"]["msisdn"],
            "metric": "first_response",
            "due_at": clock.now().isoformat(),
            "handler_id": None,
            "team_id": team,
        },
    }


async def _post_events(
    gateway: Gateway, settings: Settings, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    token = issue_token(relay_principal(events[0]["producer"]), settings)
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        response = await http.post(
            "/events", json={"events": events}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def closed_with(gateway: Gateway, payload: dict[str, Any]) -> tuple[int, str]:
    async with websockets.connect(gateway.ws, subprotocols=[PROTOCOL]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), WAIT)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_connection_is_admitted_only_with_a_staff_token_and_within_its_limits(
    gateways: tuple[Gateway, Gateway, Settings],
) -> None:
    first, _, _ = gateways
    assert (await closed_with(first, {}))[0] == 4403
    assert (await closed_with(first, {"Authorization": "Bearer not-a-token"}))[0] == 4403
    assert (await closed_with(first, bearer("partner", "partner-1")))[0] == 4403
    per_user = GATEWAY.live_max_connections_per_user
    async with AsyncExitStack() as stack:
        for _ in range(per_user):
            await stack.enter_async_context(connected(first, bearer("manager", "m-busy")))
        assert (await closed_with(first, bearer("manager", "m-busy")))[0] == 4403
        # Someone else still gets in; and once one closes, the same person again.
        async with connected(first, bearer("manager", "m-other")):
            pass
    async with connected(first, bearer("manager", "m-busy")):
        pass


async def test_a_connection_holds_a_bounded_number_of_subscriptions(
    gateways: tuple[Gateway, Gateway, Settings],
) -> None:
    first, _, _ = gateways
    most = GATEWAY.live_max_subscriptions
    async with connected(first, bearer("supervisor", "sup", "t1")) as client:
        for _ in range(most):
            await client.subscribe(BREACHES)
        await until(lambda: first.listeners() == most)
        refused = await client.subscribe(BREACHES)
        message = await client.next()
        assert message["id"] == refused
        errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
        assert errors[0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        assert first.listeners() == most


async def test_a_subscription_over_http_is_refused(
    gateways: tuple[Gateway, Gateway, Settings],
) -> None:
    first, _, _ = gateways
    async with httpx.AsyncClient(base_url=first.url) as http:
        response = await http.post(
            "/graphql", json={"query": BREACHES}, headers=bearer("supervisor", "sup", "t1")
        )
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "SUBSCRIPTION_NEEDS_WEBSOCKET"
    assert first.listeners() == 0


async def test_only_the_relay_delivers_events_to_the_gateway(
    gateways: tuple[Gateway, Gateway, Settings],
) -> None:
    first, _, settings = gateways
    async with httpx.AsyncClient(base_url=first.url) as http:
        person = await http.post("/events", json={"events": []}, headers=bearer("admin"))
        nobody = await http.post("/events", json={"events": []})
    assert person.status_code in (401, 403)
    assert nobody.status_code == 401
    rows = await fetch(settings.database_url, "SELECT count(*) AS n FROM gateway.inbox")
    assert rows[0]["n"] == 0


async def test_an_sla_breach_reaches_the_team_and_its_group_robot_and_not_another_team(
    gateways: tuple[Gateway, Gateway, Settings],
) -> None:
    first, second, settings = gateways
    customer = await quiet_customer(settings)
    team = customer["team_id"]
    complaint_id = await open_complaint(first, customer["msisdn"])
    breach = _breach({"payload": {"msisdn": customer["msisdn"]}}, team, complaint_id)
    robots = Robots()
    async with serve(robots.app()) as robot_url:
        async with session_scope(first.app.state.clients.sessionmaker) as session:
            await manage.add(
                session,
                team_id=team,
                kind="wecom",
                name="值班群",
                url=f"{robot_url}/cgi-bin/webhook/send?key=k1",
                secret=None,
                created_by="test",
                production=False,
            )
        async with (
            connected(second, bearer("supervisor", "sup", team)) as ours,
            connected(second, bearer("supervisor", "sup-2", "another-team")) as theirs,
        ):
            await ours.subscribe(BREACHES)
            await theirs.subscribe(BREACHES)
            await until(lambda: second.listeners() == 2)
            assert (await _post_events(first, settings, [breach]))[0]["status"] == "processed"
            message = await ours.next()
            got = message["payload"]["data"]["slaBreached"]
            assert got["eventId"] == breach["id"]
            assert got["metric"] == "first_response"
            assert got["complaint"]["id"] == complaint_id
            assert got["complaint"]["teamId"] == team
            assert all(listener.queue.empty() for listener in second.app.state.hub.listeners)
            # The team's group robot is told too, from the same transaction, number masked.
            await robots.wait_for(1)
        (sent,) = robots.bodies("wecom:k1")
        content = sent["markdown"]["content"]
        assert "投诉超时" in content and "首次响应" in content
        assert customer["msisdn"] not in content and customer["msisdn"][-4:] in content


async def test_campaign_progress_sends_the_campaign_as_it_stands(
    gateways: tuple[Gateway, Gateway, Settings],
) -> None:
    first, _, settings = gateways
    rows = await fetch(
        settings.database_url, "SELECT id::text AS id, status FROM care.campaign LIMIT 1"
    )
    async with connected(first, bearer("operator", "op")) as client:
        await client.subscribe(
            "subscription ($id: ID!) {"
            " campaignProgress(id: $id) { id status stats { recipients } } }",
            id=rows[0]["id"],
        )
        message = await client.next()
        progress = message["payload"]["data"]["campaignProgress"]
        assert progress["id"] == rows[0]["id"]
        assert progress["status"] == rows[0]["status"]
        assert progress["stats"]["recipients"] >= 0
        if rows[0]["status"] in ("completed", "cancelled"):
            assert (await client.next())["type"] == "complete"
