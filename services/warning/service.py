"""Rules of the warning service. Functions take a session and never commit."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from services.complaint.contract import ComplaintOpened
from services.kit import clock
from services.kit.auth import Principal, Role
from services.kit.erasure import erase_copies
from services.kit.events.publish import publish, publish_many
from services.kit.periods import instants
from services.kit.values import is_stand_in
from services.profile.contract import (
    ContactLogEntry,
    CustomerErased,
    CustomerSnapshot,
    ErasureReceipt,
    newest,
)
from services.warning import repository as repo
from services.warning.config import get_warning_settings
from services.warning.contract import (
    PRODUCER,
    WarningContactRecorded,
    WarningErasureConfirmed,
    WarningRaised,
    WarningResolved,
)
from services.warning.evidence import SIGNAL_NAMES, describe
from services.warning.exceptions import (
    CustomerNotFound,
    InvalidOutcome,
    InvalidRule,
    InvalidTransition,
    NotYourWarning,
    RuleSetNotFound,
    WarningNotFound,
)
from services.warning.models import (
    ChurnReason,
    Contact,
    Customer,
    Outcome,
    RuleSet,
    Severity,
    Signal,
    Status,
    Warning,
)
from services.warning.repository import Scope
from services.warning.rules import (
    DEFAULT_BANDS,
    Band,
    Rule,
    Thresholds,
    default_rules,
    validate_bands,
    validate_rule,
)
from services.warning.schemas import (
    BandsUpdate,
    ChurnReasonReport,
    ContactCreate,
    Count,
    DetectionResult,
    OpenReport,
    Rate,
    Resolve,
    RetentionReport,
    RiskComponent,
    RiskRead,
    RuleUpdate,
    UsageRow,
)

SYSTEM_ACTOR = "system:warning"
CHURN_ACTOR = "system:profile-churn"
"""Who resolves warnings when profile reports the customer churned."""

logger = logging.getLogger("keepwell.warning")


def business_today() -> date:
    return clock.today(ZoneInfo(get_warning_settings().time_zone))


# -- scope --------------------------------------------------------------------------------------


def scope_of(principal: Principal) -> Scope:
    """Whose warnings a principal reads: admins and operators all, supervisors and managers
    their team's (a manager whose token names no team: their own), partners all (the routes
    admit them with ``warnings:read`` only, and show them a partner's view). Changes are
    narrower for managers (:func:`_check_may_change`)."""
    match principal.role:
        case Role.admin | Role.operator | Role.partner:
            return Scope()
        case Role.supervisor | Role.manager if principal.team_id:
            return Scope(team_id=principal.team_id)
        case Role.manager:
            return Scope(manager_id=principal.user_id)
        case Role.supervisor:
            raise NotYourWarning("主管的令牌须注明团队")
    raise NotYourWarning(f"角色 {principal.role.value} 无权查看预警")


def _check_readable(principal: Principal, warning: Warning) -> None:
    if not _in_scope(scope_of(principal), warning):
        # Not 403: another team's warning is not the caller's to know of.
        raise WarningNotFound(f"找不到预警 {warning.id}")


def _check_may_change(principal: Principal, warning: Warning) -> None:
    """Managers follow up only the warnings assigned to them; supervisors their team's (the
    read scope already limits them to it); admins and operators any."""
    _check_readable(principal, warning)
    if principal.role is Role.manager and warning.manager_id != principal.user_id:
        raise NotYourWarning(f"预警 {warning.id} 已分配给其他客户经理")


# -- usage --------------------------------------------------------------------------------------


async def store_usage(session: AsyncSession, rows: Sequence[UsageRow]) -> int:
    """Store rows; a subscriber-day sent twice keeps the later row, as if sent one by one."""
    latest = {(r.msisdn, r.day): r.as_tuple() for r in rows}
    await repo.upsert_usage(session, list(latest.values()))
    return len(rows)


# -- customers (read model) ---------------------------------------------------------------------


def customer_row(s: CustomerSnapshot) -> tuple[Any, ...]:
    return (
        s.msisdn,
        s.version,
        s.name,
        s.status,
        s.tier,
        s.manager_id,
        s.team_id,
        s.plan_name,
        Decimal(s.plan_fee),
        s.contract_end,
        s.customer_id,
    )


async def apply_snapshots(session: AsyncSession, snapshots: Sequence[CustomerSnapshot]) -> int:
    """Upsert newer snapshots; open warnings follow a customer to their new manager."""
    latest = newest(snapshots)
    applied = await repo.upsert_customers(session, [customer_row(s) for s in latest])
    await repo.sync_assignments(session, [s.msisdn for s in latest])
    return applied


# -- rules --------------------------------------------------------------------------------------


async def current_rules(session: AsyncSession) -> RuleSet:
    """The current rule set; the defaults become version 1 on first use."""
    found = await repo.current_rule_set(session)
    if found is not None:
        return found
    created = await repo.insert_rule_set(
        session,
        1,
        [r.model_dump(mode="json") for r in default_rules()],
        [b.model_dump(mode="json") for b in DEFAULT_BANDS],
        "defaults",
        SYSTEM_ACTOR,
    )
    found = created or await repo.current_rule_set(session)
    assert found is not None
    return found


async def rule_set(session: AsyncSession, version: int) -> RuleSet:
    found = await repo.get_rule_set(session, version)
    if found is None:
        raise RuleSetNotFound(f"找不到规则集版本 {version}", field="version")
    return found


def rules_of(rule_set: RuleSet) -> list[Rule]:
    return [Rule.model_validate(r) for r in rule_set.rules]


def bands_of(rule_set: RuleSet) -> list[Band]:
    return [Band.model_validate(b) for b in rule_set.bands]


async def _locked_current(session: AsyncSession) -> RuleSet:
    """The current rule set, read after taking the lock that serialises rule edits: an edit
    read before it would build on a version another edit is replacing, and undo it."""
    await repo.lock_detection(session)
    return await current_rules(session)


async def _new_version(
    session: AsyncSession,
    current: RuleSet,
    rules: list[Rule],
    bands: list[Band],
    note: str,
    principal: Principal,
) -> RuleSet:
    Thresholds(rules)  # every signal still has a default rule
    created = await repo.insert_rule_set(
        session,
        current.version + 1,
        [r.model_dump(mode="json") for r in rules],
        [b.model_dump(mode="json") for b in bands],
        note,
        principal.user_id,
    )
    assert created is not None  # the lock serialises writers
    return created


async def update_rule(
    session: AsyncSession, signal: Signal, change: RuleUpdate, principal: Principal
) -> RuleSet:
    """A new rule set version with one signal's rule (or tier override) changed."""
    current = await _locked_current(session)
    rules = rules_of(current)
    base = next(
        (r for r in rules if r.signal == signal and r.tier == change.tier),
        next(r for r in rules if r.signal == signal and r.tier is None),
    )
    updated = Rule(
        signal=signal,
        tier=change.tier,
        enabled=base.enabled if change.enabled is None else change.enabled,
        weight=base.weight if change.weight is None else change.weight,
        cooling_off_days=(
            base.cooling_off_days if change.cooling_off_days is None else change.cooling_off_days
        ),
        params={**base.params, **(change.params or {})},
    )
    updated = validate_rule(updated)
    rules = [r for r in rules if not (r.signal == signal and r.tier == change.tier)] + [updated]
    return await _new_version(session, current, rules, bands_of(current), change.note, principal)


async def remove_override(
    session: AsyncSession, signal: Signal, tier: str, principal: Principal
) -> RuleSet:
    current = await _locked_current(session)
    rules = rules_of(current)
    kept = [r for r in rules if not (r.signal == signal and r.tier == tier)]
    if len(kept) == len(rules):
        raise InvalidRule(f"{signal.value} 没有 {tier} 等级的单独规则", field="tier")
    note = f"removed the {tier} override of {signal.value}"
    return await _new_version(session, current, kept, bands_of(current), note, principal)


async def update_bands(session: AsyncSession, change: BandsUpdate, principal: Principal) -> RuleSet:
    current = await _locked_current(session)
    bands = validate_bands(change.bands)
    return await _new_version(session, current, rules_of(current), bands, change.note, principal)


# -- detection ----------------------------------------------------------------------------------


async def run_detection(session: AsyncSession, day: date) -> DetectionResult:
    """Evaluate every usage and contract signal for ``day`` over all subscribers.

    Idempotent: a second run of the same day finds the same evidence and writes nothing.
    """
    await repo.lock_detection(session)
    current = await current_rules(session)
    bands = bands_of(current)
    started = perf_counter()
    detected = await repo.detect(
        session,
        day=day,
        thresholds=Thresholds(rules_of(current)),
        version=current.version,
        max_due_days=max(b.due_days for b in bands),
        time_zone=get_warning_settings().time_zone,
        work_mem_mb=get_warning_settings().detect_work_mem_mb,
    )
    rescored = await repo.rescore(session, bands=bands, as_of=day)
    query_seconds = perf_counter() - started
    raised = await repo.warnings_by_id(session, detected.raised)
    await publish_many(session, [(_raised(w), w.msisdn) for w in raised], actor=SYSTEM_ACTOR)
    result = DetectionResult(
        day=day,
        rule_version=current.version,
        raised=len(detected.raised),
        updated=detected.updated,
        rescored=rescored,
        query_seconds=round(query_seconds, 3),
        publish_seconds=round(perf_counter() - started - query_seconds, 3),
    )
    logger.info("detection %s", result.model_dump_json())
    return result


async def _publish_raised(session: AsyncSession, w: Warning, actor: str | None) -> None:
    await publish(session, _raised(w), aggregate_id=w.msisdn, actor=actor)


def _raised(w: Warning) -> WarningRaised:
    assert w.id is not None
    return WarningRaised(
        warning_id=w.id,
        msisdn=w.msisdn,
        signal=w.signal.value,
        severity=w.severity.value,
        risk_score=w.risk_score,
        summary=describe(w.signal, w.evidence),
        evidence=w.evidence,
        rule_version=w.rule_version,
        manager_id=w.manager_id,
        team_id=w.team_id,
        due_on=w.due_on,
    )


async def raise_complaint_warning(
    session: AsyncSession, event: ComplaintOpened, actor: str | None
) -> Warning | None:
    """A complaint is a churn signal: open (or refresh) the subscriber's complaint warning."""
    current = await current_rules(session)
    customer = await repo.get_customer(session, event.msisdn)
    rule = Thresholds(rules_of(current)).rule(Signal.complaint, customer.tier if customer else None)
    if not rule.enabled or (customer is not None and customer.status == "churned"):
        return None
    day = event.opened_at.astimezone(ZoneInfo(get_warning_settings().time_zone)).date()
    evidence = {
        "complaint_id": event.complaint_id,
        "category": event.category,
        "channel": event.channel,
        "severity": event.severity,
        "opened_at": event.opened_at.isoformat(),
        "repeat_count": event.repeat_count,
    }
    bands = bands_of(current)
    existing = await repo.open_warning(session, event.msisdn, Signal.complaint)
    if existing is not None:
        existing.evidence = evidence
        existing.last_detected_on = max(existing.last_detected_on, day)
        existing.rule_version = current.version
        existing.weight = rule.weight
        existing.updated_at = clock.now()
        await session.flush()
        await repo.rescore(session, bands=bands, as_of=day, msisdns=[event.msisdn])
        return existing
    warning = await repo.insert_warning(
        session,
        Warning(
            msisdn=event.msisdn,
            signal=Signal.complaint,
            status=Status.open,
            severity=Severity.low,
            risk_score=0,
            weight=rule.weight,
            rule_version=current.version,
            evidence=evidence,
            first_detected_on=day,
            last_detected_on=day,
            due_on=day + timedelta(days=max(b.due_days for b in bands)),
            manager_id=customer.manager_id if customer else None,
            team_id=customer.team_id if customer else None,
        ),
    )
    await repo.rescore(session, bands=bands, as_of=day, msisdns=[event.msisdn])
    await session.refresh(warning)
    await _publish_raised(session, warning, actor)
    return warning


# -- follow-up ----------------------------------------------------------------------------------


async def get_warning(session: AsyncSession, warning_id: int, principal: Principal) -> Warning:
    warning = await repo.get_warning(session, warning_id)
    if warning is None:
        raise WarningNotFound(f"找不到预警 {warning_id}")
    _check_readable(principal, warning)
    return warning


async def _for_update(session: AsyncSession, warning_id: int, principal: Principal) -> Warning:
    warning = await repo.get_warning(session, warning_id, lock=True)
    if warning is None:
        raise WarningNotFound(f"找不到预警 {warning_id}")
    _check_may_change(principal, warning)
    return warning


async def record_contact(
    session: AsyncSession, warning_id: int, data: ContactCreate, principal: Principal
) -> Contact:
    """open -> in_progress on the first contact; later contacts are logged too."""
    warning = await _for_update(session, warning_id, principal)
    if warning.status is Status.resolved:
        raise InvalidTransition(f"预警 {warning_id} 已处理（{warning.outcome}），不能再记录联系")
    [contact] = await _record(session, [warning], data, principal)
    return contact


async def record_customer_contact(
    session: AsyncSession, msisdn: str, data: ContactCreate, principal: Principal
) -> list[Contact]:
    """One contact (a call about everything at once) recorded against all of a customer's
    open warnings: linked to each of them, one entry in the customer's contact log."""
    warnings = await repo.open_warnings_of(session, msisdn, lock=True)
    if not warnings:
        raise WarningNotFound(f"客户 {msisdn} 没有未处理的预警", field="msisdn")
    for warning in warnings:
        _check_may_change(principal, warning)
    return await _record(session, warnings, data, principal)


async def _record(
    session: AsyncSession, warnings: list[Warning], data: ContactCreate, principal: Principal
) -> list[Contact]:
    at = data.at or clock.now()
    contacts = []
    for warning in warnings:
        assert warning.id is not None
        contacts.append(
            await repo.add_contact(
                session,
                Contact(
                    warning_id=warning.id,
                    msisdn=warning.msisdn,
                    channel=data.channel.value,
                    direction=data.direction.value,
                    outcome=data.outcome.value,
                    at=at,
                    by=principal.user_id,
                    note=data.note,
                ),
            )
        )
        warning.status = Status.in_progress
        warning.contacted_at = warning.contacted_at or at
        warning.updated_at = clock.now()
    await session.flush()
    first, contact = warnings[0], contacts[0]
    entry = ContactLogEntry(
        msisdn=first.msisdn,
        channel=contact.channel,
        direction=contact.direction,
        at=at,
        by=principal.user_id,
        outcome=contact.outcome,
        note=contact.note or None,
        source="warning",
        # The first link's id: the same contact on the other warnings is not logged again.
        source_ref=f"warning-contact:{contact.id}",
    )
    await publish(
        session,
        WarningContactRecorded(warning_id=first.id or 0, contact=entry),
        aggregate_id=first.msisdn,
        actor=principal.user_id,
    )
    return contacts


def _check_outcome(data: Resolve) -> None:
    if data.outcome is Outcome.retained:
        if data.retention_action is None:
            raise InvalidOutcome(
                "挽留成功须注明所用的挽留措施",
                field="retention_action",
            )
        if data.churn_reason is not None:
            raise InvalidOutcome("挽留成功的客户没有离网原因", field="churn_reason")
    elif data.outcome is Outcome.churned:
        if data.churn_reason is None:
            raise InvalidOutcome("已离网须注明离网原因", field="churn_reason")
    else:
        if data.retention_action is not None:
            raise InvalidOutcome("误报没有挽留措施", field="retention_action")
        if data.churn_reason is not None:
            raise InvalidOutcome("误报没有离网原因", field="churn_reason")


async def resolve(
    session: AsyncSession, warning_id: int, data: Resolve, principal: Principal
) -> Warning:
    """in_progress -> resolved with an outcome. Retained or churned needs a contact first;
    a false alarm may be closed straight from open."""
    _check_outcome(data)
    warning = await _for_update(session, warning_id, principal)
    if warning.status is Status.resolved:
        raise InvalidTransition(f"预警 {warning_id} 已处理（{warning.outcome}）")
    if warning.status is Status.open and data.outcome is not Outcome.false_alarm:
        raise InvalidTransition(
            f"预警 {warning_id} 尚未跟进：请先记录与客户的联系，再以 {data.outcome.value} 结案"
        )
    now = clock.now()
    warning.status = Status.resolved
    warning.outcome = data.outcome
    warning.retention_action = data.retention_action
    warning.churn_reason = data.churn_reason
    warning.resolution_note = data.note
    warning.resolved_at = now
    warning.resolved_by = principal.user_id
    warning.updated_at = now
    await session.flush()
    current = await current_rules(session)
    await repo.rescore(
        session, bands=bands_of(current), as_of=business_today(), msisdns=[warning.msisdn]
    )
    await publish(
        session,
        WarningResolved(
            warning_id=warning_id,
            msisdn=warning.msisdn,
            signal=warning.signal.value,
            outcome=data.outcome.value,
            retention_action=data.retention_action.value if data.retention_action else None,
            churn_reason=data.churn_reason.value if data.churn_reason else None,
            resolved_by=principal.user_id,
            manager_id=warning.manager_id,
        ),
        aggregate_id=warning.msisdn,
        actor=principal.user_id,
    )
    return warning


_CHURN_KEYWORDS: tuple[tuple[ChurnReason, tuple[str, ...]], ...] = (
    (ChurnReason.number, ("携号转网", "号码", "转网", "number")),
    (ChurnReason.network_quality, ("信号", "网络", "network", "signal")),
    (ChurnReason.tariff, ("资费", "价格", "套餐", "话费", "tariff", "price")),
    (ChurnReason.service, ("服务", "态度", "service")),
)


def churn_reason_of(reason: str) -> ChurnReason:
    """Profile's free-text churn reason as one of ours (the text itself goes in the note)."""
    text = reason.strip().lower()
    if text in ChurnReason.__members__:
        return ChurnReason(text)
    for value, words in _CHURN_KEYWORDS:
        if any(word in text for word in words):
            return value
    return ChurnReason.other


async def resolve_for_churn(
    session: AsyncSession, msisdn: str, churned_on: date, reason: str
) -> list[Warning]:
    """Profile reports the customer gone: their open warnings are resolved as churned with
    that reason, by the system (an outcome the retention and churn-reason reports count)."""
    warnings = await repo.open_warnings_of(session, msisdn, lock=True)
    if not warnings:
        return []
    now = clock.now()
    why = churn_reason_of(reason)
    for warning in warnings:
        warning.status = Status.resolved
        warning.outcome = Outcome.churned
        warning.churn_reason = why
        warning.retention_action = None
        warning.resolution_note = f"客户已于 {churned_on} 离网：{reason or '未说明原因'}"[:1000]
        warning.resolved_at = now
        warning.resolved_by = CHURN_ACTOR
        warning.updated_at = now
    await session.flush()
    current = await current_rules(session)
    await repo.rescore(session, bands=bands_of(current), as_of=business_today(), msisdns=[msisdn])
    await publish_many(
        session,
        [
            (
                WarningResolved(
                    warning_id=w.id or 0,
                    msisdn=msisdn,
                    signal=w.signal.value,
                    outcome=Outcome.churned.value,
                    retention_action=None,
                    churn_reason=why.value,
                    resolved_by=CHURN_ACTOR,
                    manager_id=w.manager_id,
                ),
                msisdn,
            )
            for w in warnings
        ],
        actor=CHURN_ACTOR,
    )
    return warnings


async def risk_of(session: AsyncSession, msisdn: str, principal: Principal) -> RiskRead:
    scope = scope_of(principal)
    customer = await repo.get_customer(session, msisdn)
    warnings = await repo.open_warnings_of(session, msisdn)
    if not _risk_visible(scope, customer, warnings):
        raise CustomerNotFound(f"{msisdn} 不是在册客户", field="msisdn")
    return _risk_read(msisdn, warnings, validate_bands(bands_of(await current_rules(session))))


async def risks_of(
    session: AsyncSession, msisdns: Sequence[str], principal: Principal
) -> list[RiskRead]:
    """:func:`risk_of` for several numbers in three queries whatever their count: one risk
    per number the single read would answer (a customer in the caller's scope), in the
    order asked; the others are left out."""
    scope = scope_of(principal)
    if not msisdns:
        return []
    found: dict[str, list[Warning]] = defaultdict(list)
    for w in await repo.open_warnings_of_many(session, msisdns):
        found[w.msisdn].append(w)
    customers = await repo.customers_among(session, msisdns)
    bands = validate_bands(bands_of(await current_rules(session)))
    return [
        _risk_read(msisdn, found.get(msisdn, []), bands)
        for msisdn in msisdns
        if _risk_visible(scope, customers.get(msisdn), found.get(msisdn, []))
    ]


def _in_scope(scope: Scope, row: Warning | Customer) -> bool:
    return (scope.manager_id is None or row.manager_id == scope.manager_id) and (
        scope.team_id is None or row.team_id == scope.team_id
    )


def _risk_visible(scope: Scope, customer: Customer | None, warnings: Sequence[Warning]) -> bool:
    """A customer's risk is for whoever may read the customer (their manager and team in the
    copy); a number missing from the copy, for whoever may read all its open warnings. The
    others get 404, as for a number that is not a customer: another team's customers are
    not the caller's to know of."""
    if customer is not None:
        return _in_scope(scope, customer)
    return bool(warnings) and all(_in_scope(scope, w) for w in warnings)


def _risk_read(msisdn: str, warnings: Sequence[Warning], bands: list[Band]) -> RiskRead:
    """``bands`` as :func:`validate_bands` orders them (highest first)."""
    score = min(100, sum(w.weight for w in warnings))
    severity = None
    if warnings:
        severity = next(b.severity for b in bands if b.min_score <= score)
    return RiskRead(
        msisdn=msisdn,
        score=score,
        severity=severity,
        components=[
            RiskComponent(
                signal=w.signal,
                signal_name=SIGNAL_NAMES[w.signal],
                weight=w.weight,
                warning_id=w.id or 0,
                summary=describe(w.signal, w.evidence),
            )
            for w in warnings
        ],
    )


# -- reports ------------------------------------------------------------------------------------


async def open_report(session: AsyncSession, principal: Principal) -> OpenReport:
    scope = scope_of(principal)

    async def counts(column: str) -> list[Count]:
        return [
            Count(key=None if k is None else str(k), count=n)
            for k, n in await repo.open_counts(session, scope, column)
        ]

    return OpenReport(
        by_signal=await counts("signal"),
        by_severity=await counts("severity"),
        by_manager=await counts("manager_id"),
    )


def _rates(rows: list[tuple[Any, str, int]]) -> list[Rate]:
    by_key: dict[str | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for key, outcome, n in rows:
        by_key[None if key is None else str(key)][str(outcome)] += n
    rates = []
    for key, counts in by_key.items():
        retained, churned = counts[Outcome.retained], counts[Outcome.churned]
        decided = retained + churned
        rates.append(
            Rate(
                key=key,
                retained=retained,
                churned=churned,
                false_alarm=counts[Outcome.false_alarm],
                success_rate=round(retained / decided, 4) if decided else None,
            )
        )
    return sorted(rates, key=lambda r: (-(r.retained + r.churned), r.key or ""))


async def retention_report(
    session: AsyncSession, principal: Principal, period_from: date, period_to: date
) -> RetentionReport:
    lo, hi = instants(period_from, period_to)
    scope = scope_of(principal)
    by_action = [
        row
        for row in await repo.outcome_counts(session, scope, "retention_action", lo, hi)
        if row[0] is not None
    ]
    by_signal = await repo.outcome_counts(session, scope, "signal", lo, hi)
    return RetentionReport(
        period_from=period_from,
        period_to=period_to,
        by_action=_rates(by_action),
        by_signal=_rates(by_signal),
    )


async def churn_reason_report(
    session: AsyncSession, principal: Principal, period_from: date, period_to: date
) -> ChurnReasonReport:
    lo, hi = instants(period_from, period_to)
    scope = scope_of(principal)
    rows = await repo.outcome_counts(session, scope, "churn_reason", lo, hi)
    counts: dict[str, int] = defaultdict(int)
    for reason, outcome, n in rows:
        if outcome == Outcome.churned and reason is not None:
            counts[str(reason)] += n
    reasons = [Count(key=k, count=n) for k, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    return ChurnReasonReport(period_from=period_from, period_to=period_to, reasons=reasons)


# -- erasure (PIPL) -----------------------------------------------------------------------------

# Tables keyed by number and their free text; warnings and follow-ups stay (under the
# stand-in), so the reports count them as before.
ERASED_COLUMNS: dict[str, dict[str, Any]] = {
    "warning": {"resolution_note": ""},
    "contact": {"note": ""},
    "daily_usage": {},
}


async def erase_customer(session: AsyncSession, event: CustomerErased) -> None:
    """Anonymise what warning holds of an erased customer and confirm it to profile. A
    replay of the event, scrubbed once every service confirmed, finds nothing to do."""
    if is_stand_in(event.msisdn):
        return
    counts = await erase_copies(session, PRODUCER, event.msisdn, event.stand_in, ERASED_COLUMNS)
    await apply_snapshots(session, [event.customer])
    await publish(
        session,
        WarningErasureConfirmed(
            receipt=ErasureReceipt(erasure_id=event.erasure_id, service=PRODUCER, counts=counts)
        ),
        aggregate_id=f"erasure:{event.erasure_id}",
    )
