"""The opaque cursor of a keyset page that runs newest first by id: every service's lists
give it the same way, so the gateway, merging the audits of several services into one
page, can say where each of them stands."""

from __future__ import annotations

import base64

from services.kit.errors import InvalidInput


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except ValueError:
        raise InvalidInput("cursor：不是本服务给出的分页游标", field="cursor") from None
