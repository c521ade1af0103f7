"""Tables of the care service (schema ``care``)."""

from services.kit.events import event_tables

SCHEMA = "care"

events = event_tables(SCHEMA)
