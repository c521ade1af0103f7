"""Tables of the complaint service (schema ``complaint``)."""

SCHEMA = "complaint"
