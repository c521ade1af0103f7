"""Reading through the gateway: a customer 360, a manager's work queue, lists, and who may
see what on every path (by number, in lists, through nested fields)."""

from __future__ import annotations

from typing import Any

import pytest

from services.kit.config import Settings
from tests.gateway.conftest import GraphQL, Running, fetch

CUSTOMER_360 = """
query ($msisdn: String!) {
  customer(msisdn: $msisdn) {
    msisdn name tier serviceLevel lifecycle valueQuadrant tags version
    manager { id name team { id name } }
    team { id }
    warnings { id signal severity summary customer { msisdn } }
    riskScore { score components { signal weight } }
    complaints { number state breached customer { msisdn } }
    careHistory { messages { state text } tasks { kind dueOn status } }
    contactLog(first: 5) { nodes { channel outcome at } pageInfo { hasNextPage } }
    managerHistory { managerId startedAt }
  }
}
"""

PAGE = """
query ($first: Int!, $filter: CustomerFilter) {
  customers(first: $first, filter: $filter) {
    nodes {
      msisdn teamId
      manager { id name }
      warnings { signal riskScore }
      riskScore { score }
      complaints { number state sla { metrics { metric state dueAt } } }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def teams_and_managers(settings: Settings) -> list[dict[str, Any]]:
    rows = await fetch(
        settings.database_url,
        "SELECT m.team_id, c.manager_id, count(*) AS customers, min(c.msisdn) AS msisdn "
        "FROM profile.customer c JOIN profile.manager m ON m.id = c.manager_id "
        "GROUP BY 1, 2 ORDER BY 1, 2",
    )
    found = [dict(r) for r in rows]
    assert len({r["team_id"] for r in found}) >= 2, "the demo world should have two teams"
    return found


async def test_customer_360_brings_every_service_together(demo: Settings, graphql: GraphQL) -> None:
    msisdn = (
        await fetch(
            demo.database_url,
            "SELECT msisdn FROM warning.warning WHERE status <> 'resolved' "
            "ORDER BY risk_score DESC, msisdn LIMIT 1",
        )
    )[0]["msisdn"]
    body = await graphql(CUSTOMER_360, role="operator", msisdn=msisdn)
    assert "errors" not in body, body["errors"]
    customer = body["data"]["customer"]
    archive = (
        await fetch(
            demo.database_url,
            "SELECT c.name, c.tier, c.manager_id, m.team_id FROM profile.customer c "
            "JOIN profile.manager m ON m.id = c.manager_id WHERE c.msisdn = $1",
            msisdn,
        )
    )[0]
    assert customer["msisdn"] == msisdn
    assert customer["name"] == archive["name"]
    assert customer["tier"] == archive["tier"]
    assert customer["manager"]["id"] == archive["manager_id"]
    assert customer["manager"]["team"]["id"] == archive["team_id"] == customer["team"]["id"]
    open_signals = {
        r["signal"]
        for r in await fetch(
            demo.database_url,
            "SELECT signal FROM warning.warning WHERE msisdn = $1 AND status <> 'resolved'",
            msisdn,
        )
    }
    assert {w["signal"] for w in customer["warnings"]} == open_signals
    assert all(w["customer"]["msisdn"] == msisdn for w in customer["warnings"])
    assert customer["riskScore"]["score"] > 0
    assert {c["signal"] for c in customer["riskScore"]["components"]} == open_signals
    assert customer["managerHistory"][0]["managerId"] == archive["manager_id"]
    assert isinstance(customer["careHistory"]["tasks"], list)


async def test_a_manager_reads_their_team_only_on_every_path(
    demo: Settings, graphql: GraphQL
) -> None:
    mine, theirs = None, None
    for row in await teams_and_managers(demo):
        if mine is None:
            mine = row
        elif row["team_id"] != mine["team_id"] and theirs is None:
            theirs = row
    assert mine is not None and theirs is not None
    me = {"role": "manager", "user": mine["manager_id"], "team": mine["team_id"]}

    # By number: another team's customer is not there for me.
    body = await graphql(CUSTOMER_360, msisdn=theirs["msisdn"], **me)
    assert body["data"]["customer"] is None
    body = await graphql(CUSTOMER_360, msisdn=mine["msisdn"], **me)
    assert body["data"]["customer"]["msisdn"] == mine["msisdn"]

    # In lists: only my team, even when I ask for the other one.
    body = await graphql(PAGE, first=100, **me)
    teams = {n["teamId"] for n in body["data"]["customers"]["nodes"]}
    assert teams == {mine["team_id"]}
    body = await graphql(PAGE, first=100, filter={"teamId": theirs["team_id"]}, **me)
    assert body["data"]["customers"]["nodes"] == []

    # Nested: whatever a warning or a complaint leads to stays in my team.
    body = await graphql(
        "{ warnings(first: 100) { nodes { teamId customer { teamId } } } "
        "  complaints(first: 100) { nodes { teamId customer { teamId } } } }",
        **me,
    )
    assert "errors" not in body, body["errors"]
    for kind in ("warnings", "complaints"):
        for node in body["data"][kind]["nodes"]:
            assert node["teamId"] == mine["team_id"]
            assert node["customer"] is None or node["customer"]["teamId"] == mine["team_id"]


async def test_a_page_of_50_costs_one_call_per_service_and_loader(
    demo: Settings, graphql: GraphQL
) -> None:
    body = await graphql(PAGE, role="operator", first=50)
    assert "errors" not in body, body["errors"]
    nodes = body["data"]["customers"]["nodes"]
    assert len(nodes) == 50
    assert body["data"]["customers"]["pageInfo"]["hasNextPage"] is True
    assert any(n["warnings"] for n in nodes), "the demo should have warnings on this page"
    # profile: the page and the managers; warning: open warnings and risk; complaint: the
    # customers' complaints, then their SLA clocks.
    assert any(n["complaints"] for n in nodes), "the demo should have complaints on this page"
    assert body["extensions"]["serviceCalls"] == {"profile": 2, "warning": 2, "complaint": 2}

    # The next page starts where this one ended.
    after = body["data"]["customers"]["pageInfo"]["endCursor"]
    rest = await graphql(
        "query ($after: String) { customers(first: 50, after: $after) { nodes { msisdn } } }",
        role="operator",
        after=after,
    )
    first_page = {n["msisdn"] for n in nodes}
    second_page = {n["msisdn"] for n in rest["data"]["customers"]["nodes"]}
    assert second_page and not first_page & second_page


async def test_nested_fields_asked_ahead_cost_what_the_selection_needs(
    demo: Settings, graphql: GraphQL
) -> None:
    """The root field asks its nested loaders ahead (gateway/ahead.py): through fragments
    the answer and its calls are the same, and a field a directive skips is not asked."""
    plain = await graphql(
        "{ customers(first: 20) { nodes { msisdn manager { id name team { id } } "
        "warnings { signal } } } }",
        role="operator",
    )
    assert "errors" not in plain, plain["errors"]
    assert plain["extensions"]["serviceCalls"] == {"profile": 3, "warning": 1}
    spread = await graphql(
        """
        query { customers(first: 20) { nodes { ...Who ... on Customer { warnings { signal } } } } }
        fragment Who on Customer { msisdn boss: manager { id ...Named } }
        fragment Named on Manager { name team { id } }
        """,
        role="operator",
    )
    assert "errors" not in spread, spread["errors"]
    for node in spread["data"]["customers"]["nodes"]:
        node["manager"] = node.pop("boss")
    assert spread["data"]["customers"]["nodes"] == plain["data"]["customers"]["nodes"]
    assert spread["extensions"]["serviceCalls"] == plain["extensions"]["serviceCalls"]

    directed = """
    query ($skip: Boolean!) { customers(first: 20) {
      nodes { msisdn warnings @skip(if: $skip) { signal } manager @include(if: false) { id } } } }
    """
    skipped = await graphql(directed, role="operator", skip=True)
    assert skipped["extensions"]["serviceCalls"] == {"profile": 1}
    kept = await graphql(directed, role="operator", skip=False)
    assert kept["extensions"]["serviceCalls"] == {"profile": 1, "warning": 1}
    assert [n["warnings"] for n in kept["data"]["customers"]["nodes"]] == [
        n["warnings"] for n in plain["data"]["customers"]["nodes"]
    ]


async def test_a_service_that_is_down_leaves_nulls_and_a_coded_error(
    demo: Settings, graphql: GraphQL, services_running: Running
) -> None:
    await services_running.stop("warning")
    body = await graphql(PAGE, role="operator", first=10)
    nodes = body["data"]["customers"]["nodes"]
    assert len(nodes) == 10
    assert all(n["manager"] is not None for n in nodes if n["msisdn"])
    assert all(n["warnings"] is None and n["riskScore"] is None for n in nodes)
    assert all(isinstance(n["complaints"], list) for n in nodes)
    codes = {(e["extensions"]["code"], e["extensions"]["service"]) for e in body["errors"]}
    assert codes == {("SERVICE_UNAVAILABLE", "warning")}
    assert {e["path"][-1] for e in body["errors"]} == {"warnings", "riskScore"}


async def test_my_work_queue_has_my_warnings_tasks_and_complaints(
    demo: Settings, graphql: GraphQL
) -> None:
    manager = (
        await fetch(
            demo.database_url,
            "SELECT manager_id, team_id FROM warning.warning WHERE status <> 'resolved' "
            "AND manager_id IS NOT NULL GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1",
        )
    )[0]
    body = await graphql(
        "{ viewer { userId role team { id } } "
        "  myWorkQueue { warnings { managerId riskScore } careTasks { managerId dueOn } "
        "                complaints { handlerId nextDueAt } } }",
        role="manager",
        user=manager["manager_id"],
        team=manager["team_id"],
    )
    assert "errors" not in body, body["errors"]
    assert body["data"]["viewer"] == {
        "userId": manager["manager_id"],
        "role": "manager",
        "team": {"id": manager["team_id"]},
    }
    queue = body["data"]["myWorkQueue"]
    assert queue["warnings"], "this manager has open warnings"
    assert {w["managerId"] for w in queue["warnings"]} == {manager["manager_id"]}
    risks = [w["riskScore"] for w in queue["warnings"]]
    assert risks == sorted(risks, reverse=True)
    assert all(t["managerId"] == manager["manager_id"] for t in queue["careTasks"])
    assert all(c["handlerId"] == manager["manager_id"] for c in queue["complaints"])


@pytest.mark.parametrize("first", [0, 101])
async def test_page_sizes_are_bounded(demo: Settings, graphql: GraphQL, first: int) -> None:
    body = await graphql(PAGE, role="operator", first=first)
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "first"}


async def test_without_a_token_only_health_answers(graphql: GraphQL) -> None:
    body = await graphql("{ viewer { userId } }", role=None)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_an_unmasked_read_is_audited_with_the_request_id(
    demo: Settings, graphql: GraphQL, gateway: Any
) -> None:
    from tests.gateway.conftest import bearer

    mine = (await teams_and_managers(demo))[0]
    response = await gateway.post(
        "/graphql",
        json={
            "query": "query ($m: String!) { customer(msisdn: $m) { msisdn } }",
            "variables": {"m": mine["msisdn"]},
        },
        headers={
            **bearer("manager", mine["manager_id"], mine["team_id"]),
            "X-Request-ID": "audit-me-1",
        },
    )
    assert response.json()["data"]["customer"]["msisdn"] == mine["msisdn"]
    body = await graphql(
        "query ($m: String) { readAudit(msisdn: $m) { nodes { userId role requestId fields } } }",
        role="admin",
        m=mine["msisdn"],
    )
    entries = body["data"]["readAudit"]["nodes"]
    assert {
        "userId": mine["manager_id"],
        "role": "manager",
        "requestId": "audit-me-1",
        "fields": ["msisdn"],
    } in [{**e, "fields": e["fields"][:1]} for e in entries]
    denied = await graphql(
        "{ readAudit { nodes { id } } }", role="supervisor", team=mine["team_id"]
    )
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_the_readme_queries_answer_with_demo_data(demo: Settings, graphql: GraphQL) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    work_queue, customer_360 = re.findall(r"```graphql\n(.*?)```", readme, re.S)[:2]
    manager = (
        await fetch(
            demo.database_url,
            "SELECT w.manager_id, w.team_id, w.msisdn FROM warning.warning w "
            "WHERE w.status <> 'resolved' AND w.manager_id IS NOT NULL "
            "ORDER BY w.risk_score DESC LIMIT 1",
        )
    )[0]
    me = {"role": "manager", "user": manager["manager_id"], "team": manager["team_id"]}
    body = await graphql(work_queue, **me)
    assert "errors" not in body, body["errors"]
    assert body["data"]["myWorkQueue"]["warnings"]
    body = await graphql(customer_360, msisdn=manager["msisdn"], **me)
    assert "errors" not in body, body["errors"]
    assert body["data"]["customer"]["riskScore"]["components"]
