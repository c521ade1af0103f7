"""The sandbox SMS provider: an HTTP service that accepts what a real SMS API would.

It records every accepted message, including a second one with an idempotency key it has
already seen (that is a duplicate our dispatcher must never cause), can be told to fail or
slow down, answers "did you get this key?" lookups, and can push delivery receipts to a
callback URL, authenticated the way the care service expects (``?token=``).

``POST /replies`` plays a customer answering our SMS (拒收请回复R: the customer sends R):
the reply is pushed to the uplink URL as Aliyun pushes SmsUp messages (a JSON array of
``phone_number``, ``content``, ``send_time``, ``dest_code``, ``sequence_id``,
``sign_name``; ``?token=``), and pushed again until the receiver answers 200, as Aliyun
re-pushes; ``POST /replies/{sequence_id}/push`` pushes one again, as Aliyun does when our
answer was lost.

State lives in the process's memory: it is a fake operator, not part of our data.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.kit import clock
from services.kit.tracing import FASTAPI_TELEMETRY

logger = logging.getLogger("keepwell.care.sandbox")

BEIJING = ZoneInfo("Asia/Shanghai")
SIGN_NAME = "Keepwell"
DEST_CODE = "8009"

FailMode = Literal["none", "transient", "permanent"]


class Message(BaseModel):
    idempotency_key: str
    phone: str
    text: str
    template_code: str | None = None
    template_params: dict[str, str] = {}


class SendRequest(BaseModel):
    messages: list[Message]


class Result(BaseModel):
    idempotency_key: str
    status: Literal["accepted", "failed_transient", "failed_permanent"]
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after_seconds: float | None = None


class SendResponse(BaseModel):
    results: list[Result]


class Control(BaseModel):
    """How the sandbox misbehaves. Every field is optional on update."""

    fail_mode: FailMode = "none"
    fail_rate: float = Field(1.0, ge=0, le=1)
    """Share of messages that fail with ``fail_mode`` (chosen by key, so stable)."""
    fail_phones: dict[str, str] = {}
    """Phone -> error code; these always fail permanently with that code, except the code
    ``"transient"``, which fails them transiently (retried with back-off)."""
    delay_ms: int = Field(0, ge=0)
    hold_after: int | None = Field(None, ge=0)
    """Once this many messages are accepted, a send call still accepts its messages but
    gives no answer until this is cleared: an operator whose responses are lost, the case
    the dispatcher's re-driver exists for."""
    receipt_url: str | None = None
    receipt_token: str | None = None
    uplink_url: str | None = None
    """Where customers' replies are pushed (the care service's /sms/uplinks/sandbox)."""
    uplink_token: str | None = None
    keep: int = Field(200_000, ge=0)
    """How many message records to keep for listing (counts cover all of them)."""


class ControlUpdate(BaseModel):
    fail_mode: FailMode | None = None
    fail_rate: float | None = Field(None, ge=0, le=1)
    fail_phones: dict[str, str] | None = None
    delay_ms: int | None = Field(None, ge=0)
    hold_after: int | None = Field(None, ge=0)
    receipt_url: str | None = None
    receipt_token: str | None = None
    uplink_url: str | None = None
    uplink_token: str | None = None
    keep: int | None = Field(None, ge=0)


class Record(BaseModel):
    idempotency_key: str
    phone: str
    text: str
    provider_message_id: str
    at: datetime


class Stats(BaseModel):
    calls: int
    accepted: int
    unique: int
    duplicates: int
    failed: int
    held: int
    """Send calls waiting for ``hold_after`` to be cleared."""


class ReplyCreate(BaseModel):
    """A customer sending an SMS to us: usually an answer to one of ours."""

    phone: str = Field(pattern=r"^1[3-9]\d{9}$")
    content: str = Field(min_length=1, max_length=500)
    dest_code: str = DEST_CODE


class Reply(BaseModel):
    """An uplink as Aliyun pushes it (SmsUp), plus whether our receiver has taken it."""

    phone_number: str
    content: str
    send_time: str
    """Beijing time, ``2017-09-01 00:00:00``, as Aliyun writes it."""
    dest_code: str
    sequence_id: int
    sign_name: str
    pushes: int = 0
    """Push attempts so far (a failed one is tried again every second)."""
    accepted: bool = False
    """The receiver answered 200 to a push of it."""

    def pushed(self) -> dict[str, Any]:
        return self.model_dump(exclude={"pushes", "accepted"})


class LookupRequest(BaseModel):
    keys: list[str]


class LookupResponse(BaseModel):
    found: dict[str, str]
    """Idempotency key -> provider message id, for keys the sandbox accepted."""


@dataclass
class State:
    control: Control = field(default_factory=Control)
    ids: dict[str, int] = field(default_factory=dict)
    """Accepted idempotency key -> number of its first acceptance (the message id)."""
    repeats: dict[str, int] = field(default_factory=dict)
    """Keys accepted more than once -> how many extra times: the duplicates."""
    records: list[Record] = field(default_factory=list)
    calls: int = 0
    accepted: int = 0
    failed: int = 0
    held: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)
    sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    receipts: deque[dict[str, Any]] = field(default_factory=deque)
    replies: dict[int, Reply] = field(default_factory=dict)
    """Sequence id -> every reply customers sent, in order."""
    uplinks: deque[int] = field(default_factory=deque)
    """Sequence ids waiting to be pushed."""
    reply_sequence: itertools.count[int] = field(
        default_factory=lambda: itertools.count(1_000_000_001)
    )


def _share(key: str) -> float:
    digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") / 2**32


def create_app(initial: Control | None = None) -> FastAPI:
    state = State(control=initial or Control())
    receipt_wakeup = asyncio.Event()
    uplink_wakeup = asyncio.Event()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pushers = [asyncio.create_task(push_receipts()), asyncio.create_task(push_uplinks())]
        try:
            yield
        finally:
            for pusher in pushers:
                pusher.cancel()

    app = FastAPI(
        title="Keepwell SMS sandbox", version="1", lifespan=lifespan, telemetry=FASTAPI_TELEMETRY
    )

    def outcome(message: dict[str, Any]) -> dict[str, Any]:
        control = state.control
        key = str(message["idempotency_key"])
        phone = str(message["phone"])
        code = control.fail_phones.get(phone)
        if code == "transient":
            return {
                "idempotency_key": key,
                "status": "failed_transient",
                "error_code": "sandbox.TRANSIENT",
                "error_message": "号码被沙箱设为临时失败",
            }
        if code is not None:
            return {
                "idempotency_key": key,
                "status": "failed_permanent",
                "error_code": code,
                "error_message": "号码被沙箱设为永久失败",
            }
        if control.fail_mode != "none" and _share(key) < control.fail_rate:
            transient = control.fail_mode == "transient"
            return {
                "idempotency_key": key,
                "status": f"failed_{control.fail_mode}",
                "error_code": "sandbox.TRANSIENT" if transient else "sandbox.REJECTED",
                "error_message": "沙箱按设置返回失败",
            }
        number = next(state.sequence)
        message_id = f"sb-{number}"
        if key in state.ids:
            state.repeats[key] = state.repeats.get(key, 0) + 1
        else:
            state.ids[key] = number
        state.accepted += 1
        if len(state.records) < control.keep:
            state.records.append(
                Record(
                    idempotency_key=key,
                    phone=phone,
                    text=str(message["text"]),
                    provider_message_id=message_id,
                    at=clock.now(),
                )
            )
        if control.receipt_url:
            state.receipts.append(
                {
                    "idempotency_key": key,
                    "phone": phone,
                    "provider_message_id": message_id,
                    "delivered": True,
                    "reported_at": clock.now().isoformat(),
                }
            )
            receipt_wakeup.set()
        return {"idempotency_key": key, "status": "accepted", "provider_message_id": message_id}

    async def push_receipts() -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                await receipt_wakeup.wait()
                receipt_wakeup.clear()
                while state.receipts and state.control.receipt_url:
                    batch = [state.receipts.popleft() for _ in range(min(500, len(state.receipts)))]
                    try:
                        response = await client.post(
                            state.control.receipt_url,
                            params={"token": state.control.receipt_token or ""},
                            json=batch,
                        )
                        response.raise_for_status()
                    except httpx.HTTPError:
                        # A real operator re-pushes later; so do we.
                        logger.warning("receipt push failed; retrying", exc_info=True)
                        state.receipts.extendleft(reversed(batch))
                        await asyncio.sleep(1.0)

    async def push_uplinks() -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                await uplink_wakeup.wait()
                uplink_wakeup.clear()
                while state.uplinks and state.control.uplink_url:
                    batch = [state.uplinks.popleft() for _ in range(min(100, len(state.uplinks)))]
                    replies = [state.replies[n] for n in batch if n in state.replies]
                    for reply in replies:
                        reply.pushes += 1
                    try:
                        response = await client.post(
                            state.control.uplink_url,
                            params={"token": state.control.uplink_token or ""},
                            json=[r.pushed() for r in replies],
                        )
                        response.raise_for_status()
                    except httpx.HTTPError:
                        logger.warning("uplink push failed; retrying", exc_info=True)
                        state.uplinks.extendleft(reversed(batch))
                        await asyncio.sleep(1.0)
                        continue
                    for reply in replies:
                        reply.accepted = True

    def queue_uplink(sequence_id: int) -> None:
        state.uplinks.append(sequence_id)
        uplink_wakeup.set()

    @app.post("/replies", status_code=201)
    async def reply(body: ReplyCreate) -> Reply:
        """A customer replies (e.g. R to a message that said 拒收请回复R); pushed at once."""
        sequence_id = next(state.reply_sequence)
        record = Reply(
            phone_number=body.phone,
            content=body.content,
            send_time=clock.now().astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            dest_code=body.dest_code,
            sequence_id=sequence_id,
            sign_name=SIGN_NAME,
        )
        state.replies[sequence_id] = record
        queue_uplink(sequence_id)
        return record

    @app.get("/replies")
    async def replies(phone: str | None = None) -> list[Reply]:
        return [r for r in state.replies.values() if phone is None or r.phone_number == phone]

    @app.post("/replies/{sequence_id}/push")
    async def push_again(sequence_id: int) -> Reply:
        """Push a reply again, as Aliyun does when our answer to it was lost."""
        record = state.replies.get(sequence_id)
        if record is None:
            raise HTTPException(404, f"no reply {sequence_id}")
        queue_uplink(sequence_id)
        return record

    @app.post(
        "/send",
        openapi_extra={
            "requestBody": {
                "content": {"application/json": {"schema": SendRequest.model_json_schema()}}
            }
        },
        response_model=SendResponse,
    )
    async def send(request: Request) -> JSONResponse:
        # Parsed by hand: at hundreds of messages per call, model validation would be most
        # of the sandbox's work, and the benchmark measures our dispatcher, not the fake.
        try:
            messages = (await request.json())["messages"]
            state.calls += 1
            if state.control.delay_ms:
                await asyncio.sleep(state.control.delay_ms / 1000)
            holding = (
                state.control.hold_after is not None and state.accepted >= state.control.hold_after
            )
            results = [outcome(m) for m in messages]
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)
        if holding:
            state.held += 1
            try:
                await state.released.wait()
            finally:
                state.held -= 1
        state.failed += sum(1 for r in results if r["status"] != "accepted")
        return JSONResponse({"results": results})

    @app.post("/lookup")
    async def lookup(request: LookupRequest) -> LookupResponse:
        return LookupResponse(
            found={k: f"sb-{state.ids[k]}" for k in request.keys if k in state.ids}
        )

    @app.get("/messages")
    async def messages(
        offset: int = 0, limit: int = 1000, phone: str | None = None
    ) -> list[Record]:
        chosen = [r for r in state.records if phone is None or r.phone == phone]
        return chosen[offset : offset + limit]

    @app.get("/stats")
    async def stats() -> Stats:
        return Stats(
            calls=state.calls,
            accepted=state.accepted,
            unique=len(state.ids),
            duplicates=sum(state.repeats.values()),
            failed=state.failed,
            held=state.held,
        )

    @app.get("/control")
    async def get_control() -> Control:
        return state.control

    @app.post("/control")
    async def set_control(update: ControlUpdate) -> Control:
        state.control = state.control.model_copy(update=update.model_dump(exclude_unset=True))
        if state.control.hold_after is None:
            state.released.set()
        else:
            state.released.clear()
        if state.control.uplink_url and state.uplinks:
            uplink_wakeup.set()
        return state.control

    @app.post("/reset")
    async def reset() -> Stats:
        state.ids.clear()
        state.repeats.clear()
        state.records.clear()
        state.receipts.clear()
        state.replies.clear()
        state.uplinks.clear()
        state.calls = state.accepted = state.failed = 0
        state.control = Control()
        state.released.set()
        return await stats()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "sms-sandbox"}

    return app
