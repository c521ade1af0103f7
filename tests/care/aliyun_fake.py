"""A fake of Aliyun's dysmsapi gateway answering `QuerySendDetails`, as an ASGI app served
on a real port: it checks every request's signature (V1 or V3) and answers from a list of
records of what Aliyun "sent", page by page, in the documented shape."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.care.providers.aliyun import sign_v1, sign_v3

ACCESS_KEY_ID = "LTAI-keepwell-test"
ACCESS_KEY_SECRET = "keepwell-test-secret"
BEIJING = timezone(timedelta(hours=8))

_STATUS_CODES = {1: "", 2: "MK:0001", 3: "DELIVERED"}


@dataclass(frozen=True)
class Record:
    """One message Aliyun accepted."""

    phone: str
    out_id: str
    sent_at: datetime
    status: int = 3
    """1 waiting for a receipt, 2 failed, 3 delivered."""


@dataclass
class FakeDysms:
    records: list[Record] = field(default_factory=list)
    throttled: set[str] = field(default_factory=set)
    """Phone numbers whose queries are refused with ``Throttling.User``."""
    queries: list[dict[str, str]] = field(default_factory=list)
    """Phone, date and page of every valid, correctly signed query, in order."""
    actions: list[str] = field(default_factory=list)

    def answer(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        phone = params.get("PhoneNumber", "")
        send_date = params.get("SendDate", "")
        try:
            size = int(params["PageSize"])
            page = int(params.get("CurrentPage", "1"))
        except (KeyError, ValueError):
            return 200, {"Code": "isv.INVALID_PARAMETERS", "Message": "PageSize"}
        if not phone or len(send_date) != 8 or not 1 <= size <= 50 or page < 1:
            return 200, {"Code": "isv.INVALID_PARAMETERS", "Message": "参数异常"}
        self.queries.append({"PhoneNumber": phone, "SendDate": send_date, "CurrentPage": str(page)})
        if phone in self.throttled:
            return 400, {
                "Code": "Throttling.User",
                "Message": "Request was denied due to user flow control.",
            }
        matching = [
            r
            for r in self.records
            if r.phone == phone and r.sent_at.astimezone(BEIJING).strftime("%Y%m%d") == send_date
        ]
        shown = matching[(page - 1) * size : page * size]
        return 200, {
            "Code": "OK",
            "Message": "OK",
            "RequestId": "819BE656-D2E0-4858-8B21-B2E477085",
            "TotalCount": len(matching),
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": [_dto(r) for r in shown]},
        }


def _dto(record: Record) -> dict[str, Any]:
    sent = record.sent_at.astimezone(BEIJING)
    return {
        "PhoneNum": record.phone,
        "SendStatus": record.status,
        "ErrCode": _STATUS_CODES[record.status],
        "TemplateCode": "SMS_123456789",
        "Content": "【客户关怀】尊敬的客户您好",
        "SendDate": sent.strftime("%Y-%m-%d %H:%M:%S"),
        "ReceiveDate": (sent + timedelta(seconds=5)).strftime("%Y-%m-%d %H:%M:%S"),
        "OutId": record.out_id,
    }


def _signed_v1(params: dict[str, str]) -> bool:
    presented = params.pop("Signature", None)
    return presented == sign_v1("POST", params, ACCESS_KEY_SECRET)


def _signed_v3(headers: dict[str, str], query: dict[str, str], body: bytes) -> bool:
    _, _, rest = headers["authorization"].partition(" ")
    fields = dict(part.split("=", 1) for part in rest.split(","))
    names = fields.get("SignedHeaders", "").split(";")
    if fields.get("Credential") != ACCESS_KEY_ID or any(n not in headers for n in names):
        return False
    payload_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-acs-content-sha256") != payload_hash:
        return False
    expected = sign_v3(
        method="POST",
        canonical_uri="/",
        query=query,
        headers={n: headers[n] for n in names},
        hashed_payload=payload_hash,
        access_key_id=ACCESS_KEY_ID,
        access_key_secret=ACCESS_KEY_SECRET,
    )
    return headers["authorization"] == expected.authorization


def create_app(fake: FakeDysms) -> FastAPI:
    app = FastAPI()

    @app.post("/")
    async def gateway(request: Request) -> JSONResponse:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query_params)
        if "authorization" in headers:
            params = query
            signed = _signed_v3(headers, query, body)
            action = headers.get("x-acs-action", "")
            version = headers.get("x-acs-version", "")
        else:
            params = dict(parse_qsl(body.decode("ascii"), keep_blank_values=True))
            signed = _signed_v1(dict(params))
            action = params.get("Action", "")
            version = params.get("Version", "")
        if not signed:
            return JSONResponse(
                {"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched."},
                status_code=400,
            )
        fake.actions.append(action)
        if action != "QuerySendDetails" or version != "2017-05-25":
            return JSONResponse({"Code": "InvalidAction", "Message": action}, status_code=400)
        status, answer = fake.answer(params)
        return JSONResponse(answer, status_code=status)

    return app
