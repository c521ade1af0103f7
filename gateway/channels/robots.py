"""What the two group robots take and answer: message bodies, DingTalk's 加签 signature,
their answers, and URLs shown without their keys.

Both robots take a JSON POST and answer HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``;
any other errcode is a failure. Their rate-limit codes (WeCom 45009, DingTalk 130101) are
not the message's fault: it is sent again later and the attempt is not counted. A DingTalk
robot with 加签 takes ``&timestamp=<ms>&sign=<urlencoded base64 HMAC-SHA256>`` on its URL,
the HMAC keyed by the secret over ``"<timestamp>\\n<secret>"``; DingTalk refuses a
timestamp more than an hour from its own clock.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

import httpx

from gateway.models import ChannelKind

RATE_LIMIT_ERRCODES = frozenset({45009, 130101})
"""WeCom's "api freq out of limit" and DingTalk's "send too fast"."""
WECOM_MAX_BYTES = 4096
"""WeCom's markdown ``content`` limit (UTF-8 bytes); DingTalk's is larger (20,000)."""
DINGTALK_MAX_BYTES = 20000


def markdown(title: str, lines: list[str], kind: ChannelKind) -> str:
    """The notice as the robot's markdown, cut to what the robot takes: WeCom's title in
    bold and each line quoted; DingTalk's title a heading, and an empty line between lines
    (it breaks lines only so)."""
    if kind is ChannelKind.dingtalk:
        text = "\n\n".join([f"#### {title}", *lines])
        return _fit(text, DINGTALK_MAX_BYTES)
    return _fit("\n".join([f"**{title}**", *(f"> {line}" for line in lines)]), WECOM_MAX_BYTES)


def body(kind: ChannelKind, title: str, lines: list[str]) -> dict[str, Any]:
    """The robot's request body (a DingTalk signature goes in the URL, not here)."""
    text = markdown(title, lines, kind)
    if kind is ChannelKind.dingtalk:
        return {"msgtype": "markdown", "markdown": {"title": title[:100], "text": text}}
    return {"msgtype": "markdown", "markdown": {"content": text}}


def _fit(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max_bytes - 3].decode(errors="ignore") + "…"


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: base64 of HMAC-SHA256(key=secret, msg="<timestamp>\\n<secret>"),
    before URL encoding."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    sign = quote_plus(dingtalk_sign(secret, timestamp_ms))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp_ms}&sign={sign}"


def masked_url(url: str) -> str:
    """The URL as lists and logs show it: every query value (the robot's key or access
    token) and any password cut to its first 4 characters."""
    parts = urlsplit(url)
    query = "&".join(
        f"{quote_plus(k)}={_mask(v)}" for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}{':****' if parts.password else ''}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _mask(value: str) -> str:
    return f"{value[:4]}****" if len(value) > 4 else "****"


def scrub(text: str, url: str, secret: str | None) -> str:
    """``text`` without the URL's key, password or the secret, whatever quoted them."""
    parts = urlsplit(url)
    hidden = [v for _, v in parse_qsl(parts.query) if len(v) > 4]
    hidden += [v for v in (parts.password, secret) if v]
    for value in sorted(hidden, key=len, reverse=True):
        text = text.replace(value, _mask(value)).replace(quote_plus(value), _mask(value))
    return text


@dataclass(frozen=True)
class Answer:
    """What one POST to a robot came to."""

    ok: bool
    rate_limited: bool = False
    """The robot's rate limit (errcode 45009 / 130101, or HTTP 429): send again later."""
    error: str | None = None


def read_answer(response: httpx.Response) -> Answer:
    try:
        answer = response.json()
        errcode = int(answer.get("errcode", -1))
        errmsg = str(answer.get("errmsg", ""))[:200]
    except (ValueError, TypeError, AttributeError):
        errcode, errmsg = -1, response.text[:200]
    if response.status_code == 200 and errcode == 0:
        return Answer(True)
    limited = response.status_code == 429 or errcode in RATE_LIMIT_ERRCODES
    return Answer(False, limited, f"HTTP {response.status_code}: errcode {errcode} {errmsg}")


async def post(
    http: httpx.AsyncClient,
    kind: ChannelKind,
    url: str,
    secret: str | None,
    message: dict[str, Any],
    timeout_seconds: float,
    timestamp_ms: int,
) -> Answer:
    """POST one message to one robot (signed if it has a secret); never raises for what
    the robot or the network did. ``timeout_seconds`` bounds the whole call."""
    target = (
        signed_url(url, secret, timestamp_ms) if kind is ChannelKind.dingtalk and secret else url
    )
    try:
        async with asyncio.timeout(timeout_seconds):
            response = await http.post(
                target,
                content=json.dumps(message, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
    except (httpx.HTTPError, TimeoutError) as exc:
        return Answer(False, error=scrub(f"{type(exc).__name__}: {exc}", target, secret))
    answer = read_answer(response)
    if answer.error is not None:
        return Answer(answer.ok, answer.rate_limited, scrub(answer.error, target, secret))
    return answer
