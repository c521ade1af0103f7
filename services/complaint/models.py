"""Tables of the complaint service (schema ``complaint``)."""

from services.kit.events import event_tables

SCHEMA = "complaint"

events = event_tables(SCHEMA)
