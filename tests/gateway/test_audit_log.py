"""``auditLog``: the services' change audits (and profile's read audit) as one list newest
first, paged across services without a row lost or shown twice; admins only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.gateway.conftest import GraphQL, Running

QUERY = """
query ($kind: AuditKind, $by: String, $first: Int!, $after: String) {
  auditLog(kind: $kind, userId: $by, first: $first, after: $after) {
    nodes {
      __typename
      ... on ChangeAuditEntry { service userId role method route resourceIds status requestId }
      ... on ReadAuditEntry { userId action msisdn }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def write(
    running: Running, token: Callable[..., str], service: str, path: str, body: Any, **who: Any
) -> None:
    async with httpx.AsyncClient(base_url=running.urls[service]) as client:
        answer = await client.post(
            path, json=body, headers={"Authorization": f"Bearer {token(**who)}"}
        )
    assert answer.status_code == 201, answer.text


async def test_the_audit_log_merges_the_services_newest_first_and_pages_across_them(
    services_running: Running, graphql: GraphQL, token: Callable[..., str]
) -> None:
    operator = {"role": "operator", "user": "O1"}
    team = {"id": "T1", "name": "广州VIP一组", "region": "广东", "supervisor_name": "周敏"}
    manager = {"id": "M1", "name": "李娜", "phone": "13900000001", "team_id": "T1"}
    customer = {
        "msisdn": "13800000001", "name": "王建国", "gender": "male", "region": "广东",
        "city": "广州", "join_date": "2012-03-01", "plan_name": "全球通199",
        "plan_fee": "199.00", "tier": "gold", "service_level": "A", "manager_id": "M1",
    }  # fmt: skip
    campaign = {"name": "名单", "template": "您好", "audience": {"source": "list"}}
    await write(services_running, token, "profile", "/teams", team, **operator)
    await write(services_running, token, "care", "/campaigns", campaign, role="manager", user="m1")
    await write(services_running, token, "profile", "/managers", manager, **operator)
    category = {"code": "roaming", "name": "国际漫游"}
    await write(services_running, token, "complaint", "/categories", category, user="A1")
    await write(services_running, token, "profile", "/customers", customer, user="A1")

    pages, after = [], None
    while True:
        body = await graphql(QUERY, kind="CHANGES", first=2, after=after)
        log = body["data"]["auditLog"]
        pages.append([(n["service"], n["route"]) for n in log["nodes"]])
        if not log["pageInfo"]["hasNextPage"]:
            break
        after = log["pageInfo"]["endCursor"]
    everything = await graphql(QUERY, first=50)
    by_a1 = await graphql(QUERY, by="A1", first=50)
    denied = await graphql(QUERY, role="supervisor", user="S1", team="T1", first=5)

    assert pages == [
        [("profile", "/customers"), ("complaint", "/categories")],
        [("profile", "/managers"), ("care", "/campaigns")],
        [("profile", "/teams")],
    ]
    nodes = everything["data"]["auditLog"]["nodes"]
    # The creating admin was served the archive unmasked: a read, beside the change.
    assert [n["__typename"] for n in nodes].count("ReadAuditEntry") == 1
    read = next(n for n in nodes if n["__typename"] == "ReadAuditEntry")
    assert (read["userId"], read["action"], read["msisdn"]) == (
        "A1",
        "POST /customers",
        "13800000001",
    )
    assert len(nodes) == 6
    changes = [n for n in by_a1["data"]["auditLog"]["nodes"] if n["__typename"] != "ReadAuditEntry"]
    assert [(n["service"], n["userId"], n["role"], n["method"], n["status"]) for n in changes] == [
        ("profile", "A1", "admin", "POST", 201),
        ("complaint", "A1", "admin", "POST", 201),
    ]
    assert denied["data"] is None
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_cursor_the_gateway_did_not_give_is_refused(
    services_running: Running, graphql: GraphQL
) -> None:
    body = await graphql(QUERY, first=5, after="not-a-cursor")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == "after"
