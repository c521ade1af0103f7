"""A complaint in the running system: its events reach warning (a complaint warning) and
profile (the contact log), through outbox, relay and consumers, each its own process; the
warning it raises reaches a subscriber on each of two gateway processes once."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from test_keepwell_run import (
    READY_TIMEOUT,
    stop_and_check_nothing_left,
    system,  # noqa: F401  (the fixture)
    system_env,
    wait_for_health,
)
from websockets.sync.client import ClientConnection, connect

from services.kit.auth import Principal, Role, issue_token
from services.kit.config import Settings
from services.kit.db import libpq_url
from services.kit.embedded import free_port
from services.kit.testing import Infra, create_scratch_database, drop_database

pytestmark = pytest.mark.e2e


def poll(database: str, sql: str, *args: Any) -> Any:
    async def once() -> Any:
        conn = await asyncpg.connect(libpq_url(database))
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    deadline = time.monotonic() + READY_TIMEOUT
    found = asyncio.run(once())
    while not found and time.monotonic() < deadline:
        time.sleep(0.25)
        found = asyncio.run(once())
    return found


def test_complaint_events_reach_warning_and_profile(
    infra: Infra,
    tmp_path: Path,
    system: object,  # noqa: F811
) -> None:
    database = asyncio.run(create_scratch_database(infra.database_url, "kw_e2e"))
    try:
        env = system_env(tmp_path, DATABASE_URL=database, REDIS_URL=infra.redis_url)
        process, gateway = system(env)  # type: ignore[operator]
        wait_for_health(gateway, process)
        # Profile's customer events fill the complaint service's customer copy.
        assert poll(database, "SELECT count(*) >= 40 FROM complaint.customer")
        msisdn = poll(
            database,
            "SELECT msisdn FROM complaint.customer WHERE msisdn NOT IN "
            "(SELECT msisdn FROM complaint.ticket) ORDER BY msisdn LIMIT 1",
        )
        token = issue_token(Principal(user_id="e2e-operator", role=Role.operator), Settings())
        url = f"http://127.0.0.1:{env['KEEPWELL_COMPLAINT_PORT']}"
        # A second gateway process beside the one `keepwell run` started (the services
        # deliver to that one), and an operator subscribed to warnings on each.
        other = {**env, "KEEPWELL_GATEWAY_PORT": str(free_port())}
        second = f"http://127.0.0.1:{other['KEEPWELL_GATEWAY_PORT']}"
        with gateway_process(other) as extra, ExitStack() as sockets:
            wait_until_up(second, extra)
            person = gateway_token(tmp_path, env)
            subscribers = [
                sockets.enter_context(subscribed(g, person, WARNINGS)) for g in (gateway, second)
            ]
            opened = open_ticket(url, token, msisdn)
            for socket in subscribers:
                assert next_warning(socket)["msisdn"] == msisdn
            # Once warning's delivery to the gateway is recorded, nothing can send that event
            # again; the next update each subscriber gets is the next warning, not a copy.
            assert poll(
                database,
                "SELECT bool_and(d.status = 'delivered') FROM warning.delivery d "
                "JOIN warning.outbox o ON o.seq = d.event_seq WHERE d.subscriber = "
                "'service:gateway' AND o.payload->>'msisdn' = $1",
                msisdn,
            )
            later = poll(
                database,
                "SELECT msisdn FROM complaint.customer WHERE msisdn NOT IN "
                "(SELECT msisdn FROM complaint.ticket) AND msisdn <> $1 ORDER BY msisdn LIMIT 1",
                msisdn,
            )
            open_ticket(url, token, later)
            for socket in subscribers:
                assert next_warning(socket)["msisdn"] == later
        ticket = opened
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            acked = client.post(
                f"/complaints/{ticket['id']}/acknowledge",
                json={"version": 1, "emotion": "客户很气愤，已致歉并承诺尽快核查"},
            )
            assert acked.status_code == 200, acked.text
        # complaint.opened -> warning raises its complaint warning for the subscriber.
        assert poll(
            database,
            "SELECT count(*) FROM warning.warning WHERE msisdn = $1 AND signal = 'complaint'",
            msisdn,
        )
        # complaint.step_recorded (acknowledged reaches the customer) -> profile's contact log.
        assert poll(
            database,
            "SELECT count(*) FROM profile.contact_log WHERE source = 'complaint' "
            "AND source_ref LIKE $1",
            f"{ticket['number']}:%",
        )
        # The demo complaints' events went the same way.
        assert poll(database, "SELECT count(*) >= 8 FROM complaint.ticket")
        stop_and_check_nothing_left(process, signal.SIGTERM)
    finally:
        asyncio.run(drop_database(database))


WARNINGS = """subscription { warningRaised(minSeverity: low) { warning { msisdn signal } } }"""


def open_ticket(url: str, token: str, msisdn: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        created = client.post(
            "/complaints",
            json={
                "msisdn": msisdn,
                "channel": "hotline",
                "category": "billing",
                "description": "不明扣费：未订购的增值业务每月扣费",
            },
        )
    assert created.status_code == 201, created.text
    ticket: dict[str, Any] = created.json()
    return ticket


@contextmanager
def gateway_process(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "keepwell", "serve", "gateway"], env=env, stdin=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, "the second gateway stopped"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{url} did not come up")


def gateway_token(tmp_path: Path, env: dict[str, str]) -> str:
    """An operator's token for the gateway, as `keepwell token --gateway` makes one."""
    return subprocess.run(
        [sys.executable, "-m", "keepwell", "token", "--gateway", "--role", "operator",
         "--user", "e2e-operator"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip


@contextmanager
def subscribed(gateway: str, token: str, query: str) -> Iterator[ClientConnection]:
    url = gateway.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as socket:
        socket.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(socket.recv(timeout=10))["type"] == "connection_ack"
        socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        # The server takes messages in order: once it answers a ping sent after the
        # subscription, the subscription has started.
        socket.send(json.dumps({"type": "ping"}))
        assert json.loads(socket.recv(timeout=10))["type"] == "pong"
        yield socket


def next_warning(socket: ClientConnection) -> dict[str, Any]:
    message = json.loads(socket.recv(timeout=READY_TIMEOUT))
    assert message["type"] == "next", message
    warning: dict[str, Any] = message["payload"]["data"]["warningRaised"]["warning"]
    return warning
