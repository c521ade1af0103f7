"""Tables of the care service (schema ``care``)."""

SCHEMA = "care"
