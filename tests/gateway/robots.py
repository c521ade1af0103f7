"""A stand-in for the WeCom and DingTalk group robots, served over real HTTP by the tests.

WeCom: ``POST /cgi-bin/webhook/send?key=K``. DingTalk: ``POST /robot/send?access_token=T``,
and for a robot given a 加签 secret ``&timestamp=<ms>&sign=<sign>``, checked as DingTalk
does: the timestamp within an hour of now, the sign the URL-decoded base64 of
HMAC-SHA256(key=secret, msg="<timestamp>\\n<secret>") (errcode 310000 otherwise). Both
answer ``{"errcode": 0, "errmsg": "ok"}`` and record the message, unless told to answer
an error for the next calls. Written apart from gateway/channels, so that it checks the
format rather than repeating the code under test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class Received:
    robot: str
    """``wecom:<key>`` or ``dingtalk:<access_token>``."""
    body: dict[str, Any]


@dataclass
class Robots:
    secrets: dict[str, str] = field(default_factory=dict)
    """DingTalk access token -> its 加签 secret (robots not listed are unsigned)."""
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Why each refused call was refused."""
    delay_seconds: float = 0.0
    _errors: deque[tuple[int, int]] = field(default_factory=deque)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def answer_next(self, calls: int, *, errcode: int = 0, status: int = 200) -> None:
        """The next ``calls`` calls get this HTTP status and errcode instead of ok."""
        self._errors.extend([(status, errcode)] * calls)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()

    def bodies(self, robot: str) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.robot == robot]

    async def _answer(self, robot: str, request: Request) -> JSONResponse:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)  # to make concurrent senders overlap
        if self._errors:
            status, errcode = self._errors.popleft()
            self.refused.append(f"told to: HTTP {status} errcode {errcode}")
            return JSONResponse({"errcode": errcode, "errmsg": "stand-in error"}, status)
        self.received.append(Received(robot, await request.json()))
        self._arrived.set()
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    def _refuse(self, why: str) -> JSONResponse:
        self.refused.append(why)
        return JSONResponse({"errcode": 310000, "errmsg": why})

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/cgi-bin/webhook/send")
        async def wecom(key: str, request: Request) -> JSONResponse:
            return await self._answer(f"wecom:{key}", request)

        @app.post("/robot/send")
        async def dingtalk(
            access_token: str,
            request: Request,
            timestamp: str | None = None,
            sign: str | None = None,
        ) -> JSONResponse:
            secret = self.secrets.get(access_token)
            if secret is not None:
                if timestamp is None or sign is None:
                    return self._refuse("sign not match: no timestamp or sign")
                if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > 3600_000:
                    return self._refuse("invalid timestamp")
                expected = base64.b64encode(
                    hmac.new(
                        secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256
                    ).digest()
                ).decode()
                if not hmac.compare_digest(expected, sign):
                    return self._refuse("sign not match")
            return await self._answer(f"dingtalk:{access_token}", request)

        return app
