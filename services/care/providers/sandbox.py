"""Client for the sandbox SMS provider (``services/care/sandbox``), over HTTP like a real one.

Besides sending, it answers lookups ("did you accept this idempotency key?"), which lets the
dispatcher settle a send whose outcome is unknown (a worker killed mid-call, a read timeout)
without sending it again. Customers' replies it pushes in Aliyun's SmsUp shape, so the
receiver is exercised as Aliyun will call it.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

import httpx

from services.care.providers.aliyun import parse_sms_up
from services.care.providers.base import (
    DeliveryReceipt,
    InboundSms,
    LookupResult,
    ReceiptAuthenticationError,
    ReceiptFormatError,
    SendResult,
    SendStatus,
    SentQuery,
    SmsMessage,
)

logger = logging.getLogger("keepwell.care.providers")


class SandboxSmsProvider:
    name = "sandbox"
    lookup_settles_seconds = 0.0
    """The sandbox records a message before it answers the send."""

    def __init__(
        self,
        base_url: str,
        client: httpx.AsyncClient,
        *,
        receipt_token: str,
        uplink_token: str | None = None,
        max_batch_size: int = 1000,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._url = base_url.rstrip("/")
        self._client = client
        self._receipt_token = receipt_token
        self._uplink_token = uplink_token if uplink_token is not None else receipt_token
        self._timeout = httpx.Timeout(timeout_seconds, connect=2.0)
        self.max_batch_size = max_batch_size

    async def send_batch(self, messages: Sequence[SmsMessage]) -> list[SendResult]:
        if len(messages) > self.max_batch_size:
            raise ValueError(f"batch of {len(messages)} exceeds {self.max_batch_size}")
        if not messages:
            return []
        body = {"messages": [m.model_dump() for m in messages]}
        try:
            response = await self._client.post(
                f"{self._url}/send", json=body, timeout=self._timeout
            )
        except httpx.ConnectError as exc:
            # Never reached the sandbox: nothing was sent.
            return [_transport(m, exc, outcome_unknown=False) for m in messages]
        except httpx.HTTPError as exc:
            return [_transport(m, exc, outcome_unknown=True) for m in messages]
        if response.status_code != 200:
            status = (
                SendStatus.FAILED_TRANSIENT
                if response.status_code >= 500 or response.status_code == 429
                else SendStatus.FAILED_PERMANENT
            )
            return [
                SendResult(
                    idempotency_key=m.idempotency_key,
                    status=status,
                    error_code=f"http.{response.status_code}",
                    error_message=response.text[:200] or None,
                    outcome_unknown=response.status_code >= 500,
                )
                for m in messages
            ]
        results = [SendResult.model_validate(r) for r in response.json()["results"]]
        if [r.idempotency_key for r in results] != [m.idempotency_key for m in messages]:
            raise RuntimeError("sandbox answered for different messages than were sent")
        return results

    async def lookup(self, queries: Sequence[SentQuery]) -> LookupResult:
        keys = [q.idempotency_key for q in queries]
        try:
            response = await self._client.post(
                f"{self._url}/lookup", json={"keys": keys}, timeout=self._timeout
            )
            response.raise_for_status()
        except httpx.HTTPError:
            logger.warning("sandbox lookup failed", exc_info=True)
            return LookupResult(unanswered=frozenset(keys))
        return LookupResult(found=response.json()["found"])

    def parse_receipts(
        self,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> list[DeliveryReceipt]:
        presented = (query or {}).get("token", "")
        if not hmac.compare_digest(presented.encode(), self._receipt_token.encode()):
            raise ReceiptAuthenticationError("短信回执鉴权令牌不匹配")
        try:
            items = json.loads(body)
            return [
                DeliveryReceipt(
                    provider_message_id=item.get("provider_message_id"),
                    out_id=item["idempotency_key"],
                    phone=item["phone"],
                    delivered=bool(item["delivered"]),
                    error_code=item.get("error_code"),
                    reported_at=datetime.fromisoformat(item["reported_at"])
                    if item.get("reported_at")
                    else None,
                )
                for item in items
            ]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReceiptFormatError(f"沙箱回执格式错误：{exc}") from exc

    def parse_uplinks(
        self,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> list[InboundSms]:
        presented = (query or {}).get("token", "")
        if not hmac.compare_digest(presented.encode(), self._uplink_token.encode()):
            raise ReceiptAuthenticationError("上行短信鉴权令牌不匹配")
        return parse_sms_up(body)


def _transport(message: SmsMessage, exc: httpx.HTTPError, *, outcome_unknown: bool) -> SendResult:
    return SendResult(
        idempotency_key=message.idempotency_key,
        status=SendStatus.FAILED_TRANSIENT,
        error_code=f"transport.{type(exc).__name__}",
        error_message=str(exc) or type(exc).__name__,
        outcome_unknown=outcome_unknown,
    )
