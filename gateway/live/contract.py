"""The event types the gateway consumes: plain data, like a service's contract, so a
publishing service loads nothing else of the gateway to know where its events go."""

from __future__ import annotations

WARNING_RAISED = "warning.raised"
SLA_BREACHED = "complaint.sla_breached"
ESCALATED = "complaint.escalated"

CONSUMES: frozenset[str] = frozenset({WARNING_RAISED, SLA_BREACHED, ESCALATED})
