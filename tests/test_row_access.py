"""Row-level access as one matrix: role x resource kind x operation x owner, on every service.

The rule (ARCHITECTURE.md, *Row access*): a manager reads the rows of their team's
customers and changes only their own; a supervisor reads and changes their team's;
operators and admins read and change every row; partners (here with the scopes
customers:read, warnings:read and complaints:read) read profile's customers and contact
log, warnings and risk, complaint tickets and their SLA clocks, every team's, with the
numbers masked, and nothing else. A row the caller may not read is
not found (404) when asked for by id or under its customer, and absent from lists; a row
the caller may read but not change is refused (403). A role the route does not admit at
all is refused (403) whatever the row: those cells follow the route's roles as the app
declares them (tests/kit/test_route_roles.py tests that gate on its own).

One world for the whole module, seeded once: teams t1 (managers m1, m2) and t2 (m3), a
customer of each manager (made through profile's API, copied into warning, care and
complaint by their consumers from profile's own events), and of each resource kind one
row per customer, made by admin (care campaigns by the manager who owns them: a campaign
belongs to whoever created it). The owner relation names whose row it is as manager m1
sees it: ``own`` (m1's), ``same_team`` (m2's), ``other_team`` (m3's); supervisor s1 leads
t1, so ``own`` and ``same_team`` are both their team's. A cell's id names it:
``complaint-ticket-change-manager-same_team``.

The suite empties the database after every test (``isolated`` in tests/conftest.py);
this module overrides that fixture, keeps its world across its tests and empties
everything once at the end. A change cell leaves its row as the next cell needs it: a
repeatable change (a contact, an edit), a change undone by admin (waiting for the
customer, then resumed) or a row of its own (each role completes a task of its own).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from services.care import repository as care_repository
from services.care.app import create_app as create_care
from services.care.consumers import consumer as care_consumer
from services.complaint import service as complaint_service
from services.complaint.app import create_app as create_complaint
from services.complaint.consumers import consumer as complaint_consumer
from services.kit.access import route_roles
from services.kit.app import Resources
from services.kit.auth import Principal, Role, Scope, issue_token
from services.kit.config import Settings
from services.kit.events import Envelope
from services.kit.events.consumer import Consumer
from services.kit.testing import Infra
from services.profile.app import create_app as create_profile
from services.warning import service as warning_service
from services.warning.app import create_app as create_warning
from services.warning.consumers import consumer as warning_consumer
from tests.conftest import empty_everything
from tests.profile.conftest import customer

# -- who calls, and whose rows ------------------------------------------------------------------

CALLERS = {
    "manager": Principal(user_id="m1", role=Role.manager, team_id="t1"),
    "supervisor": Principal(user_id="s1", role=Role.supervisor, team_id="t1"),
    "operator": Principal(user_id="op1", role=Role.operator),
    "admin": Principal(user_id="admin1", role=Role.admin),
    "partner": Principal(
        user_id="crm-x",
        role=Role.partner,
        scopes=frozenset({Scope.customers_read, Scope.warnings_read, Scope.complaints_read}),
    ),
}
RELATIONS = ("own", "same_team", "other_team")
OWNERS = {  # relation: (msisdn, name, manager, team)
    "own": ("13800000001", "王一", "m1", "t1"),
    "same_team": ("13800000002", "王二", "m2", "t1"),
    "other_team": ("13800000003", "王三", "m3", "t2"),
}


@dataclass
class Row:
    """One customer and its row of every kind."""

    msisdn: str
    name: str
    manager: str
    team: str
    customer_id: int = 0
    warning_id: int = 0
    campaign_id: str = ""
    task_ids: dict[str, int] = field(default_factory=dict)  # "read", then one per role
    ticket_id: int = 0

    @property
    def read_task_id(self) -> int:
        return self.task_ids["read"]


@dataclass
class World:
    clients: dict[str, httpx.AsyncClient]
    headers: dict[str, dict[str, str]]
    roles: dict[str, dict[tuple[str, str], frozenset[Role]]]  # service: route: roles
    rows: dict[str, Row]
    alert_id: str = ""

    async def admin(self, service: str, method: str, url: str, **kw: Any) -> Any:
        response = await self.clients[service].request(
            method, url, headers=self.headers["admin"], **kw
        )
        assert response.is_success, (method, url, response.text)
        return response.json() if response.content else None

    def numbers(self) -> list[tuple[str, str]]:
        return [("msisdn", r.msisdn) for r in self.rows.values()]


# -- what each kind's operations are ------------------------------------------------------------

Url = Callable[[World, Row], str]
Body = Callable[[World, Row], Awaitable[Any]]
Holds = Callable[[Any, World, Row], bool]


@dataclass(frozen=True)
class Op:
    service: str
    kind: str
    op: str  # read (one by id or key), list, change
    method: str
    route: str  # the route's path as the app declares it (its roles are looked up by it)
    url: Url
    params: Callable[[World, Row], Any] | None = None
    body: Body | None = None  # made just before the call (a change may need the version)
    holds: Holds | None = None  # list: whether the answer holds the row
    nested: bool = False  # a list under its customer or ticket: 404 when that is not readable
    undo: Body | None = None  # run as admin after a change that went through

    @property
    def name(self) -> str:
        return f"{self.service}-{self.kind}-{self.op}"


_labels = itertools.count(1)


def _const(value: Any) -> Body:
    async def make(world: World, row: Row) -> Any:
        return value

    return make


async def _customer_edit(world: World, row: Row) -> Any:
    current = await world.admin("profile", "GET", f"/customers/{row.msisdn}")
    return {"version": current["version"], "interests": [f"兴趣{next(_labels)}"]}


async def _campaign_edit(world: World, row: Row) -> Any:
    return {"name": f"生日关怀{next(_labels)}"}


async def _ticket_version(world: World, row: Row) -> Any:
    current = await world.admin("complaint", "GET", f"/complaints/{row.ticket_id}")
    return {"version": current["version"], "notes": "客户要求稍后再联系"}


async def _resume(world: World, row: Row) -> Any:
    body = await _ticket_version(world, row)
    await world.admin("complaint", "POST", f"/complaints/{row.ticket_id}/resume", json=body)


def _holds(key: str, attribute: str) -> Holds:
    """The answer (a list, or a page's ``items``) has an item whose ``key`` is the row's."""

    def holds(answer: Any, world: World, row: Row) -> bool:
        items = answer["items"] if isinstance(answer, dict) else answer
        return any(item[key] == getattr(row, attribute) for item in items)

    return holds


def _not_empty(answer: Any, world: World, row: Row) -> bool:
    return bool(answer["items"] if isinstance(answer, dict) else answer)


CONTACT = {"channel": "call", "outcome": "reached", "note": "电话回访"}

OPS: list[Op] = [
    # profile: the archive, its contact log and who managed the customer
    Op("profile", "customer", "read", "GET", "/customers/{msisdn}",
       lambda w, r: f"/customers/{r.msisdn}"),
    Op("profile", "customer", "list", "GET", "/customers", lambda w, r: "/customers",
       holds=_holds("name", "name")),
    Op("profile", "customer", "change", "PATCH", "/customers/{msisdn}",
       lambda w, r: f"/customers/{r.msisdn}", body=_customer_edit),
    Op("profile", "contact", "list", "GET", "/customers/{msisdn}/contacts",
       lambda w, r: f"/customers/{r.msisdn}/contacts", holds=_not_empty, nested=True),
    Op("profile", "contact", "change", "POST", "/customers/{msisdn}/contacts",
       lambda w, r: f"/customers/{r.msisdn}/contacts", body=_const(CONTACT)),
    Op("profile", "assignment", "list", "GET", "/customers/{msisdn}/managers",
       lambda w, r: f"/customers/{r.msisdn}/managers", holds=_not_empty, nested=True),
    # warning: the warning, its follow-up (one contact for all of a customer's), the risk
    Op("warning", "warning", "read", "GET", "/warnings/{warning_id}",
       lambda w, r: f"/warnings/{r.warning_id}"),
    Op("warning", "warning", "list", "GET", "/warnings", lambda w, r: "/warnings",
       holds=_holds("id", "warning_id")),
    Op("warning", "warning", "change", "POST", "/warnings/{warning_id}/contacts",
       lambda w, r: f"/warnings/{r.warning_id}/contacts", body=_const(CONTACT)),
    Op("warning", "follow_up", "change", "POST", "/subscribers/{msisdn}/contacts",
       lambda w, r: f"/subscribers/{r.msisdn}/contacts", body=_const(CONTACT)),
    Op("warning", "risk", "read", "GET", "/subscribers/{msisdn}/risk",
       lambda w, r: f"/subscribers/{r.msisdn}/risk"),
    Op("warning", "risk", "list", "GET", "/risk", lambda w, r: "/risk",
       params=lambda w, r: w.numbers(), holds=_holds("customer_id", "customer_id")),
    # care: campaigns (their creator's), tasks, messages and a company-wide alert's recipients
    Op("care", "campaign", "read", "GET", "/campaigns/{campaign_id}",
       lambda w, r: f"/campaigns/{r.campaign_id}"),
    Op("care", "campaign", "list", "GET", "/campaigns", lambda w, r: "/campaigns",
       holds=_holds("id", "campaign_id")),
    Op("care", "campaign", "change", "PATCH", "/campaigns/{campaign_id}",
       lambda w, r: f"/campaigns/{r.campaign_id}",
       body=_campaign_edit),
    Op("care", "task", "list", "GET", "/tasks", lambda w, r: "/tasks",
       params=lambda w, r: {"limit": 500}, holds=_holds("id", "read_task_id")),
    Op("care", "task", "change", "POST", "/tasks/{task_id}/complete",
       lambda w, r: "", body=_const({"outcome": "reached", "note": "已回访"})),
    Op("care", "message", "list", "GET", "/messages", lambda w, r: "/messages",
       params=lambda w, r: w.numbers(), holds=_holds("msisdn", "msisdn")),
    Op("care", "recipient", "list", "GET", "/campaigns/{campaign_id}/recipients",
       lambda w, r: f"/campaigns/{w.alert_id}/recipients", holds=_holds("msisdn", "msisdn")),
    # complaint: the ticket, its steps, its compensation and its SLA clocks
    Op("complaint", "ticket", "read", "GET", "/complaints/{complaint_id}",
       lambda w, r: f"/complaints/{r.ticket_id}"),
    Op("complaint", "ticket", "list", "GET", "/complaints", lambda w, r: "/complaints",
       holds=_holds("id", "ticket_id")),
    Op("complaint", "ticket", "change", "POST", "/complaints/{complaint_id}/attachments",
       lambda w, r: f"/complaints/{r.ticket_id}/attachments",
       body=_const({"ref": "oss://complaints/recording.mp3", "size": 2048,
                    "content_type": "audio/mpeg"})),
    Op("complaint", "step", "list", "GET", "/complaints/{complaint_id}/steps",
       lambda w, r: f"/complaints/{r.ticket_id}/steps", holds=_not_empty, nested=True),
    Op("complaint", "step", "change", "POST", "/complaints/{complaint_id}/wait",
       lambda w, r: f"/complaints/{r.ticket_id}/wait", body=_ticket_version, undo=_resume),
    Op("complaint", "compensation", "list", "GET", "/complaints/{complaint_id}/compensations",
       lambda w, r: f"/complaints/{r.ticket_id}/compensations", holds=_not_empty, nested=True),
    Op("complaint", "compensation", "change", "POST", "/complaints/{complaint_id}/compensations",
       lambda w, r: f"/complaints/{r.ticket_id}/compensations",
       body=_const({"kind": "data_pack", "amount": "5.00", "reason": "信号问题补偿"})),
    Op("complaint", "sla", "read", "GET", "/complaints/{complaint_id}/sla",
       lambda w, r: f"/complaints/{r.ticket_id}/sla"),
    Op("complaint", "sla", "list", "GET", "/complaints/sla", lambda w, r: "/complaints/sla",
       params=lambda w, r: [("id", x.ticket_id) for x in w.rows.values()],
       holds=_holds("complaint_id", "ticket_id")),
]  # fmt: skip


def _url(op: Op, world: World, row: Row, role: str) -> str:
    if op.kind == "task" and op.op == "change":
        return f"/tasks/{row.task_ids[role]}/complete"  # a task of this role's own to close
    return op.url(world, row)


# -- what each cell should answer ---------------------------------------------------------------


class Outcome(StrEnum):
    allowed = "allowed"  # served (a read: 200 with the row; a change: 2xx)
    hidden = "hidden"  # as if it did not exist: 404, or absent from the list
    refused = "refused"  # 403


def expected(op: str, role: str, relation: str, admitted: bool) -> Outcome:
    """The rule, cell by cell."""
    if not admitted:
        return Outcome.refused
    if role in ("admin", "operator", "partner"):  # partners: only where a route admits them
        return Outcome.allowed
    if relation == "other_team":
        return Outcome.hidden
    if op != "change" or role == "supervisor" or relation == "own":
        return Outcome.allowed
    return Outcome.refused


CELLS = [
    pytest.param(op, role, relation, id=f"{op.name}-{role}-{relation}")
    for op in OPS
    for role in CALLERS
    for relation in RELATIONS
]


# -- the world, seeded once ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    """Overrides tests/conftest.py's emptying after each test: here every test reads the one
    world ``world`` seeds, and ``world`` empties everything when the module is done."""
    yield


APPS = {
    "profile": create_profile,
    "warning": create_warning,
    "care": create_care,
    "complaint": create_complaint,
}


@pytest.fixture(scope="module")
async def world(infra: Infra, settings: Settings) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        clients, roles = {}, {}
        for service, create in APPS.items():
            app = create()
            roles[service] = route_roles(app)
            manager = await stack.enter_async_context(LifespanManager(app))
            clients[service] = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
                )
            )
        headers = {
            role: {"Authorization": f"Bearer {issue_token(p, settings, ttl_seconds=3600)}"}
            for role, p in CALLERS.items()
        }
        world = World(clients, headers, roles, {r: Row(*o) for r, o in OWNERS.items()})
        try:
            await _seed(world, settings)
            yield world
        finally:
            await stack.aclose()
            await empty_everything(infra)


async def _seed(world: World, settings: Settings) -> None:
    today = warning_service.business_today()
    for team in (
        {"id": "t1", "name": "广州天河VIP团队", "region": "广东", "supervisor_id": "s1",
         "supervisor_name": "周敏"},
        {"id": "t2", "name": "深圳南山VIP团队", "region": "广东", "supervisor_id": "s2",
         "supervisor_name": "马强"},
    ):  # fmt: skip
        await world.admin("profile", "POST", "/teams", json=team)
    for number, row in enumerate(world.rows.values(), 1):
        manager = {"id": row.manager, "name": f"经理{number}", "phone": f"1390000000{number}"}
        await world.admin("profile", "POST", "/managers", json={**manager, "team_id": row.team})
    for row in world.rows.values():
        body = customer(row.msisdn, name=row.name, manager_id=row.manager)
        body["contract_end"] = str(today + timedelta(days=10))  # a contract-expiry warning
        row.customer_id = (await world.admin("profile", "POST", "/customers", json=body))["id"]
        await world.admin("profile", "POST", f"/customers/{row.msisdn}/contacts", json=CONTACT)
    await _deliver_profile_events(settings)

    # warning: tonight's detection finds each contract ending
    async with _resources("warning", settings) as resources, resources.session() as session:
        await warning_service.run_detection(session, today)
    found = await world.admin("warning", "GET", "/warnings")
    by_number = {w["msisdn"]: w["id"] for w in found if w["signal"] == "contract_expiry"}

    # care: a draft of each manager's, a company-wide alert, tasks (one to read, one per role)
    alert = {"name": "台风预警", "template": "台风来袭，请注意安全", "regions": ["广东"]}
    world.alert_id = (await world.admin("care", "POST", "/alerts", json=alert))["id"]
    async with _resources("care", settings) as resources, resources.session() as session:
        for row in world.rows.values():
            for purpose in ("read", *CALLERS):
                await care_repository.add_task(
                    session, msisdn=row.msisdn, manager_id=row.manager, kind="monthly_call",
                    period=f"matrix-{purpose}", due_on=today, note="月度电话回访",
                )  # fmt: skip
    async with _resources("care", settings) as resources, resources.session() as session:
        tasks = await session.execute(text("SELECT id, msisdn, period FROM care.task"))
        task_ids = {(msisdn, period.removeprefix("matrix-")): id_ for id_, msisdn, period in tasks}

    # complaint: a ticket per customer, acknowledged (compensation comes after that)
    complaint_service._CALENDAR_CACHE.clear()  # ids start again in an emptied database
    async with _resources("complaint", settings) as resources, resources.session() as session:
        await complaint_service.install_defaults(session)

    for row in world.rows.values():
        row.warning_id = by_number[row.msisdn]
        row.task_ids = {p: task_ids[(row.msisdn, p)] for p in ("read", *CALLERS)}
        owner = Principal(user_id=row.manager, role=Role.manager, team_id=row.team)
        draft = {"name": "生日关怀", "template": "{name}您好，祝您生日快乐"}
        made = await world.clients["care"].post(
            "/campaigns",
            json=draft,
            headers={"Authorization": f"Bearer {issue_token(owner, settings)}"},
        )
        assert made.status_code == 201, made.text
        row.campaign_id = made.json()["id"]
        ticket = await world.admin(
            "complaint",
            "POST",
            "/complaints",
            json={
                "msisdn": row.msisdn,
                "channel": "hotline",
                "category": "network_signal",
                "description": "家里信号很差，打电话经常断线。",
                "needs": ["be_heard", "fix_now"],
            },
        )
        assert ticket["handler_id"] == row.manager
        row.ticket_id = ticket["id"]
        await world.admin(
            "complaint",
            "POST",
            f"/complaints/{row.ticket_id}/acknowledge",
            json={"version": ticket["version"], "emotion": "客户很着急"},
        )
        await world.admin(
            "complaint",
            "POST",
            f"/complaints/{row.ticket_id}/compensations",
            json={"kind": "data_pack", "amount": "5.00", "reason": "信号问题补偿"},
        )


@asynccontextmanager
async def _resources(service: str, settings: Settings) -> AsyncIterator[Resources]:
    resources = Resources.open(service, settings)
    try:
        yield resources
    finally:
        await resources.close()


async def _deliver_profile_events(settings: Settings) -> None:
    """Profile's events, as its relay would deliver them, to each consumer of the copy."""
    async with _resources("profile", settings) as profile, profile.session() as session:
        rows = await session.execute(
            text(
                "SELECT seq, id, type, version, aggregate_id, occurred_at, payload "
                "FROM profile.outbox ORDER BY seq"
            )
        )
        envelopes = [
            Envelope(
                seq=r.seq,
                id=r.id,
                type=r.type,
                version=r.version,
                producer="profile",
                aggregate_id=r.aggregate_id,
                occurred_at=r.occurred_at,
                payload=r.payload,
            )
            for r in rows
        ]
    consumers: dict[str, Consumer] = {
        "warning": warning_consumer,
        "care": care_consumer,
        "complaint": complaint_consumer,
    }
    for service, consumer in consumers.items():
        batch = [e for e in envelopes if e.type in consumer.handled_types]
        assert batch, service
        async with _resources(service, settings) as resources, resources.session() as session:
            results = await consumer.receive(session, batch)
        assert {r.status for r in results} == {"processed"}, (service, results)


# -- the matrix ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("op", "role", "relation"), CELLS)
async def test_row_access(world: World, op: Op, role: str, relation: str) -> None:
    row = world.rows[relation]
    admitted = CALLERS[role].role in world.roles[op.service][(op.method, op.route)]
    want = expected(op.op, role, relation, admitted)
    body = await op.body(world, row) if op.body is not None else None
    response = await world.clients[op.service].request(
        op.method,
        _url(op, world, row, role),
        params=op.params(world, row) if op.params is not None else None,
        json=body,
        headers=world.headers[role],
    )
    if op.undo is not None and response.is_success:
        await op.undo(world, row)
    got = f"{want}: got {response.status_code} {response.text[:300]}"

    if want is Outcome.refused:
        assert response.status_code == 403, got
        return
    if want is Outcome.hidden and (op.op != "list" or op.nested):
        assert response.status_code == 404, got
        return
    assert response.is_success, got
    if op.op == "list":
        assert op.holds is not None
        assert op.holds(response.json(), world, row) is (want is Outcome.allowed), got
    if role == "partner":
        assert row.msisdn not in response.text, got  # masked wherever it is served


def test_the_matrix_covers_every_kind_operation_role_and_owner() -> None:
    cells = {(op.service, op.kind, op.op) for op in OPS}
    assert len(CELLS) == len(cells) * len(CALLERS) * len(RELATIONS)
    per_service = {s: sum(1 for op in OPS if op.service == s) * 15 for s in APPS}
    assert per_service == {"profile": 90, "warning": 90, "care": 105, "complaint": 135}
