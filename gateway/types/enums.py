"""The services' enumerations as GraphQL enums: one definition, the service's own.

``strawberry.enum`` registers each class in place; the names below are the classes
themselves, so they type-check as the services' enums do."""

from __future__ import annotations

import strawberry

from services.care.models import CampaignStatus, RecipientState, TaskKind, TaskStatus
from services.kit.auth import Role
from services.profile.contract import (
    ContactChannel,
    ContactDirection,
    ContactOutcome,
    CustomerStatus,
    Lifecycle,
    ServiceLevel,
    Tier,
)
from services.profile.models import Gender, ValueQuadrant
from services.warning.models import Outcome, RetentionAction, Severity, Signal, Status

__all__ = [
    "CampaignState",
    "CareMessageState",
    "CareTaskKind",
    "CareTaskStatus",
    "ContactChannel",
    "ContactDirection",
    "ContactOutcome",
    "CustomerStatus",
    "Gender",
    "Lifecycle",
    "RetentionActionKind",
    "Role",
    "ServiceLevel",
    "Tier",
    "ValueQuadrant",
    "WarningOutcome",
    "WarningSeverity",
    "WarningSignal",
    "WarningStatus",
]

strawberry.enum(Role, description="What a caller may do (角色).")
strawberry.enum(Tier, description="Customer tier (客户等级 / 会员卡).")
strawberry.enum(ServiceLevel, description="Service level A/B/C (服务等级).")
strawberry.enum(Lifecycle, description="Lifecycle stage (生命周期).")
strawberry.enum(CustomerStatus, description="On file, or gone (离网).")
strawberry.enum(Gender, description="Gender, for the honorific (先生 / 女士).")
strawberry.enum(ValueQuadrant, description="Sales-profit matrix (金牛 / 明星 / 问题 / 瘦狗).")
strawberry.enum(ContactChannel, description="How a contact was made.")
strawberry.enum(ContactDirection, description="Who reached whom.")
strawberry.enum(ContactOutcome, description="What came of a contact.")
strawberry.enum(Signal, name="WarningSignal", description="Churn signal (预警信号).")
strawberry.enum(Status, name="WarningStatus", description="Where a warning stands.")
strawberry.enum(Severity, name="WarningSeverity", description="How urgent a warning is.")
strawberry.enum(Outcome, name="WarningOutcome", description="Retained or churned.")
strawberry.enum(RetentionAction, description="What was done to keep the customer (挽留措施).")
strawberry.enum(CampaignStatus, description="Where a care campaign stands.")
strawberry.enum(RecipientState, name="CareMessageState", description="Where a care message stands.")
strawberry.enum(
    TaskKind, name="CareTaskKind", description="First contact of a new VIP, or the monthly call."
)
strawberry.enum(TaskStatus, name="CareTaskStatus", description="Open, done or cancelled.")

WarningSignal = Signal
WarningStatus = Status
WarningSeverity = Severity
WarningOutcome = Outcome
RetentionActionKind = RetentionAction
CampaignState = CampaignStatus
CareMessageState = RecipientState
CareTaskKind = TaskKind
CareTaskStatus = TaskStatus
