"""Partners' systems through the gateway: API keys made by admins, scopes that open fields,
masked numbers, and keys that stop working when revoked or expired."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx

from services.kit import clock
from services.kit.auth import Principal, Role, Scope, issue_token
from services.kit.config import Settings
from tests.gateway.conftest import GraphQL, fetch

CREATE = """
mutation ($partner: String!, $scopes: [String!]!) {
  createApiKey(partnerId: $partner, name: "话单接口", scopes: $scopes) {
    __typename
    ... on CreatedApiKey { key apiKey { id partnerId scopes revokedAt } }
    ... on Problem { code message }
  }
}
"""

REVOKE = """
mutation ($id: ID!) { revokeApiKey(id: $id) { __typename ... on ApiKeyInfo { revokedAt } } }
"""


async def new_key(graphql: GraphQL, *scopes: str, partner: str = "bss-feed") -> dict[str, Any]:
    body = await graphql(CREATE, role="admin", partner=partner, scopes=list(scopes))
    made: dict[str, Any] = body["data"]["createApiKey"]
    assert made["__typename"] == "CreatedApiKey", made
    return made


async def as_partner(
    gateway: httpx.AsyncClient, key: str, query: str, **variables: Any
) -> httpx.Response:
    return await gateway.post(
        "/graphql", json={"query": query, "variables": variables}, headers={"X-API-Key": key}
    )


async def test_a_key_with_customers_read_sees_masked_customers_and_nothing_else(
    demo: Settings, graphql: GraphQL, gateway: httpx.AsyncClient
) -> None:
    made = await new_key(graphql, "customers:read")
    assert made["apiKey"]["scopes"] == ["customers:read"]
    response = await as_partner(
        gateway, made["key"], "{ customers(first: 5) { nodes { msisdn name tier } } }"
    )
    assert response.status_code == 200
    nodes = response.json()["data"]["customers"]["nodes"]
    assert len(nodes) == 5
    assert all("****" in n["msisdn"] for n in nodes)

    # Warnings need warnings:read; care and campaigns are staff's only.
    body = (
        await as_partner(
            gateway, made["key"], "{ customers(first: 2) { nodes { name warnings { id } } } }"
        )
    ).json()
    assert all(n["warnings"] is None for n in body["data"]["customers"]["nodes"])
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}
    assert {e["extensions"]["scope"] for e in body["errors"]} == {"warnings:read"}
    body = (await as_partner(gateway, made["key"], "{ campaigns { nodes { id } } }")).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN", "scope": None}


async def test_the_usage_feed_needs_usage_write(
    demo: Settings, graphql: GraphQL, gateway: httpx.AsyncClient
) -> None:
    msisdn = (await fetch(demo.database_url, "SELECT msisdn FROM profile.customer LIMIT 1"))[0][
        "msisdn"
    ]
    day = (clock.today() - timedelta(days=1)).isoformat()
    rows = [
        {
            "msisdn": msisdn,
            "day": day,
            "outgoingCalls": 3,
            "minutes": 12,
            "dataMb": 300,
            "spend": "5.20",
            "balance": "80.00",
        },
        {
            "msisdn": "123",
            "day": day,
            "outgoingCalls": 0,
            "minutes": 0,
            "dataMb": 0,
            "spend": "0",
            "balance": "0",
        },
    ]
    submit = """
    mutation ($rows: [UsageInput!]!) {
      submitUsage(rows: $rows) {
        __typename
        ... on UsageAccepted { accepted rejected { row field } }
      }
    }
    """
    reader = await new_key(graphql, "customers:read", partner="crm")
    body = (await as_partner(gateway, reader["key"], submit, rows=rows)).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    feeder = await new_key(graphql, "usage:write")
    body = (await as_partner(gateway, feeder["key"], submit, rows=rows)).json()
    assert "errors" not in body, body
    assert body["data"]["submitUsage"] == {
        "__typename": "UsageAccepted",
        "accepted": 1,
        "rejected": [{"row": 2, "field": "msisdn"}],
    }
    stored = await fetch(
        demo.database_url,
        "SELECT minutes FROM warning.daily_usage WHERE msisdn = $1 AND day = $2",
        msisdn,
        clock.today() - timedelta(days=1),
    )
    assert [r["minutes"] for r in stored] == [12]


async def test_revoked_and_expired_keys_are_refused(
    demo: Settings, graphql: GraphQL, gateway: httpx.AsyncClient
) -> None:
    query = "{ customers(first: 1) { nodes { name } } }"
    revoked = await new_key(graphql, "customers:read")
    assert (await as_partner(gateway, revoked["key"], query)).status_code == 200
    body = await graphql(
        REVOKE,
        role="admin",
        id=revoked["apiKey"]["id"],
    )
    assert body["data"]["revokeApiKey"]["revokedAt"] is not None
    refused = await as_partner(gateway, revoked["key"], query)
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthorized"

    expiring = await new_key(graphql, "customers:read")
    await fetch(
        demo.database_url,
        "UPDATE gateway.api_key SET expires_at = now() - interval '1 second' WHERE id = $1",
        expiring["apiKey"]["id"],
    )
    assert (await as_partner(gateway, expiring["key"], query)).status_code == 401
    wrong = expiring["key"][:-3] + "abc"
    assert (await as_partner(gateway, wrong, query)).status_code == 401

    listed = await graphql("{ apiKeys { id revokedAt lastUsedAt } }", role="admin")
    by_id = {k["id"]: k for k in listed["data"]["apiKeys"]}
    assert by_id[revoked["apiKey"]["id"]]["lastUsedAt"] is not None
    assert by_id[revoked["apiKey"]["id"]]["revokedAt"] is not None


async def test_only_admins_make_keys(demo: Settings, graphql: GraphQL) -> None:
    body = await graphql(
        CREATE, role="supervisor", team="T001", partner="x", scopes=["usage:write"]
    )
    assert body["data"]["createApiKey"] == {
        "__typename": "Forbidden",
        "code": "forbidden",
        "message": "仅管理员可管理 API 密钥",
    }
    body = await graphql(CREATE, role="admin", partner="x", scopes=["everything"])
    assert body["data"]["createApiKey"]["__typename"] == "ValidationFailed"


_FULL_NUMBER = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


async def _customer_with(demo: Settings, table: str, where: str = "") -> tuple[str, str]:
    """(msisdn, profile's customer id) of a demo customer with rows in ``table``."""
    rows = await fetch(
        demo.database_url,
        f"SELECT c.msisdn, c.id FROM profile.customer c WHERE c.msisdn IN "
        f"(SELECT msisdn FROM {table} {where}) ORDER BY c.id LIMIT 1",
    )
    assert rows, f"the demo should have {table} rows"
    return rows[0]["msisdn"], str(rows[0]["id"])


def _service_token(demo: Settings, *scopes: Scope) -> dict[str, str]:
    principal = Principal(user_id="bss-feed", role=Role.partner, scopes=frozenset(scopes))
    return {"Authorization": f"Bearer {issue_token(principal, demo)}"}


async def test_a_customer_is_read_by_id_as_by_number_with_the_same_scoping(
    demo: Settings, graphql: GraphQL
) -> None:
    msisdn, customer_id = await _customer_with(
        demo, "warning.warning", "WHERE status <> 'resolved'"
    )
    query = (
        "query ($id: ID, $msisdn: String) "
        "{ customer(id: $id, msisdn: $msisdn) { id msisdn name teamId } }"
    )
    by_number = await graphql(query, role="operator", msisdn=msisdn)
    by_id = await graphql(query, role="operator", id=customer_id)
    assert "errors" not in by_id, by_id
    assert by_id["data"]["customer"] == by_number["data"]["customer"]
    assert by_id["data"]["customer"]["id"] == customer_id

    team = by_id["data"]["customer"]["teamId"]
    other = "T999" if team != "T999" else "T998"
    for variables in ({"id": customer_id}, {"msisdn": msisdn}):
        theirs = await graphql(query, role="manager", user="M9999", team=team, **variables)
        assert theirs["data"]["customer"] is not None
        stranger = await graphql(query, role="manager", user="M9999", team=other, **variables)
        assert stranger["data"]["customer"] is None  # another team's: not found either way
        assert "errors" not in stranger

    for variables in ({}, {"id": customer_id, "msisdn": msisdn}, {"id": "x1"}):
        body = await graphql(query, role="operator", **variables)
        assert body["data"]["customer"] is None
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    missing = await graphql(query, role="operator", id="987654321")
    assert missing["data"]["customer"] is None and "errors" not in missing


WARNINGS_OF_ONE = """
query ($id: ID!) {
  customer(id: $id) {
    id msisdn
    warnings { id msisdn customerId summary evidence resolutionNote managerId }
    riskScore { score components { signal } }
  }
}
"""


async def test_a_partner_with_warnings_read_reads_warnings_masked_without_free_text(
    demo: Settings, graphql: GraphQL, gateway: httpx.AsyncClient
) -> None:
    msisdn, customer_id = await _customer_with(
        demo, "warning.warning", "WHERE status <> 'resolved'"
    )
    staff = await graphql(WARNINGS_OF_ONE, role="operator", id=customer_id)
    staff_ids = {w["id"] for w in staff["data"]["customer"]["warnings"]}
    assert staff_ids

    key = (await new_key(graphql, "customers:read", "warnings:read"))["key"]
    response = await as_partner(gateway, key, WARNINGS_OF_ONE, id=customer_id)
    body = response.json()
    assert "errors" not in body, body
    customer = body["data"]["customer"]
    assert customer["msisdn"] == f"{msisdn[:3]}****{msisdn[-4:]}"
    # Nested by customer id: the same warnings staff see, masked, nothing a person wrote.
    assert {w["id"] for w in customer["warnings"]} == staff_ids
    for warning in customer["warnings"]:
        assert warning["msisdn"] == customer["msisdn"]
        assert warning["customerId"] == customer_id
        assert warning["resolutionNote"] == "" and warning["managerId"] is None
        assert warning["summary"]
    assert customer["riskScore"] == staff["data"]["customer"]["riskScore"]

    # The top-level list, and back from a warning to its customer by id.
    page = """
    { warnings(first: 20) { nodes { id msisdn customerId resolutionNote customer { id msisdn } } } }
    """
    response = await as_partner(gateway, key, page)
    body = response.json()
    assert "errors" not in body, body
    nodes = body["data"]["warnings"]["nodes"]
    assert nodes
    for node in nodes:
        assert "****" in node["msisdn"] and node["resolutionNote"] == ""
        assert node["customer"] == {"id": node["customerId"], "msisdn": node["msisdn"]}
    # One call per service and loader for the whole page, as for staff.
    assert body["extensions"]["serviceCalls"] == {"warning": 1, "profile": 1}
    assert not _FULL_NUMBER.search(response.text), response.text[:500]

    # A page of customers with their warnings and risk: one call per loader too.
    listing = (
        "{ customers(first: 50) { nodes { msisdn warnings { msisdn } riskScore { score } } } }"
    )
    response = await as_partner(gateway, key, listing)
    body = response.json()
    assert "errors" not in body, body
    assert any(n["warnings"] for n in body["data"]["customers"]["nodes"])
    assert body["extensions"]["serviceCalls"] == {"profile": 1, "warning": 2}
    assert not _FULL_NUMBER.search(response.text), response.text[:500]


async def test_warnings_without_the_scope_are_refused_by_the_gateway_and_the_service(
    demo: Settings, graphql: GraphQL, gateway: httpx.AsyncClient
) -> None:
    key = (await new_key(graphql, "customers:read"))["key"]
    body = (await as_partner(gateway, key, "{ warnings(first: 5) { nodes { id } } }")).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN", "scope": "warnings:read"}

    async with httpx.AsyncClient(base_url=demo.warning_url) as warning:
        refused = await warning.get("/warnings", headers=_service_token(demo, Scope.customers_read))
        assert refused.status_code == 403
        assert refused.json()["code"] == "forbidden"
        assert "warnings:read" in refused.json()["message"]
        allowed = await warning.get("/warnings", headers=_service_token(demo, Scope.warnings_read))
        assert allowed.status_code == 200
        assert allowed.json() and not _FULL_NUMBER.search(allowed.text)


COMPLAINTS_OF_ONE = """
query ($id: ID!) {
  customer(id: $id) {
    msisdn
    complaints {
      id number msisdn customerId description handlerId category state sla { provisional }
    }
  }
}
"""


async def test_a_partner_with_complaints_read_reads_complaints_masked_without_free_text(
    demo: Settings, graphql: GraphQL, gateway: httpx.AsyncClient
) -> None:
    msisdn, customer_id = await _customer_with(demo, "complaint.ticket")
    staff = await graphql(COMPLAINTS_OF_ONE, role="operator", id=customer_id)
    staff_numbers = {c["number"] for c in staff["data"]["customer"]["complaints"]}
    assert staff_numbers
    assert any(c["description"] for c in staff["data"]["customer"]["complaints"])

    key = (await new_key(graphql, "customers:read", "complaints:read"))["key"]
    response = await as_partner(gateway, key, COMPLAINTS_OF_ONE, id=customer_id)
    body = response.json()
    assert "errors" not in body, body
    complaints = body["data"]["customer"]["complaints"]
    assert {c["number"] for c in complaints} == staff_numbers
    for complaint in complaints:
        assert complaint["msisdn"] == f"{msisdn[:3]}****{msisdn[-4:]}"
        assert complaint["customerId"] == customer_id
        assert complaint["description"] == "" and complaint["handlerId"] is None
        assert complaint["sla"] is not None
    assert not _FULL_NUMBER.search(response.text), response.text[:500]

    page = "{ complaints(first: 20) { nodes { id msisdn description customer { id msisdn } } } }"
    response = await as_partner(gateway, key, page)
    body = response.json()
    assert "errors" not in body, body
    nodes = body["data"]["complaints"]["nodes"]
    assert nodes and all("****" in n["msisdn"] and n["description"] == "" for n in nodes)
    assert all(n["customer"]["msisdn"] == n["msisdn"] for n in nodes)
    assert not _FULL_NUMBER.search(response.text), response.text[:500]

    # The handling (steps and their notes) stays the staff's.
    one = "query ($id: ID!) { complaint(id: $id) { number description steps { notes } } }"
    body = (await as_partner(gateway, key, one, id=nodes[0]["id"])).json()
    assert body["data"]["complaint"]["steps"] is None
    assert body["data"]["complaint"]["description"] == ""
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN", "scope": None}


async def test_complaints_without_the_scope_are_refused_by_the_gateway_and_the_service(
    demo: Settings, graphql: GraphQL, gateway: httpx.AsyncClient
) -> None:
    key = (await new_key(graphql, "customers:read", "warnings:read"))["key"]
    body = (await as_partner(gateway, key, "{ complaints(first: 5) { nodes { id } } }")).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN", "scope": "complaints:read"}
    nested = "{ customers(first: 3) { nodes { complaints { id } } } }"
    body = (await as_partner(gateway, key, nested)).json()
    assert {e["extensions"]["scope"] for e in body["errors"]} == {"complaints:read"}

    async with httpx.AsyncClient(base_url=demo.complaint_url) as complaint:
        refused = await complaint.get(
            "/complaints", headers=_service_token(demo, Scope.customers_read, Scope.warnings_read)
        )
        assert refused.status_code == 403, refused.text
        assert "complaints:read" in refused.json()["message"]
        detail = await complaint.get(
            "/complaints", headers=_service_token(demo, Scope.complaints_read)
        )
        assert detail.status_code == 200
        ticket = detail.json()["items"][0]
        one = await complaint.get(
            f"/complaints/{ticket['id']}", headers=_service_token(demo, Scope.complaints_read)
        )
        assert one.status_code == 200
        assert one.json()["steps"] == [] and one.json()["compensation"] is None
        assert not _FULL_NUMBER.search(one.text)
        steps = await complaint.get(
            f"/complaints/{ticket['id']}/steps", headers=_service_token(demo, *Scope)
        )
        assert steps.status_code == 403
