"""The audit as admins read it: changes made through every service's API, and profile's
unmasked reads of personal data, in one list newest first."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from gateway.types.reports import ReadAuditEntry


@strawberry.enum(description="Which audit: writes through the services' APIs, or unmasked reads.")
class AuditKind(Enum):
    CHANGES = "changes"
    READS = "reads"


@strawberry.type(description="One write through a service's API that committed (审计).")
class ChangeAuditEntry:
    service: str = strawberry.field(description="The service whose API it went through.")
    id: strawberry.ID = strawberry.field(description="The row's id in that service.")
    at: datetime
    request_id: str | None = strawberry.field(description="The request it was part of.")
    user_id: str = strawberry.field(description="Who: the token's subject (a partner's id).")
    role: str
    team_id: str | None
    caller: str | None = strawberry.field(description="An internal caller, if not a person.")
    method: str
    route: str = strawberry.field(description="The route template, e.g. `/customers/{msisdn}`.")
    resource_ids: list[str] = strawberry.field(
        description="The path's parameters in the template's order."
    )
    status: int = strawberry.field(description="The HTTP status it answered.")


AuditEntry = Annotated[
    ChangeAuditEntry | ReadAuditEntry,
    strawberry.union("AuditEntry", description="A change, or an unmasked read."),
]
