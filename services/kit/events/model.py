"""Event payloads and the envelope they travel in."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

_REGISTRY: dict[str, type[Event]] = {}


class Event(BaseModel):
    """A domain event's payload. Subclasses set ``event_type`` and ``producer``, and bump
    ``version`` when the payload changes incompatibly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    producer: ClassVar[str]
    version: ClassVar[int] = 1

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.__dict__.get("event_type")
        if name is None:
            return
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise TypeError(f"event type {name!r} is defined twice")
        _REGISTRY[name] = cls


def event_types() -> dict[str, type[Event]]:
    """Every event type defined so far, by name."""
    return dict(_REGISTRY)


class Envelope(BaseModel):
    """What a subscriber receives: the event and where it came from."""

    id: uuid.UUID
    seq: int
    type: str
    version: int
    producer: str
    aggregate_id: str
    occurred_at: datetime
    payload: dict[str, Any]
    request_id: str | None = None
    actor: str | None = None

    def event(self) -> Event:
        """The payload as its typed model; raises if the type is unknown here."""
        return _REGISTRY[self.type].model_validate(self.payload)
