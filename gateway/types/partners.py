"""What partners' systems use: API keys (made by admins) and the usage feed."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import strawberry


@strawberry.type(description="A partner's API key (the key itself is shown only when made).")
class ApiKeyInfo:
    id: strawberry.ID = strawberry.field(description="The key's public part: kw_<id>_...")
    partner_id: str
    name: str
    scopes: list[str]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = strawberry.field(description="To the minute.")


@strawberry.type(description="A new API key: give `key` to the partner now, it is not kept.")
class CreatedApiKey:
    key: str
    api_key: ApiKeyInfo


@strawberry.input(description="One subscriber-day of the operator's usage feed.")
class UsageInput:
    msisdn: str
    day: date
    outgoing_calls: int
    minutes: int
    data_mb: int
    spend: Decimal
    balance: Decimal
    competitor_hotline_calls: int = 0
    forwarded_to_other_network: int = 0
    other_network_call_share: float = 0.0
    competitor_marketing_contacts: int | None = None


@strawberry.type(description="A row the usage feed refused, and why.")
class UsageRowError:
    row: int = strawberry.field(description="1-based position in the batch.")
    field: str | None
    message: str


@strawberry.type(description="What the usage feed took: good rows stored, bad rows named.")
class UsageAccepted:
    accepted: int
    rejected: list[UsageRowError]
