"""Detection: each signal fires on a history that shows it and stays quiet on a near miss."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from warning_support import DAY, History, World, snapshot

from services.complaint.contract import ComplaintOpened
from services.kit import clock
from services.kit.auth import Principal, Role
from services.kit.events import Envelope
from services.profile.contract import CustomerChurned
from services.warning import repository, service
from services.warning.consumers import consumer
from services.warning.models import Severity, Signal
from services.warning.service import CHURN_ACTOR

ADMIN = Principal(user_id="admin", role=Role.admin)

M = "13800138000"  # the subscriber under test
OTHER = "13900139000"  # a steady subscriber next to them, who must stay quiet

Case = tuple[str, dict[str, Any], Callable[[History], History]]


def plain(h: History) -> History:
    return h


FIRING: list[Case] = [
    ("contract_expiry", {"contract_end": DAY + timedelta(days=20)}, plain),
    (
        "usage_drop",
        {},
        lambda h: h.set(range(7), outgoing_calls=2, minutes=10, data_mb=100, spend=Decimal("1")),
    ),
    ("zero_calls", {}, lambda h: h.set(range(5), outgoing_calls=0, minutes=0)),
    ("competitor_hotline", {}, lambda h: h.set([3, 9], competitor_hotline_calls=1)),
    ("competitor_marketing", {}, lambda h: h.set([1, 4, 8], competitor_marketing_contacts=1)),
    ("competitor_marketing", {}, lambda h: h.set(range(7), other_network_call_share=0.7)),
    ("call_forwarding", {}, lambda h: h.set([0, 2], forwarded_to_other_network=2)),
    ("spend_below_plan", {}, lambda h: h.set(range(60), spend=Decimal("3.00"))),
    ("low_balance", {}, lambda h: h.set([0], balance=Decimal("9.50"))),
]

NEAR_MISS: list[Case] = [
    ("contract_expiry", {"contract_end": DAY + timedelta(days=31)}, plain),
    ("contract_expiry", {"contract_end": DAY - timedelta(days=1)}, plain),
    (
        "usage_drop",
        {},
        lambda h: h.set(range(7), outgoing_calls=7, minutes=33, data_mb=330, spend=Decimal("3.3")),
    ),
    ("zero_calls", {}, lambda h: h.set(range(4), outgoing_calls=0, minutes=0)),
    ("zero_calls", {}, lambda h: h.set([0, 1, 3, 4, 6], outgoing_calls=0, minutes=0)),
    # Calls resumed: eight silent days, then calls on the detection day itself (#19) ...
    ("zero_calls", {}, lambda h: h.set(range(1, 9), outgoing_calls=0, minutes=0)),
    # ... or two days before it.
    ("zero_calls", {}, lambda h: h.set(range(2, 8), outgoing_calls=0, minutes=0)),
    # A line that never makes calls (a data SIM) is not going quiet.
    ("zero_calls", {}, lambda h: h.set(range(60), outgoing_calls=0, minutes=0)),
    ("competitor_hotline", {}, lambda h: h.set([3], competitor_hotline_calls=1)),
    ("competitor_hotline", {}, lambda h: h.set([3, 20], competitor_hotline_calls=1)),
    ("competitor_marketing", {}, lambda h: h.set([1, 4], competitor_marketing_contacts=1)),
    ("competitor_marketing", {}, lambda h: h.set(range(7), other_network_call_share=0.55)),
    # Always heavy into other networks: that is how this customer lives, not a change.
    ("competitor_marketing", {}, lambda h: h.set(range(60), other_network_call_share=0.7)),
    ("call_forwarding", {}, lambda h: h.set([0, 2], forwarded_to_other_network=1)),
    ("spend_below_plan", {}, lambda h: h.set(range(60), spend=Decimal("4.20"))),
    # Too little history to judge a month's spend.
    ("spend_below_plan", {}, lambda h: h.set(range(60), spend=Decimal("3.00")).only(20)),
    ("low_balance", {}, lambda h: h.set([0], balance=Decimal("20.00"))),
    ("low_balance", {}, lambda h: h.set([1], balance=Decimal("5.00"))),
]


async def _setup(
    world: World, customer: dict[str, Any], shape: Callable[[History], History]
) -> None:
    await world.customer(M, **customer)
    await world.customer(OTHER)
    await world.usage(shape(History(M)), History(OTHER))


@pytest.mark.parametrize(("signal", "customer", "shape"), FIRING)
async def test_signal_fires_on_a_history_that_shows_it(
    world: World, signal: str, customer: dict[str, Any], shape: Callable[[History], History]
) -> None:
    await _setup(world, customer, shape)

    await world.detect()

    assert signal in await world.signals(M)
    assert await world.signals(OTHER) == set()
    [warning] = [w for w in await world.warnings(M) if w.signal == signal]
    assert warning.rule_version == 1
    assert warning.manager_id == "M0001" and warning.team_id == "T001"
    assert warning.first_detected_on == DAY


@pytest.mark.parametrize(("signal", "customer", "shape"), NEAR_MISS)
async def test_signal_stays_quiet_on_a_near_miss(
    world: World, signal: str, customer: dict[str, Any], shape: Callable[[History], History]
) -> None:
    await _setup(world, customer, shape)

    await world.detect()

    assert signal not in await world.signals(M)


async def test_evidence_reads_as_numbers_a_manager_understands(world: World) -> None:
    await world.customer(M)
    await world.usage(History(M).set(range(7), minutes=14))

    await world.detect()

    from services.warning.schemas import WarningRead

    [warning] = await world.warnings(M)
    read = WarningRead.of(warning, None)
    assert warning.evidence["metric"] == "minutes"
    assert warning.evidence["drop_pct"] == 72
    assert read.summary.startswith("通话分钟数近7天日均14，较此前30天基线日均50下降72%")


def _complaint(msisdn: str, complaint_id: str, repeat: int = 1) -> Envelope:
    event = ComplaintOpened(
        complaint_id=complaint_id,
        msisdn=msisdn,
        category="network_signal",
        channel="hotline",
        severity="high",
        opened_at=clock.now() - timedelta(minutes=5),
        repeat_count=repeat,
    )
    return Envelope(
        id=uuid.uuid4(),
        seq=1,
        type=event.event_type,
        version=1,
        producer="complaint",
        aggregate_id=complaint_id,
        occurred_at=clock.now(),  # a consumer refuses events older than the retention
        payload=event.model_dump(mode="json"),
    )


async def test_a_complaint_raises_one_complaint_warning_and_a_repeat_updates_it(
    world: World,
) -> None:
    await world.customer(M)

    results = await world.run(lambda s: consumer.receive(s, [_complaint(M, "C1")]))
    assert results[0].status == "processed"
    await world.run(lambda s: consumer.receive(s, [_complaint(M, "C2", repeat=2)]))

    [warning] = await world.warnings(M)
    assert warning.signal is Signal.complaint
    assert warning.evidence["complaint_id"] == "C2"
    assert warning.evidence["repeat_count"] == 2
    assert warning.manager_id == "M0001"
    raised = [e for e in await world.outbox() if e["type"] == "warning.raised"]
    assert len(raised) == 1 and raised[0]["payload"]["signal"] == "complaint"


async def test_a_complaint_of_a_churned_customer_raises_nothing(world: World) -> None:
    await world.customer(M, status="churned")

    await world.run(lambda s: consumer.receive(s, [_complaint(M, "C1")]))

    assert await world.warnings(M) == []


async def test_rerunning_the_same_day_changes_nothing(world: World) -> None:
    await world.customer(M, contract_end=DAY + timedelta(days=10))
    await world.usage(History(M).set([0, 2], forwarded_to_other_network=2))

    first = await world.detect()
    before = [w.model_dump() for w in await world.warnings()]
    events = await world.outbox()
    second = await world.detect()

    assert (first.raised, second.raised, second.updated, second.rescored) == (2, 0, 0, 0)
    assert [w.model_dump() for w in await world.warnings()] == before
    assert await world.outbox() == events


async def test_a_new_hit_updates_the_open_warning_instead_of_adding_one(world: World) -> None:
    await world.customer(M)
    history = History(M).set([3, 9], competitor_hotline_calls=1)
    await world.usage(history)
    await world.detect()

    await world.usage(history.set([0], competitor_hotline_calls=2))
    result = await world.detect()

    [warning] = await world.warnings(M)
    assert (result.raised, result.updated) == (0, 1)
    assert warning.evidence["calls"] == 4


async def test_risk_adds_the_weights_of_open_signals_and_sets_severity_and_due_date(
    world: World,
) -> None:
    await world.customer(M)
    await world.usage(
        History(M)
        .set([3, 9], competitor_hotline_calls=1)
        .set([0, 2], forwarded_to_other_network=2),
        History(OTHER).set([0], balance=Decimal("3")),
    )
    await world.customer(OTHER)

    await world.detect()

    hot, fwd = sorted(await world.warnings(M), key=lambda w: w.signal)
    assert {hot.signal, fwd.signal} == {Signal.competitor_hotline, Signal.call_forwarding}
    assert hot.risk_score == fwd.risk_score == 85  # 40 + 45
    assert hot.severity is Severity.critical and hot.due_on == DAY + timedelta(days=1)
    [low] = await world.warnings(OTHER)
    assert (low.risk_score, low.severity, low.due_on) == (15, Severity.low, DAY + timedelta(10))


async def test_a_churned_customer_gets_no_usage_warnings(world: World) -> None:
    await world.customer(M, status="churned")
    await world.usage(History(M).set(range(6), outgoing_calls=0, minutes=0))

    await world.detect()

    assert await world.warnings(M) == []


async def test_snapshots_apply_only_when_newer_and_move_open_warnings(world: World) -> None:
    await world.customer(M, contract_end=DAY + timedelta(days=5))
    await world.detect()

    await world.customer(M, version=3, manager_id="M0002", team_id="T002")
    await world.customer(M, version=2, manager_id="M0009", team_id="T009")

    [warning] = await world.warnings(M)
    assert (warning.manager_id, warning.team_id) == ("M0002", "T002")


async def test_a_stored_zero_baseline_does_not_break_the_night_for_everyone(world: World) -> None:
    """A rule set saved before baselines had to be positive: a subscriber with no minutes
    at all must not divide detection by zero."""
    async with world.sessions() as session, session.begin():
        current = await service.current_rules(session)
        rules = [
            r.model_dump(mode="json")
            | (
                {"params": r.params | {"min_baseline_minutes": 0}}
                if r.signal is Signal.usage_drop
                else {}
            )
            for r in service.rules_of(current)
        ]
        bands = [b.model_dump(mode="json") for b in service.bands_of(current)]
        await repository.insert_rule_set(session, 2, rules, bands, "old", "test")
    await world.customer(M)
    await world.usage(History(M).set(range(60), minutes=0))

    await world.detect()  # raised DivisionByZero for the whole run before NULLIF
    assert "usage_drop" not in await world.signals(M)


async def test_profile_reporting_a_churn_resolves_the_open_warnings_as_churned(
    world: World,
) -> None:
    await world.customer(M, contract_end=DAY + timedelta(days=5))
    await world.usage(History(M).set(range(6), outgoing_calls=0, minutes=0))
    await world.detect()
    assert {"contract_expiry", "zero_calls"} <= await world.signals(M)
    opened = len(await world.warnings(M))

    churned = CustomerChurned(
        churned_on=DAY + timedelta(days=1),
        reason="携号转网",
        customer=snapshot(M, version=2, status="churned"),
    )
    envelope = Envelope(
        id=uuid.uuid4(), seq=1, type=churned.event_type, version=1, producer="profile",
        aggregate_id=M, occurred_at=clock.now(), payload=churned.model_dump(mode="json"),
    )  # fmt: skip
    async with world.sessions() as session, session.begin():
        [result] = await consumer.receive(session, [envelope])
    assert result.status == "processed"

    warnings = await world.warnings(M)
    assert {(w.status, w.outcome, w.churn_reason) for w in warnings} == {
        ("resolved", "churned", "number")
    }
    assert all(w.resolved_by == CHURN_ACTOR and "携号转网" in w.resolution_note for w in warnings)
    resolved = [e for e in await world.outbox() if e["type"] == "warning.resolved"]
    assert len(resolved) == opened
    assert {e["payload"]["churn_reason"] for e in resolved} == {"number"}

    # Counted by the churn-reason report, and detection raises nothing more for them.
    async with world.sessions() as session:
        report = await service.churn_reason_report(
            session, ADMIN, clock.today() - timedelta(days=1), clock.today() + timedelta(days=1)
        )
    assert [(c.key, c.count) for c in report.reasons] == [("number", opened)]
    await world.detect(DAY + timedelta(days=1))
    assert [w for w in await world.warnings(M) if w.status != "resolved"] == []
