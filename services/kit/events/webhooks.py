"""Partner webhooks and dead letters: the events API every service mounts.

An admin subscribes a partner's HTTPS endpoint to some of this service's event types; the
relay POSTs each such event, signed (see ``relay.sign``), retried with back-off, and logs
every attempt. Partners see and replay their own deliveries; operators see dead letters.
"""

import secrets
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from pydantic import AnyHttpUrl, BaseModel, Field
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Acting, Principal, Role, require_role
from services.kit.errors import Forbidden, InvalidInput, NotFound
from services.kit.events.admin import (
    DeliveryRead,
    discard,
    list_deliveries,
    parse_delivery_ref,
    replay,
)
from services.kit.events.contracts import published
from services.kit.events.tables import DeliveryStatus, event_tables
from services.kit.idempotency import IdempotentRoute
from services.kit.masking import mask_numbers, sees_numbers


class WebhookCreate(BaseModel):
    partner: str = Field(min_length=1, max_length=100, description="The partner's user id")
    url: AnyHttpUrl
    event_types: list[str] = Field(min_length=1)


class DiscardRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="Why it is not sent again")


class WebhookRead(BaseModel):
    id: uuid.UUID
    partner: str
    url: str
    event_types: list[str]
    active: bool
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="Shown once: the HMAC-SHA256 key for the signatures")


def _read(row: Any) -> WebhookRead:
    return WebhookRead(
        id=row.id,
        partner=row.partner,
        url=row.url,
        event_types=list(row.event_types),
        active=row.active,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def events_router(
    service: str, session_dependency: Any, idempotent: Any, production: bool
) -> APIRouter:
    """``session_dependency`` and ``idempotent`` are services.kit.app's (which imports this)."""
    tables = event_tables(service)
    router = APIRouter(tags=["events"], route_class=IdempotentRoute)
    Session = Annotated[AsyncSession, Depends(session_dependency, scope="function")]
    admin = Depends(require_role(Role.admin))
    operators = Depends(require_role(Role.operator))

    def produced_here() -> set[str]:
        return {name for name, cls in published().items() if cls.producer == service}

    async def owned_webhook(session: AsyncSession, webhook_id: uuid.UUID, who: Principal) -> Any:
        row = (
            await session.execute(select(tables.webhook).where(tables.webhook.c.id == webhook_id))
        ).first()
        if row is None:
            raise NotFound(f"找不到 webhook {webhook_id}", field="webhook_id")
        if who.role is not Role.admin and not (
            who.role is Role.partner and who.user_id == row.partner
        ):
            raise Forbidden("只有管理员或订阅它的合作方可以查看该 webhook")
        return row

    @router.get("/event-types", summary="Event types this service publishes")
    async def list_event_types(who: Acting) -> list[str]:
        return sorted(produced_here())

    @router.post(
        "/webhooks",
        status_code=status.HTTP_201_CREATED,
        summary="Subscribe a partner's endpoint to event types (admin)",
        dependencies=[admin, idempotent],
    )
    async def create_webhook(body: WebhookCreate, session: Session, who: Acting) -> WebhookCreated:
        if production and body.url.scheme != "https":
            raise InvalidInput("合作方 webhook 须使用 https", field="url")
        unknown = sorted(set(body.event_types) - produced_here())
        if unknown:
            known = ", ".join(sorted(produced_here())) or "none"
            raise InvalidInput(
                f"{service} 不发布 {', '.join(unknown)}；它发布的事件：{known}",
                field="event_types",
            )
        secret = secrets.token_urlsafe(32)
        row = (
            await session.execute(
                insert(tables.webhook)
                .values(
                    id=uuid.uuid4(),
                    partner=body.partner,
                    url=str(body.url),
                    secret=secret,
                    event_types=sorted(set(body.event_types)),
                    created_by=who.user_id,
                )
                .returning(tables.webhook)
            )
        ).one()
        return WebhookCreated(**_read(row).model_dump(), secret=secret)

    @router.get("/webhooks", summary="Webhook subscriptions (a partner sees its own)")
    async def list_webhooks(session: Session, who: Acting) -> list[WebhookRead]:
        query = select(tables.webhook).order_by(tables.webhook.c.created_at)
        if who.role is Role.partner:
            query = query.where(tables.webhook.c.partner == who.user_id)
        elif who.role is not Role.admin:
            raise Forbidden("只有管理员和合作方可以查看 webhook 订阅")
        return [_read(r) for r in (await session.execute(query)).all()]

    @router.delete(
        "/webhooks/{webhook_id}",
        summary="Stop a subscription (admin); its log is kept",
        dependencies=[admin],
    )
    async def deactivate_webhook(
        webhook_id: uuid.UUID, session: Session, who: Acting
    ) -> WebhookRead:
        await owned_webhook(session, webhook_id, who)
        row = (
            await session.execute(
                update(tables.webhook)
                .where(tables.webhook.c.id == webhook_id)
                .values(active=False)
                .returning(tables.webhook)
            )
        ).one()
        return _read(row)

    @router.get("/webhooks/{webhook_id}/deliveries", summary="A webhook's delivery log")
    async def webhook_deliveries(
        webhook_id: uuid.UUID,
        session: Session,
        who: Acting,
        status: DeliveryStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[DeliveryRead]:
        await owned_webhook(session, webhook_id, who)
        rows = await list_deliveries(
            session, service, status=status, subscriber=f"webhook:{webhook_id}", limit=limit
        )
        return [_shown(r, who) for r in rows]

    @router.post(
        "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
        summary="Send one event to the webhook again",
    )
    async def replay_webhook_delivery(
        webhook_id: uuid.UUID, delivery_id: str, session: Session, who: Acting
    ) -> DeliveryRead:
        await owned_webhook(session, webhook_id, who)
        producer, number = _ref(delivery_id)
        if producer != service:
            raise NotFound(f"{delivery_id} 不是 {service} 的投递记录", field="delivery_id")
        return _shown(
            await replay(session, service, number, subscriber=f"webhook:{webhook_id}"), who
        )

    @router.get(
        "/events/deliveries",
        summary="Deliveries of this service's events, e.g. the dead letters (operators)",
        dependencies=[operators],
    )
    async def deliveries(
        session: Session,
        status: DeliveryStatus | None = None,
        subscriber: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[DeliveryRead]:
        return await list_deliveries(
            session, service, status=status, subscriber=subscriber, limit=limit
        )

    @router.post(
        "/events/deliveries/{delivery_id}/replay",
        summary="Deliver an event again (operators)",
        dependencies=[operators],
    )
    async def replay_delivery(delivery_id: str, session: Session) -> DeliveryRead:
        producer, number = _ref(delivery_id)
        if producer != service:
            raise NotFound(f"{delivery_id} 不是 {service} 的投递记录", field="delivery_id")
        return await replay(session, service, number)

    @router.post(
        "/events/deliveries/{delivery_id}/discard",
        summary="Give up on a dead delivery; its event may then be pruned (operators)",
        dependencies=[operators],
    )
    async def discard_delivery(
        delivery_id: str, body: DiscardRequest, session: Session, who: Acting
    ) -> DeliveryRead:
        producer, number = _ref(delivery_id)
        if producer != service:
            raise NotFound(f"{delivery_id} 不是 {service} 的投递记录", field="delivery_id")
        return await discard(session, service, number, by=who.user_id, reason=body.reason)

    return router


def _shown(delivery: DeliveryRead, who: Principal) -> DeliveryRead:
    """A delivery as its partner may see it: the customer's number (the aggregate) masked."""
    if sees_numbers(who):
        return delivery
    return delivery.model_copy(update={"aggregate_id": mask_numbers(delivery.aggregate_id)})


def _ref(delivery_id: str) -> tuple[str, int]:
    try:
        return parse_delivery_ref(delivery_id)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="delivery_id") from exc
