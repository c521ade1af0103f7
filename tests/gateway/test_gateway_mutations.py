"""Changing things through the gateway: each workflow's mutation, and every expected
failure as a typed result with a stable code (nothing changed when one comes back)."""

from __future__ import annotations

from typing import Any

from services.kit.config import Settings
from tests.gateway.conftest import GraphQL, fetch

UPDATE = """
mutation ($msisdn: String!, $version: Int!, $patch: CustomerPatch!) {
  updateCustomer(msisdn: $msisdn, version: $version, patch: $patch) {
    __typename
    ... on Customer { version tags }
    ... on Problem { code message }
    ... on ValidationFailed { field }
  }
}
"""


async def a_customer(settings: Settings) -> dict[str, Any]:
    row = (
        await fetch(
            settings.database_url,
            "SELECT c.msisdn, c.version, c.manager_id, m.team_id FROM profile.customer c "
            "JOIN profile.manager m ON m.id = c.manager_id ORDER BY c.msisdn LIMIT 1",
        )
    )[0]
    return dict(row)


async def test_updating_a_customer_checks_the_version(demo: Settings, graphql: GraphQL) -> None:
    c = await a_customer(demo)
    patch = {"tags": ["高价值", "商务"]}
    body = await graphql(
        UPDATE, role="operator", msisdn=c["msisdn"], version=c["version"], patch=patch
    )
    assert body["data"]["updateCustomer"] == {
        "__typename": "Customer",
        "version": c["version"] + 1,
        "tags": ["高价值", "商务"],
    }
    stale = await graphql(
        UPDATE, role="operator", msisdn=c["msisdn"], version=c["version"], patch={"tags": []}
    )
    assert stale["data"]["updateCustomer"]["__typename"] == "StaleVersion"
    assert stale["data"]["updateCustomer"]["code"] == "stale_version"
    tags = await fetch(
        demo.database_url, "SELECT tags FROM profile.customer WHERE msisdn = $1", c["msisdn"]
    )
    assert "高价值" in tags[0]["tags"]

    bad = await graphql(
        UPDATE,
        role="operator",
        msisdn=c["msisdn"],
        version=c["version"] + 1,
        patch={"preferredHoursStart": 30},
    )
    assert bad["data"]["updateCustomer"]["__typename"] == "ValidationFailed"
    assert bad["data"]["updateCustomer"]["field"] == "preferred_hours_start"

    missing = await graphql(UPDATE, role="operator", msisdn="13000000000", version=1, patch=patch)
    assert missing["data"]["updateCustomer"]["__typename"] == "NotFound"


async def test_a_contact_logged_shows_in_the_contact_log(demo: Settings, graphql: GraphQL) -> None:
    c = await a_customer(demo)
    who = {"role": "manager", "user": c["manager_id"], "team": c["team_id"]}
    body = await graphql(
        """mutation ($msisdn: String!) {
             logContact(msisdn: $msisdn, contact: {channel: call, outcome: reached,
                        note: "回访：客户对套餐满意"}) {
               __typename ... on ContactEntry { channel by note }
             }
           }""",
        msisdn=c["msisdn"],
        **who,
    )
    assert body["data"]["logContact"] == {
        "__typename": "ContactEntry",
        "channel": "call",
        "by": c["manager_id"],
        "note": "回访：客户对套餐满意",
    }
    log = await graphql(
        "query ($m: String!) { customer(msisdn: $m) { contactLog(first: 1) { nodes { note } } } }",
        m=c["msisdn"],
        **who,
    )
    assert log["data"]["customer"]["contactLog"]["nodes"] == [{"note": "回访：客户对套餐满意"}]


async def test_a_warning_followed_up_and_resolved(demo: Settings, graphql: GraphQL) -> None:
    w = (
        await fetch(
            demo.database_url,
            "SELECT w.id, w.manager_id, w.team_id FROM warning.warning w "
            "WHERE w.status = 'open' AND w.manager_id IS NOT NULL ORDER BY w.id LIMIT 1",
        )
    )[0]
    owner = {"role": "manager", "user": w["manager_id"], "team": w["team_id"]}
    follow = """mutation ($id: ID!) {
      followUpWarning(id: $id, contact: {channel: call, outcome: reached}) {
        __typename ... on Warning { status } ... on Problem { code }
      }
    }"""
    other = await graphql(
        follow, role="manager", user="someone-else", team=w["team_id"], id=w["id"]
    )
    assert other["data"]["followUpWarning"] == {
        "__typename": "Forbidden",
        "code": "not_your_warning",
    }
    done = await graphql(follow, id=w["id"], **owner)
    assert done["data"]["followUpWarning"] == {"__typename": "Warning", "status": "in_progress"}

    resolve = """mutation ($id: ID!, $r: WarningResolution!) {
      resolveWarning(id: $id, resolution: $r) {
        __typename ... on Warning { status outcome retentionAction }
        ... on ValidationFailed { code field }
      }
    }"""
    incomplete = await graphql(resolve, id=w["id"], r={"outcome": "retained"}, **owner)
    assert incomplete["data"]["resolveWarning"]["__typename"] == "ValidationFailed"
    resolved = await graphql(
        resolve, id=w["id"], r={"outcome": "retained", "retentionAction": "plan_change"}, **owner
    )
    assert resolved["data"]["resolveWarning"] == {
        "__typename": "Warning",
        "status": "resolved",
        "outcome": "retained",
        "retentionAction": "plan_change",
    }
    missing = await graphql(follow, id="999999", **owner)
    assert missing["data"]["followUpWarning"]["__typename"] == "NotFound"


async def test_a_complaint_step_out_of_order_names_the_allowed_steps(
    demo: Settings, graphql: GraphQL
) -> None:
    c = await a_customer(demo)
    opened = await graphql(
        """mutation ($m: String!) {
             openComplaint(complaint: {msisdn: $m, channel: "hotline", category: "billing",
                                       description: "未订购的增值业务每月扣费"}) {
               __typename ... on Complaint { id state version allowedNext }
             }
           }""",
        role="operator",
        m=c["msisdn"],
    )
    ticket = opened["data"]["openComplaint"]
    assert ticket["__typename"] == "Complaint"
    close = await graphql(
        """mutation ($id: ID!, $v: Int!) {
             closeComplaint(id: $id, step: {version: $v, satisfaction: 5}) {
               __typename ... on InvalidTransition { code allowed }
             }
           }""",
        role="operator",
        id=ticket["id"],
        v=ticket["version"],
    )
    refused = close["data"]["closeComplaint"]
    assert refused["__typename"] == "InvalidTransition"
    assert refused["code"] == "invalid_transition"
    assert "acknowledge" in refused["allowed"]
    acked = await graphql(
        """mutation ($id: ID!, $v: Int!) {
             acknowledgeComplaint(id: $id, step: {version: $v, emotion: "客户很生气，已致歉",
                                                  needs: ["be_heard", "fix_now"]}) {
               __typename ... on Complaint { state needs version }
             }
           }""",
        role="operator",
        id=ticket["id"],
        v=ticket["version"],
    )
    assert acked["data"]["acknowledgeComplaint"]["__typename"] == "Complaint"
    assert acked["data"]["acknowledgeComplaint"]["version"] == ticket["version"] + 1


async def test_a_campaign_from_draft_to_approved_by_another_supervisor(
    demo: Settings, graphql: GraphQL
) -> None:
    c = await a_customer(demo)
    author = {"role": "supervisor", "user": "sup-a", "team": c["team_id"]}
    made = await graphql(
        """mutation {
             createCampaign(campaign: {name: "冬季关怀",
                                       template: "{honorific}您好，天冷注意保暖。",
                                       audience: {tiers: [diamond, gold]}}) {
               __typename ... on Campaign { id status teamId }
             }
           }""",
        **author,
    )
    campaign = made["data"]["createCampaign"]
    assert campaign["__typename"] == "Campaign" and campaign["status"] == "draft"
    step = """mutation ($id: ID!) { %s(id: $id) {
      __typename ... on Campaign { status } ... on Problem { code } } }"""
    early = await graphql(
        step % "approveCampaign",
        id=campaign["id"],
        role="supervisor",
        user="sup-b",
        team=c["team_id"],
    )
    assert early["data"]["approveCampaign"] == {
        "__typename": "InvalidTransition",
        "code": "invalid_transition",
    }
    previewed = await graphql(step % "previewCampaign", id=campaign["id"], **author)
    assert previewed["data"]["previewCampaign"] == {"__typename": "Campaign", "status": "preview"}
    own = await graphql(step % "approveCampaign", id=campaign["id"], **author)
    assert own["data"]["approveCampaign"]["__typename"] in ("Forbidden", "Conflict")
    approved = await graphql(
        step % "approveCampaign",
        id=campaign["id"],
        role="supervisor",
        user="sup-b",
        team=c["team_id"],
    )
    assert approved["data"]["approveCampaign"]["__typename"] == "Campaign"
    assert approved["data"]["approveCampaign"]["status"] in ("approved", "dispatching", "completed")


async def test_a_manager_cannot_use_staff_only_admin_mutations(
    demo: Settings, graphql: GraphQL
) -> None:
    body = await graphql(
        'mutation { revokeApiKey(id: "nope") { __typename ... on Problem { code } } }',
        role="manager",
        user="M0001",
        team="T001",
    )
    assert body["data"]["revokeApiKey"] == {"__typename": "Forbidden", "code": "forbidden"}


async def test_teams_managers_and_a_new_customer(demo: Settings, graphql: GraphQL) -> None:
    made = await graphql(
        """mutation {
             createTeam(team: {id: "T900", name: "杭州西湖团队", region: "浙江",
                               supervisorName: "周主管"}) { __typename ... on Team { id region } }
             createManager(manager: {id: "M0900", name: "钱经理", phone: "13800009000",
                                     teamId: "T900"}) { __typename ... on Manager { id teamId } }
           }""",
        role="admin",
    )
    assert made["data"] == {
        "createTeam": {"__typename": "Team", "id": "T900", "region": "浙江"},
        "createManager": {"__typename": "Manager", "id": "M0900", "teamId": "T900"},
    }
    customer = await graphql(
        """mutation {
             createCustomer(customer: {msisdn: "13900009001", name: "孙丽", region: "浙江",
                                       city: "杭州", joinDate: "2019-04-01",
                                       planName: "全球通188", planFee: "188.00", tier: gold,
                                       managerId: "M0900"}) {
               __typename ... on Customer { msisdn tier manager { id team { id } } }
               ... on ValidationFailed { field }
             }
           }""",
        role="admin",
    )
    assert customer["data"]["createCustomer"] == {
        "__typename": "Customer",
        "msisdn": "13900009001",
        "tier": "gold",
        "manager": {"id": "M0900", "team": {"id": "T900"}},
    }
    again = await graphql(
        """mutation { createCustomer(customer: {msisdn: "13900009001", name: "孙丽",
             region: "浙江", city: "杭州", joinDate: "2019-04-01", planName: "全球通188",
             planFee: "188.00"}) { __typename ... on Problem { code } } }""",
        role="admin",
    )
    assert again["data"]["createCustomer"] == {"__typename": "Conflict", "code": "customer_exists"}
    left = await graphql(
        'mutation { managerLeaves(id: "M0900") { __typename ... on Manager { active leftOn } } }',
        role="admin",
    )
    assert left["data"]["managerLeaves"]["__typename"] == "Manager"
    assert left["data"]["managerLeaves"]["active"] is False
    rules = await graphql("{ ruleSet { version rules { signal weight } bands { severity } } }")
    assert rules["data"]["ruleSet"]["rules"] and rules["data"]["ruleSet"]["bands"]
