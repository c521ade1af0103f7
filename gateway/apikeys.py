"""Partners' API keys: made and revoked by admins (``keepwell apikey``, admin mutations),
checked on every partner request.

A key reads ``kw_<id>_<secret>``. Only the secret's SHA-256 is stored; the key is shown
once. Each key names its partner, its scopes (what the partner may ask), an optional
expiry, an optional rate limit of its own (cost per minute; else the partners' default) and
when it was last used (written at most once a minute, so a busy partner does
not turn every read into a write).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.models import ApiKey
from services.kit import clock
from services.kit.auth import Principal, Role, Scope
from services.kit.errors import InvalidInput, NotFound, Unauthorized

SCOPES: dict[str, str] = {
    Scope.customers_read: "Read customers (numbers masked unless the partner is allowed them).",
    Scope.warnings_read: "Read churn warnings and risk scores.",
    Scope.complaints_read: "Read complaints.",
    Scope.usage_write: "Send daily usage rows (the usage feed).",
}
"""Every scope a key may carry (the kernel's :class:`Scope`, which the services check too),
and what it opens."""

_KEY = re.compile(r"kw_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Partner:
    """A caller that signed in with an API key."""

    principal: Principal
    scopes: frozenset[str]
    key_id: str
    rate_per_minute: int | None = None
    """The key's own rate limit; ``None``: the partners' default."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidInput(
            f"scopes：未知的权限 {', '.join(unknown)}；可选 {', '.join(SCOPES)}", field="scopes"
        )
    if not scopes:
        raise InvalidInput("scopes：至少一个权限", field="scopes")
    return sorted(set(scopes))


def check_rate(rate_per_minute: int | None) -> int | None:
    if rate_per_minute is not None and not 1 <= rate_per_minute <= 10**9:
        raise InvalidInput("rate：每分钟代价须在 1 到 10^9 之间", field="rate_per_minute")
    return rate_per_minute


async def create(
    session: AsyncSession,
    *,
    partner_id: str,
    name: str,
    scopes: list[str],
    created_by: str,
    expires_at: datetime | None = None,
    rate_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key, and the key itself: the only time it is seen."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", partner_id):
        raise InvalidInput("partner_id：1 到 64 个字母、数字或 _.-", field="partner_id")
    if expires_at is not None and expires_at <= clock.now():
        raise InvalidInput("expires_at：须在将来", field="expires_at")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiKey(
        id=key_id,
        partner_id=partner_id,
        name=name[:200],
        secret_sha256=_digest(secret),
        scopes=check_scopes(scopes),
        created_by=created_by,
        expires_at=expires_at,
        rate_per_minute=check_rate(rate_per_minute),
    )
    session.add(row)
    await session.flush()
    return row, f"kw_{key_id}_{secret}"


async def revoke(session: AsyncSession, key_id: str) -> ApiKey:
    row = await session.get(ApiKey, key_id, with_for_update=True)
    if row is None:
        raise NotFound(f"API 密钥 {key_id} 不存在", field="id")
    if row.revoked_at is None:
        row.revoked_at = clock.now()
    await session.flush()
    return row


async def set_rate(session: AsyncSession, key_id: str, rate_per_minute: int | None) -> ApiKey:
    """A key's own rate limit (``None``: back to the partners' default), from its next
    request on."""
    row = await session.get(ApiKey, key_id, with_for_update=True)
    if row is None:
        raise NotFound(f"API 密钥 {key_id} 不存在", field="id")
    row.rate_per_minute = check_rate(rate_per_minute)
    await session.flush()
    return row


async def listed(session: AsyncSession, partner_id: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(col(ApiKey.created_at).desc())
    if partner_id is not None:
        query = query.where(col(ApiKey.partner_id) == partner_id)
    return list((await session.execute(query)).scalars())


async def authenticate(session: AsyncSession, key: str) -> Partner:
    """The partner a key belongs to; a key that is unknown, revoked or expired is refused
    with the same answer, so a caller learns nothing about other keys."""
    match = _KEY.fullmatch(key.strip())
    row = await session.get(ApiKey, match.group(1)) if match else None
    now = clock.now()
    if (
        match is None
        or row is None
        or not hmac.compare_digest(row.secret_sha256, _digest(match.group(2)))
        or row.revoked_at is not None
        or (row.expires_at is not None and row.expires_at <= now)
    ):
        raise Unauthorized("API 密钥无效、已吊销或已过期")
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        await session.execute(
            update(ApiKey).where(col(ApiKey.id) == row.id).values(last_used_at=now)
        )
    return Partner(
        # The services check the same scopes on the token the gateway signs for each call.
        principal=Principal(
            user_id=row.partner_id,
            role=Role.partner,
            scopes=frozenset(map(Scope, row.scopes)),
        ),
        scopes=frozenset(row.scopes),
        key_id=row.id,
        rate_per_minute=row.rate_per_minute,
    )
