"""Aliyun (Alibaba Cloud) SMS provider: dysmsapi `SendSms`, API version 2017-05-25.

Sending
-------
One `SendSms` call per message, never `SendBatchSms`: SendBatchSms takes a single `OutId`
and returns a single `BizId` for the whole call, so its receipts could only be matched by
phone number, which breaks when one subscriber has two messages in a batch. Per-message
SendSms lets us pass our idempotency key as `OutId`, which Aliyun echoes back as `out_id`
in every delivery receipt. Aliyun documents that SendSms/SendBatchSms are NOT idempotent
and recommends checking the receipt before retrying after a timeout; results therefore
carry `outcome_unknown=True` whenever the request may have reached Aliyun.

Lookups
-------
`lookup` settles a send of unknown outcome with `QuerySendDetails`: the records Aliyun
holds for one phone number on one send date (Beijing time), at most 50 per page. A record
whose `OutId` is our idempotency key means Aliyun accepted the message, whatever its
delivery status (1 waiting for a receipt, 2 failed, 3 delivered); records carry no
`BizId`, so the message id stays unknown until the receipt brings it. Records appear some
time after the send, so "not found" is conclusive only `lookup_settles_seconds` after the
attempt. A query that fails (throttling, transport) leaves its key `unanswered`.

Request signing
---------------
Two algorithms are implemented, both reproduced exactly against Aliyun's published worked
examples (see tests/care/test_aliyun_provider.py):

* ``v1``: the RPC "SignatureVersion=1.0 / HMAC-SHA1" scheme (the docs now call it "V2" and
  mark it superseded): ``StringToSign = METHOD & %2F & percentEncode(canonicalQuery)``,
  ``Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))``.
* ``v3``: ``ACS3-HMAC-SHA256`` with an ``Authorization`` header, which current Aliyun docs
  recommend for new integrations.

Delivery receipts (SmsReport, HTTP batch push)
----------------------------------------------
Aliyun POSTs a JSON array of reports to a URL configured in the SMS console. **Aliyun's
documentation specifies no signature or other authenticity mechanism for this push**, and
the console only accepts a URL (no custom headers). We therefore put a long random shared
secret in the callback URL we register, e.g.
``https://care.example.cn/sms/aliyun/receipts?token=<receipt_token>``, and reject any push
whose token does not match (constant-time comparison). The token is also accepted in the
``X-Keepwell-Receipt-Token`` header for pushes relayed by our own gateway. This only proves
the sender knows the URL: serve it over HTTPS only, keep the token out of logs, rotate it
like any credential, and consider an IP allow-list at the edge. Aliyun states receipts are
not idempotent (pushes are retried after 1, 5 and 10 minutes), so consumers must dedupe.

Customers' replies (SmsUp, HTTP batch push)
-------------------------------------------
With "上行消息接收 HTTP 批量推送" enabled in the console, Aliyun POSTs the replies
customers send to our messages as a JSON array to a second configured URL, each item
``{"phone_number", "content", "send_time" ("2017-09-01 00:00:00", Beijing), "dest_code",
"sequence_id", "sign_name"}`` (``sequence_id`` a number in older documents, a string in
newer ones), and expects HTTP 200 with ``{"code": 0, "msg": "接收成功"}``; any other
status or a timeout is pushed again after 1, 5 and 10 minutes. Like receipts it is
unsigned, so it is authenticated the same way, by a shared secret in the URL we register
(``CARE_UPLINK_TOKEN``, else the receipt token), and ``sequence_id`` makes a re-push
harmless. Polling the MNS queue (``Alicom-Queue-...-SmsUp``) is the other mechanism Aliyun
offers; the push needs no long-running consumer and its retries cover our downtime.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

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
from services.kit import clock

logger = logging.getLogger("keepwell.care.providers")

API_VERSION: Final = "2017-05-25"
RECEIPT_TOKEN_HEADER: Final = "x-keepwell-receipt-token"

RECEIPT_ACK: Final[dict[str, Any]] = {"code": 0, "msg": "接收成功"}
"""Body Aliyun expects (with HTTP 200) from the receipt endpoint; anything else is re-pushed."""

UPLINK_ACK: Final[dict[str, Any]] = {"code": 0, "msg": "接收成功"}
"""Body Aliyun expects (with HTTP 200) from the uplink (SmsUp) endpoint."""

# Receipt times carry no zone; Aliyun reports them in Beijing time, which has no DST.
_BEIJING: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
_RECEIPT_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

_V3_ALGORITHM: Final = "ACS3-HMAC-SHA256"

QUERY_PAGE_SIZE: Final = 50
"""The most records QuerySendDetails returns per page."""

# The request leaves a little after the claim, and Aliyun's clock is not ours: an attempt
# this close to Beijing midnight may be filed under either date.
_SEND_DATE_MARGIN: Final = timedelta(minutes=5)


# --------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as Aliyun requires: only ``A-Z a-z 0-9 - _ . ~`` stay literal.

    Differs from form encoding: space is ``%20`` (not ``+``) and ``*`` is ``%2A``.
    """
    return quote(value, safe="-_.~", encoding="utf-8")


def canonicalized_query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{percent_encode(key)}={percent_encode(params[key])}" for key in sorted(params)
    )


def string_to_sign_v1(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonicalized_query(params))}"


def sign_v1(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    """RPC signature (SignatureMethod=HMAC-SHA1, SignatureVersion=1.0); `params` excludes
    ``Signature`` itself. The trailing ``&`` on the key is part of the algorithm."""
    digest = hmac.new(
        f"{access_key_secret}&".encode(),
        string_to_sign_v1(method, params).encode(),
        hashlib.sha1,
    ).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True)
class V3Signature:
    canonical_request: str
    string_to_sign: str
    signature: str
    signed_headers: str
    authorization: str


def sign_v3(
    *,
    method: str,
    canonical_uri: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    hashed_payload: str,
    access_key_id: str,
    access_key_secret: str,
) -> V3Signature:
    """ACS3-HMAC-SHA256. `headers` must already contain every header that will be sent and
    must be signed (host, x-acs-*, content-type); names are matched case-insensitively."""
    signable = {
        name.lower(): value.strip()
        for name, value in headers.items()
        if name.lower() in ("host", "content-type") or name.lower().startswith("x-acs-")
    }
    names = sorted(signable)
    canonical_headers = "".join(f"{name}:{signable[name]}\n" for name in names)
    signed_headers = ";".join(names)
    canonical_request = "\n".join(
        (
            method.upper(),
            canonical_uri,
            canonicalized_query(query),
            canonical_headers,
            signed_headers,
            hashed_payload,
        )
    )
    string_to_sign = f"{_V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    signature = hmac.new(
        access_key_secret.encode(), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    return V3Signature(
        canonical_request=canonical_request,
        string_to_sign=string_to_sign,
        signature=signature,
        signed_headers=signed_headers,
        authorization=(
            f"{_V3_ALGORITHM} Credential={access_key_id},"
            f"SignedHeaders={signed_headers},Signature={signature}"
        ),
    )


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with second precision, the only form the gateway accepts."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------
# Error classification
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorClass:
    status: SendStatus
    retry_after_seconds: float | None = None
    account_level: bool = False


_TRANSIENT = ErrorClass(SendStatus.FAILED_TRANSIENT)
_PERMANENT = ErrorClass(SendStatus.FAILED_PERMANENT)
# Account problems stay transient: the message itself is fine and will go out once ops fix
# the account, whereas "permanent" would silently drop every queued VIP message.
_ACCOUNT = ErrorClass(SendStatus.FAILED_TRANSIENT, account_level=True)

ERROR_CLASSES: Final[Mapping[str, ErrorClass]] = {
    # Gateway / platform load: retry soon.
    "Throttling": ErrorClass(SendStatus.FAILED_TRANSIENT, retry_after_seconds=1.0),
    "Throttling.User": ErrorClass(SendStatus.FAILED_TRANSIENT, retry_after_seconds=1.0),
    "Throttling.Api": ErrorClass(SendStatus.FAILED_TRANSIENT, retry_after_seconds=1.0),
    "isp.SYSTEM_ERROR": ErrorClass(SendStatus.FAILED_TRANSIENT, retry_after_seconds=5.0),
    "ServiceUnavailable": ErrorClass(SendStatus.FAILED_TRANSIENT, retry_after_seconds=5.0),
    "InternalError": ErrorClass(SendStatus.FAILED_TRANSIENT, retry_after_seconds=5.0),
    "SignatureNonceUsed": _TRANSIENT,  # a fresh nonce is generated per attempt
    # Per-number frequency control (documented as e.g. 1/min, 5/hour, 10/day for codes and
    # 50/day per template for notifications): retrying within minutes only hits it again.
    "isv.BUSINESS_LIMIT_CONTROL": ErrorClass(
        SendStatus.FAILED_TRANSIENT, retry_after_seconds=3600.0
    ),
    # Console-configured account quotas.
    "isv.DAY_LIMIT_CONTROL": ErrorClass(
        SendStatus.FAILED_TRANSIENT, retry_after_seconds=3600.0, account_level=True
    ),
    "isv.MONTH_LIMIT_CONTROL": ErrorClass(
        SendStatus.FAILED_TRANSIENT, retry_after_seconds=3600.0, account_level=True
    ),
    # Our account, credentials, clock or sign name.
    "isv.OUT_OF_SERVICE": _ACCOUNT,
    "isv.AMOUNT_NOT_ENOUGH": _ACCOUNT,
    "isv.ACCOUNT_NOT_EXISTS": _ACCOUNT,
    "isv.ACCOUNT_ABNORMAL": _ACCOUNT,
    "isv.PRODUCT_UN_SUBSCRIPT": _ACCOUNT,
    "isv.PRODUCT_UNSUBSCRIBE": _ACCOUNT,
    "isp.RAM_PERMISSION_DENY": _ACCOUNT,
    "isv.DENY_IP_RANGE": _ACCOUNT,
    "isv.SMS_SIGNATURE_ILLEGAL": _ACCOUNT,
    "isv.SMS_SIGN_ILLEGAL": _ACCOUNT,
    "isv.SIGN_STATE_ILLEGAL": _ACCOUNT,
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": _ACCOUNT,
    "SignatureDoesNotMatch": _ACCOUNT,
    "IncompleteSignature": _ACCOUNT,
    "InvalidAccessKeyId.NotFound": _ACCOUNT,
    "InvalidAccessKeyId.Inactive": _ACCOUNT,
    "InvalidTimeStamp.Expired": _ACCOUNT,
    "Forbidden.RAM": _ACCOUNT,
    # The message itself can never be delivered as-is.
    "isv.MOBILE_NUMBER_ILLEGAL": _PERMANENT,
    "isv.MOBILE_COUNT_OVER_LIMIT": _PERMANENT,
    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED": _PERMANENT,
    "isv.BLACK_KEY_CONTROL_LIMIT": _PERMANENT,
    "isv.SMS_CONTENT_ILLEGAL": _PERMANENT,
    "isv.SMS_TEMPLATE_ILLEGAL": _PERMANENT,
    "isv.TEMPLATE_MISSING_PARAMETERS": _PERMANENT,
    "isv.INVALID_PARAMETERS": _PERMANENT,
    "isv.INVALID_JSON_PARAM": _PERMANENT,
    "isv.PARAM_LENGTH_LIMIT": _PERMANENT,
    "isv.PARAM_NOT_SUPPORT_URL": _PERMANENT,
    "isv.EXTEND_CODE_ERROR": _PERMANENT,
    "MissingParameter": _PERMANENT,
}


def classify_error(code: str) -> ErrorClass:
    """Unknown ``isv.*`` codes are business rejections of this request, so permanent;
    anything else unknown is treated as transient so the worker's attempt cap decides,
    rather than dropping a message on a code we have never seen."""
    known = ERROR_CLASSES.get(code)
    if known is not None:
        return known
    return _PERMANENT if code.startswith("isv.") else _TRANSIENT


# --------------------------------------------------------------------------------------
# Provider
# --------------------------------------------------------------------------------------


class AliyunSmsConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    access_key_id: str = Field(min_length=1)
    access_key_secret: SecretStr
    sign_name: str = Field(min_length=1)
    endpoint: str = "https://dysmsapi.aliyuncs.com"
    region: str = "cn-hangzhou"
    signature_version: Literal["v1", "v3"] = "v1"

    receipt_token: SecretStr | None = None
    """Shared secret embedded in the receipt callback URL; receipts are refused without it."""

    receipt_token_param: str = "token"

    uplink_token: SecretStr | None = None
    """Shared secret embedded in the uplink (SmsUp) callback URL; replies are refused
    without it."""

    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    """Aliyun recommends >= 1 s for mainland SMS; a timeout makes the outcome unknown."""

    max_concurrency: int = Field(default=16, ge=1)
    max_batch_size: int = Field(default=100, ge=1)

    lookup_settles_seconds: float = Field(default=300.0, ge=0)
    """How long after an attempt QuerySendDetails is trusted to show it, if Aliyun took it."""


Clock = Callable[[], datetime]
NonceFactory = Callable[[], str]


def _uuid_nonce() -> str:
    return uuid.uuid4().hex


class AliyunSmsProvider:
    """`SmsProvider` for Aliyun dysmsapi. The `httpx.AsyncClient` is shared and owned by the
    caller; `clock` and `nonce_factory` exist so tests can pin signatures."""

    name = "aliyun"

    def __init__(
        self,
        config: AliyunSmsConfig,
        client: httpx.AsyncClient,
        *,
        clock: Clock = clock.now,
        nonce_factory: NonceFactory = _uuid_nonce,
    ) -> None:
        self._config = config
        self._client = client
        self._clock = clock
        self._nonce = nonce_factory
        self._timeout = httpx.Timeout(
            connect=config.connect_timeout,
            read=config.read_timeout,
            write=config.read_timeout,
            pool=config.connect_timeout,
        )
        self._url = httpx.URL(config.endpoint.rstrip("/") + "/")
        self.max_batch_size = config.max_batch_size
        self.lookup_settles_seconds = config.lookup_settles_seconds

    # ---- sending -----------------------------------------------------------------

    async def send_batch(self, messages: Sequence[SmsMessage]) -> list[SendResult]:
        if len(messages) > self.max_batch_size:
            raise ValueError(
                f"batch of {len(messages)} exceeds max_batch_size={self.max_batch_size}"
            )
        gate = asyncio.Semaphore(self._config.max_concurrency)

        async def guarded(message: SmsMessage) -> SendResult:
            async with gate:
                return await self.send_one(message)

        return list(await asyncio.gather(*(guarded(m) for m in messages)))

    async def send_one(self, message: SmsMessage) -> SendResult:
        if not message.template_code:
            return SendResult(
                idempotency_key=message.idempotency_key,
                status=SendStatus.FAILED_PERMANENT,
                error_code="keepwell.TEMPLATE_REQUIRED",
                error_message="阿里云国内短信只能使用审核通过的模板发送，缺少模板编号",
            )
        try:
            response = await self._call("SendSms", self._business_params(message))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left us, so a retry cannot duplicate the SMS.
            return self._transport_failure(message, exc, outcome_unknown=False)
        except httpx.HTTPError as exc:
            return self._transport_failure(message, exc, outcome_unknown=True)
        return self._interpret(message, response)

    def _business_params(self, message: SmsMessage) -> dict[str, str]:
        params = {
            "PhoneNumbers": message.phone,
            "SignName": self._config.sign_name,
            "TemplateCode": message.template_code or "",
            "OutId": message.idempotency_key,
        }
        if message.template_params:
            params["TemplateParam"] = json.dumps(
                message.template_params, ensure_ascii=False, separators=(",", ":")
            )
        return params

    async def _call(self, action: str, business: Mapping[str, str]) -> httpx.Response:
        if self._config.signature_version == "v3":
            return await self._post_v3(action, business)
        return await self._post_v1(action, business)

    async def _post_v1(self, action: str, business: Mapping[str, str]) -> httpx.Response:
        params = {
            **business,
            "Action": action,
            "Version": API_VERSION,
            "RegionId": self._config.region,
            "Format": "JSON",
            "AccessKeyId": self._config.access_key_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": self._nonce(),
            "Timestamp": format_timestamp(self._clock()),
        }
        params["Signature"] = sign_v1(
            "POST", params, self._config.access_key_secret.get_secret_value()
        )
        # POST body rather than query string keeps subscriber numbers out of access logs.
        return await self._client.post(
            self._url,
            content=canonicalized_query(params).encode("ascii"),
            headers={"content-type": "application/x-www-form-urlencoded"},
            timeout=self._timeout,
        )

    async def _post_v3(self, action: str, business: Mapping[str, str]) -> httpx.Response:
        query = {**business, "RegionId": self._config.region}
        empty_body_hash = hashlib.sha256(b"").hexdigest()
        headers = {
            "host": self._url.netloc.decode("ascii"),
            "x-acs-action": action,
            "x-acs-version": API_VERSION,
            "x-acs-date": format_timestamp(self._clock()),
            "x-acs-signature-nonce": self._nonce(),
            "x-acs-content-sha256": empty_body_hash,
        }
        signed = sign_v3(
            method="POST",
            canonical_uri="/",
            query=query,
            headers=headers,
            hashed_payload=empty_body_hash,
            access_key_id=self._config.access_key_id,
            access_key_secret=self._config.access_key_secret.get_secret_value(),
        )
        # Build the URL from the exact canonical query so the server sees what we signed.
        url = self._url.copy_with(query=canonicalized_query(query).encode("ascii"))
        return await self._client.post(
            url,
            headers={**headers, "authorization": signed.authorization},
            timeout=self._timeout,
        )

    def _interpret(self, message: SmsMessage, response: httpx.Response) -> SendResult:
        payload: Any
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        code = payload.get("Code") if isinstance(payload, dict) else None
        text = payload.get("Message") if isinstance(payload, dict) else None

        if response.status_code == 200 and code == "OK":
            biz_id = payload.get("BizId") if isinstance(payload, dict) else None
            return SendResult(
                idempotency_key=message.idempotency_key,
                status=SendStatus.ACCEPTED,
                provider_message_id=str(biz_id) if biz_id else None,
            )

        if isinstance(code, str) and code:
            klass = classify_error(code)
            return SendResult(
                idempotency_key=message.idempotency_key,
                status=klass.status,
                error_code=code,
                error_message=str(text) if text is not None else None,
                retry_after_seconds=klass.retry_after_seconds,
                account_level=klass.account_level,
            )

        # No Aliyun error code at all: a proxy or load balancer answered. Aliyun cannot have
        # accepted the message without returning Code=OK, so only 5xx/429 are retryable.
        status = (
            SendStatus.FAILED_TRANSIENT
            if response.status_code >= 500 or response.status_code == 429
            else SendStatus.FAILED_PERMANENT
        )
        return SendResult(
            idempotency_key=message.idempotency_key,
            status=status,
            error_code=f"http.{response.status_code}",
            error_message=response.text[:200] or None,
        )

    @staticmethod
    def _transport_failure(
        message: SmsMessage, exc: httpx.HTTPError, *, outcome_unknown: bool
    ) -> SendResult:
        return SendResult(
            idempotency_key=message.idempotency_key,
            status=SendStatus.FAILED_TRANSIENT,
            error_code=f"transport.{type(exc).__name__}",
            error_message=str(exc) or type(exc).__name__,
            outcome_unknown=outcome_unknown,
        )

    # ---- lookups -----------------------------------------------------------------

    async def lookup(self, queries: Sequence[SentQuery]) -> LookupResult:
        gate = asyncio.Semaphore(self._config.max_concurrency)

        async def guarded(query: SentQuery) -> bool | None:
            async with gate:
                return await self._accepted(query)

        accepted = await asyncio.gather(*(guarded(q) for q in queries))
        answers = list(zip(queries, accepted, strict=True))
        return LookupResult(
            found={q.idempotency_key: None for q, yes in answers if yes},
            unanswered=frozenset(q.idempotency_key for q, yes in answers if yes is None),
        )

    async def _accepted(self, query: SentQuery) -> bool | None:
        """Whether Aliyun holds a record of this send; None when it could not be asked."""
        for send_date in send_dates(query.attempted_at):
            page = 1
            while True:
                params = {
                    "PhoneNumber": query.phone,
                    "SendDate": send_date,
                    "PageSize": str(QUERY_PAGE_SIZE),
                    "CurrentPage": str(page),
                }
                try:
                    records, total = _send_details(await self._call("QuerySendDetails", params))
                except (httpx.HTTPError, _QueryFailed) as exc:
                    logger.warning(
                        "QuerySendDetails for %s failed: %s",
                        query.idempotency_key,
                        str(exc) or type(exc).__name__,
                    )
                    return None
                if any(r.get("OutId") == query.idempotency_key for r in records):
                    return True
                if not records or page * QUERY_PAGE_SIZE >= total:
                    break
                page += 1
        return False

    # ---- receipts ----------------------------------------------------------------

    def parse_receipts(
        self,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> list[DeliveryReceipt]:
        self._authenticate_receipt(headers, query or {})
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReceiptFormatError(f"短信回执不是合法的 UTF-8 JSON：{exc}") from exc
        if not isinstance(payload, list):
            raise ReceiptFormatError("短信回执应为 JSON 数组")
        return [_parse_report(item, index) for index, item in enumerate(payload)]

    def _authenticate_receipt(self, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        self._authenticate(self._config.receipt_token, headers, query, "短信回执")

    def _authenticate(
        self,
        expected: SecretStr | None,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        what: str,
    ) -> None:
        if expected is None:
            # Fail closed: an unconfigured token must not turn into "accept everything".
            raise ReceiptAuthenticationError(f"未配置{what}令牌，拒绝处理")
        presented = query.get(self._config.receipt_token_param)
        if presented is None:
            presented = next(
                (v for k, v in headers.items() if k.lower() == RECEIPT_TOKEN_HEADER), None
            )
        if presented is None:
            raise ReceiptAuthenticationError(f"{what}缺少鉴权令牌")
        if not hmac.compare_digest(
            presented.encode("utf-8"), expected.get_secret_value().encode("utf-8")
        ):
            raise ReceiptAuthenticationError(f"{what}鉴权令牌不匹配")

    # ---- customers' replies ------------------------------------------------------

    def parse_uplinks(
        self,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> list[InboundSms]:
        self._authenticate(self._config.uplink_token, headers, query or {}, "上行短信")
        return parse_sms_up(body)


def send_dates(attempted_at: datetime) -> list[str]:
    """The Beijing dates (``yyyyMMdd``) under which Aliyun may have filed an attempt."""
    return sorted(
        {
            (attempted_at + shift).astimezone(_BEIJING).strftime("%Y%m%d")
            for shift in (-_SEND_DATE_MARGIN, _SEND_DATE_MARGIN)
        }
    )


class _QueryFailed(Exception):
    """Aliyun answered a query with an error, or with something not of the documented shape."""


def _send_details(response: httpx.Response) -> tuple[list[dict[str, Any]], int]:
    """One QuerySendDetails page: its records and the total count."""
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _QueryFailed(f"HTTP {response.status_code}: {response.text[:200]}") from exc
    if not isinstance(payload, dict):
        raise _QueryFailed(f"HTTP {response.status_code}: not a JSON object")
    if response.status_code != 200 or payload.get("Code") != "OK":
        raise _QueryFailed(
            f"HTTP {response.status_code} {payload.get('Code')}: {payload.get('Message')}"
        )
    dtos = payload.get("SmsSendDetailDTOs") or {}
    records = (dtos.get("SmsSendDetailDTO") if isinstance(dtos, dict) else None) or []
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise _QueryFailed("SmsSendDetailDTO is not a list of records")
    try:
        total = int(payload.get("TotalCount") or 0)  # a string in some SDK versions
    except (TypeError, ValueError) as exc:
        raise _QueryFailed(f"TotalCount is not a number: {payload.get('TotalCount')!r}") from exc
    return records, total


def _parse_report(item: object, index: int) -> DeliveryReceipt:
    if not isinstance(item, dict):
        raise ReceiptFormatError(f"第 {index} 条回执不是 JSON 对象")
    phone = item.get("phone_number")
    success = item.get("success")
    if not isinstance(phone, str) or not phone:
        raise ReceiptFormatError(f"第 {index} 条回执缺少 phone_number")
    if isinstance(success, str) and success.lower() in ("true", "false"):
        success = success.lower() == "true"
    if not isinstance(success, bool):
        raise ReceiptFormatError(f"第 {index} 条回执的 success 不是布尔值")
    return DeliveryReceipt(
        provider_message_id=_opt_str(item.get("biz_id")),
        out_id=_opt_str(item.get("out_id")),
        phone=phone,
        delivered=success,
        error_code=_opt_str(item.get("err_code")),
        error_message=_opt_str(item.get("err_msg")),
        submitted_at=_parse_time(item.get("send_time"), "send_time", index),
        reported_at=_parse_time(item.get("report_time"), "report_time", index),
    )


def parse_sms_up(body: bytes) -> list[InboundSms]:
    """One SmsUp push (a JSON array of replies); raises ReceiptFormatError when it is not
    of the documented shape."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReceiptFormatError(f"上行短信不是合法的 UTF-8 JSON：{exc}") from exc
    if not isinstance(payload, list):
        raise ReceiptFormatError("上行短信应为 JSON 数组")
    return [_parse_up(item, index) for index, item in enumerate(payload)]


def _parse_up(item: object, index: int) -> InboundSms:
    if not isinstance(item, dict):
        raise ReceiptFormatError(f"第 {index} 条上行短信不是 JSON 对象")
    phone, content, sequence = (
        item.get("phone_number"),
        item.get("content"),
        item.get("sequence_id"),
    )
    if not isinstance(phone, str) or not phone:
        raise ReceiptFormatError(f"第 {index} 条上行短信缺少 phone_number")
    if not isinstance(content, str):
        raise ReceiptFormatError(f"第 {index} 条上行短信缺少 content")
    # A number in the older documents, a string in the newer: the same id either way.
    if isinstance(sequence, bool) or not isinstance(sequence, int | str) or not str(sequence):
        raise ReceiptFormatError(f"第 {index} 条上行短信缺少 sequence_id")
    if len(str(sequence)) > 64:
        raise ReceiptFormatError(f"第 {index} 条上行短信的 sequence_id 过长")
    return InboundSms(
        provider_ref=str(sequence),
        phone=phone,
        content=content,
        sent_at=_parse_time(item.get("send_time"), "send_time", index, "上行短信"),
        dest_code=_opt_str(item.get("dest_code")),
        sign_name=_opt_str(item.get("sign_name")),
    )


def _opt_str(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _parse_time(value: object, field: str, index: int, what: str = "回执") -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ReceiptFormatError(f"第 {index} 条{what}的 {field} 不是字符串")
    try:
        return datetime.strptime(value, _RECEIPT_TIME_FORMAT).replace(tzinfo=_BEIJING)
    except ValueError as exc:
        raise ReceiptFormatError(f"第 {index} 条{what}的 {field} 格式错误：{value}") from exc
