"""Partners' systems through the gateway: API keys made by admins, scopes that open fields,
masked numbers, and keys that stop working when revoked or expired."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from services.kit import clock
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
