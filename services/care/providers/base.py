"""Provider-neutral SMS interface used by the care service's dispatch workers.

The dispatch worker owns retries and idempotency bookkeeping; a provider only turns one
attempt into a `SendResult` per message, says which sends of unknown outcome it accepted,
turns a provider's delivery-receipt push into `DeliveryReceipt`s and its push of the
customers' replies (uplink, 上行短信) into `InboundSms`. Keeping the
classification (transient vs permanent) inside the provider is deliberate: only the provider
knows which of its error codes are worth another attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Mainland mobile numbers only: VIP retention SMS never goes abroad, and a +86 prefix here
# would make idempotency keys and receipts disagree on the same subscriber.
CN_MOBILE_PATTERN = r"^1[3-9]\d{9}$"


class SendStatus(StrEnum):
    ACCEPTED = "accepted"
    """The provider took the message; the final outcome arrives later as a receipt."""

    FAILED_TRANSIENT = "failed_transient"
    """Worth another attempt later (throttling, provider outage, our account/config)."""

    FAILED_PERMANENT = "failed_permanent"
    """Retrying the same message can never succeed (bad number, content, template)."""


class SmsMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    idempotency_key: str = Field(min_length=1, max_length=255)
    """Our key for this logical message; providers echo it back in receipts where they can."""

    phone: str = Field(pattern=CN_MOBILE_PATTERN)
    text: str
    """Rendered text, kept for audit and for providers that send free text."""

    template_code: str | None = None
    """Template-only providers (Aliyun mainland SMS) send this instead of `text`."""

    template_params: dict[str, str] = Field(default_factory=dict)


class SendResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    idempotency_key: str
    status: SendStatus
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    retry_after_seconds: float | None = None
    """Lower bound before the next attempt, when the provider's error implies one."""

    outcome_unknown: bool = False
    """The request may have reached the provider (e.g. read timeout). Sends are not
    idempotent at most providers, so the dispatcher asks the provider (`lookup`) before
    sending it again."""

    account_level: bool = False
    """The failure is about our account or configuration (balance, credentials, sign name),
    not this message: every other message will fail the same way, so pause the queue and
    alert rather than burn retries."""


class SentQuery(BaseModel):
    """One send of unknown outcome to ask the provider about."""

    model_config = ConfigDict(frozen=True)

    idempotency_key: str = Field(min_length=1)
    phone: str
    attempted_at: AwareDatetime
    """When the recipient was claimed for the attempt; the request left within its lease."""


class LookupResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    found: dict[str, str | None] = Field(default_factory=dict)
    """Idempotency keys the provider accepted -> its message id, where it reports one."""

    unanswered: frozenset[str] = frozenset()
    """Keys the provider could not be asked about (throttled, unreachable): nothing is known
    of them, which must never be taken for "not sent"."""


class DeliveryReceipt(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider_message_id: str | None
    out_id: str | None
    """Our idempotency key as echoed by the provider, when it supports one."""

    phone: str
    delivered: bool
    error_code: str | None = None
    error_message: str | None = None
    submitted_at: datetime | None = None
    reported_at: datetime | None = None


class InboundSms(BaseModel):
    """A customer's reply (an uplink, 上行短信) as the provider pushed it."""

    model_config = ConfigDict(frozen=True)

    provider_ref: str = Field(min_length=1, max_length=64)
    """The provider's id of this uplink (Aliyun's ``sequence_id``): a re-push repeats it."""
    phone: str
    """As the provider gave it; care normalises it."""
    content: str
    sent_at: datetime | None = None
    """When the operator handed the reply to the provider (Aliyun's ``send_time``)."""
    dest_code: str | None = None
    """The extension the customer replied to (Aliyun's ``dest_code``)."""
    sign_name: str | None = None


class ReceiptError(Exception):
    """Base for receipt and uplink push problems; the HTTP layer should answer non-2xx."""


class ReceiptAuthenticationError(ReceiptError):
    """The push could not be shown to come from the provider; never process its contents."""


class ReceiptFormatError(ReceiptError):
    """The push was authentic but its body does not match the documented format."""


@runtime_checkable
class SmsProvider(Protocol):
    name: str
    max_batch_size: int
    """Largest `messages` sequence `send_batch` accepts in one call."""
    lookup_settles_seconds: float
    """How long after an attempt a key `lookup` does not find is known not to have been
    accepted; before that the provider may simply not show it yet."""

    async def send_batch(self, messages: Sequence[SmsMessage]) -> list[SendResult]:
        """Attempt every message once; returns exactly one result per input, in order.

        Must not raise for per-message or transport failures: those become results, so one
        bad number cannot hide the outcome of the others.
        """
        ...

    async def lookup(self, queries: Sequence[SentQuery]) -> LookupResult:
        """Which of these sends the provider accepted. Must not raise for throttling or
        transport failures: the keys it could not ask about are `unanswered`."""
        ...

    def parse_receipts(
        self,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> list[DeliveryReceipt]:
        """Authenticate and parse one receipt push.

        `query` carries the callback URL's query parameters, because some providers (Aliyun)
        only let us configure a URL, so a shared secret has to travel there.

        Raises `ReceiptAuthenticationError` when authenticity fails and
        `ReceiptFormatError` when the body is malformed.
        """
        ...

    def parse_uplinks(
        self,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> list[InboundSms]:
        """Authenticate and parse one push of customers' replies (uplinks), with the same
        errors as `parse_receipts`."""
        ...
