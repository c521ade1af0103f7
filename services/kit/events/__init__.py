"""Events between services: a transactional outbox, a relay and idempotent consumers.

Producing: ``await publish(session, SomethingHappened(...), aggregate_id=...)`` in the same
transaction as the change. The event row and one delivery row per subscriber are written
together, so an event exists if and only if its transaction commits.

Consuming: a service's ``consumers.py`` makes a :class:`Consumer` and registers handlers with
``@consumer.handles(EventType)``; the app factory mounts ``POST /events`` for it. The
handler runs in the same transaction as the inbox row that records the event id, so a
redelivered event has no second effect. The types it handles are declared as data in the
service's ``contract.py`` (``CONSUMES``), which is where publishers learn their subscribers.
"""

from services.kit.events.model import Envelope, Event, event_types
from services.kit.events.tables import event_tables

__all__ = ["Envelope", "Event", "event_tables", "event_types"]
