"""GraphQL over HTTP at the gateway's edge, around strawberry's FastAPI router.

Before the router (:class:`EdgeMiddleware`, plain ASGI, nothing read yet): a body larger
than ``max_body_bytes`` is refused from its Content-Length, or as soon as a streamed body
goes past it; and a request a browser could send cross-site without a preflight (a GET
operation or a POST, with a simple content type or none) needs a preflight header
(``X-Requested-With``, ``Apollo-Require-Preflight``).

The router (:class:`EdgeRouter`) fills what strawberry leaves out: a mutation over GET is
405 with ``Allow: POST``; a POST that is not JSON is 415; a JSON array of operations
(batching) is refused, or capped at ``max_batch_operations``; a client whose ``Accept``
prefers ``application/graphql-response+json`` gets that media type and the status codes
of the GraphQL-over-HTTP spec (400 for a request error: a document that does not parse or
validate, variables that do not coerce, an operation over the limits), while
``application/json`` keeps strawberry's behaviour (200 for every GraphQL response); a
refusal by the rate limits (gateway/ratelimit.py) is 429 for either. Before an operation
runs, the router fills in the query of a persisted query's hash, or refuses what the
safelist does not hold (gateway/persisted.py); a GET with only a hash (``extensions``) is
an operation to CSRF prevention, and no request for the GraphiQL page.
Every refusal, here or in strawberry, is a GraphQL error body with ``extensions.code``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, GraphQLRequestProtocol
from strawberry.http.base import BaseRequestProtocol
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from gateway.config import GatewaySettings
from gateway.context import Context
from gateway.live.subscriptions import admit
from gateway.observe import Observer, Seen

if TYPE_CHECKING:
    from gateway.persisted import PersistedQueries

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
SIMPLE_CONTENT_TYPES = frozenset(
    {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""}
)
"""What a browser sends cross-site without a preflight (and no content type at all)."""

HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "BODY_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


class Rejection(HTTPException):
    """A request refused at the edge, with its stable code and any headers it needs."""

    def __init__(
        self, status: int, message: str, code: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, message)
        self.code = code
        self.headers = dict(headers or {})


def prefers_graphql_response(accept: str) -> bool:
    """Whether ``Accept`` prefers ``application/graphql-response+json`` to
    ``application/json`` (higher q; on a tie, the one listed first)."""
    ranked: dict[str, tuple[float, int]] = {}
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranked.setdefault(media.lower(), (q, -position))
    best = ranked.get(GRAPHQL_RESPONSE, (0.0, 0))
    return best[0] > 0 and best > ranked.get(JSON, (0.0, -len(ranked) - 1))


def error_body(message: str, code: str, **extensions: Any) -> bytes:
    error = {"message": message, "extensions": {"code": code, **extensions}}
    return json.dumps({"errors": [error]}, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(
    status: int,
    message: str,
    code: str,
    accept: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    media = GRAPHQL_RESPONSE if prefers_graphql_response(accept) else JSON
    return Response(
        error_body(message, code),
        status_code=status,
        media_type=media,
        headers=dict(headers or {}),
    )


class _BodyTooLarge(Exception):
    pass


class EdgeMiddleware:
    """Body size for every path; CSRF prevention for GraphQL (``path``)."""

    def __init__(self, app: ASGIApp, gateway: GatewaySettings, path: str = "/graphql") -> None:
        self.app = app
        self.max_body = gateway.max_body_bytes
        self.csrf = gateway.csrf_prevention
        self.preflight = tuple(h.lower().encode() for h in gateway.csrf_preflight_headers)
        self.path = path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        accept = headers.get(b"accept", b"").decode("latin-1")

        async def refuse(status: int, message: str, code: str) -> None:
            await error_response(status, message, code, accept)(scope, receive, send)

        too_large = f"请求体过大：上限 {self.max_body} 字节"
        length = headers.get(b"content-length")
        if length is not None and not length.isdigit():
            await refuse(400, "Content-Length 无效", "BAD_REQUEST")
            return
        if length is not None and int(length) > self.max_body:
            await refuse(413, too_large, "BODY_TOO_LARGE")
            return
        if (
            self.csrf
            and scope["path"].rstrip("/") == self.path
            and self._needs_preflight(scope)
            and not any(headers.get(h, b"").strip() for h in self.preflight)
        ):
            names = " / ".join(h.decode() for h in self.preflight)
            await refuse(400, f"此请求须带预检请求头（{names}）", "CSRF_PREFLIGHT_REQUIRED")
            return

        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _BodyTooLarge:
            if started:
                raise
            await refuse(413, too_large, "BODY_TOO_LARGE")

    @staticmethod
    def _needs_preflight(scope: Scope) -> bool:
        """A request a browser page on another origin could send without a preflight: a
        GET operation or a POST, with a simple content type or none (a page cannot set
        ``application/json`` cross-site without a preflight)."""
        method = scope["method"]
        query_string = scope.get("query_string", b"").decode("latin-1")
        # The GraphiQL page (a GET without a query) is no operation; a persisted query's
        # hash (``extensions``) is one.
        params = parse_qs(query_string) if method == "GET" else {}
        if not (method == "POST" or "query" in params or "extensions" in params):
            return False
        content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
        media, _ = parse_content_type(content_type)
        return media.lower() in SIMPLE_CONTENT_TYPES


class EdgeRouter(GraphQLRouter[Context, None]):
    """strawberry's router with the gateway's HTTP rules (see the module's docstring)."""

    def __init__(
        self, *args: Any, gateway: GatewaySettings, observer: Observer, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_batch = gateway.max_batch_operations
        self.observer = observer

    async def run(  # type: ignore[override]
        self,
        request: Request | WebSocket,
        context: Context = UNSET,
        root_value: None = UNSET,
    ) -> Response | WebSocket:
        if isinstance(request, WebSocket):
            try:
                return await super().run(request, context, root_value)
            finally:
                if context and context.live is not None:
                    context.live.close()
        accept = request.headers.get("accept", "")
        request.state.graphql_request_error = False
        try:
            response: Response = await super().run(request, context, root_value)
        except Rejection as e:
            return error_response(e.status_code, e.reason, e.code, accept, e.headers)
        except HTTPException as e:
            code = HTTP_CODES.get(e.status_code, "BAD_REQUEST")
            return error_response(e.status_code, e.reason, code, accept)
        if response.media_type == JSON and prefers_graphql_response(accept):
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE}; charset=utf-8"
            # A status set on purpose (429 of the rate limits) stays.
            if request.state.graphql_request_error and response.status_code == 200:
                response.status_code = 400
        return response

    async def on_ws_connect(self, context: Context) -> None:
        await admit(context)

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        # A GET with only a persisted query's hash is an operation, not the page.
        return super().should_render_graphql_ide(request) and (
            "extensions" not in request.query_params
        )

    def encode_json(self, data: object) -> bytes:
        """The answer as UTF-8 JSON, by orjson (strawberry's ``json.dumps`` took ten times
        as long and escaped every Chinese character); what orjson refuses (a key that is
        no string, an integer beyond 64 bits) the standard library writes as before."""
        try:
            return orjson.dumps(data)
        except TypeError:
            return json.dumps(data, separators=(",", ":")).encode()

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method == "POST":
            media, _ = parse_content_type(request.content_type or "")
            if media.lower() != JSON:
                raise Rejection(
                    415,
                    f"不支持的 Content-Type：{media or '（无）'}；请用 {JSON}",
                    "UNSUPPORTED_MEDIA_TYPE",
                    {"Accept-Post": JSON},
                )
        return await super().parse_http_body(request)

    def _validate_batch_request(
        self, request_data: list[GraphQLRequestData], protocol: GraphQLRequestProtocol
    ) -> None:
        if self.max_batch == 0:
            raise Rejection(400, "不支持批量请求：每个请求一个操作", "BATCHING_DISABLED")
        if len(request_data) > self.max_batch:
            raise Rejection(
                400,
                f"批量请求的操作过多：{len(request_data)} 个，上限 {self.max_batch}",
                "TOO_MANY_OPERATIONS",
            )
        if protocol != "http":
            raise Rejection(400, "流式请求不能批量", "BATCHING_DISABLED")

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        with self.observer.operation() as seen:
            context.seen = seen
            try:
                result = await self._execute_observed(
                    request, request_adapter, sub_response, context, request_data, seen
                )
            except Rejection as e:
                seen.refused(e.code)
                raise
            except HTTPException as e:
                seen.refused(HTTP_CODES.get(e.status_code, "BAD_REQUEST"))
                raise
            seen.answered(result.errors, None if _is_request_error(result) else context.cost)
            return result

    async def _execute_observed(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        request_data: GraphQLRequestData,
        seen: Seen,
    ) -> ExecutionResult:
        # Persisted queries (gateway/persisted.py): the query of a hash, or the safelist's.
        persisted: PersistedQueries | None = getattr(request.app.state, "persisted", None)
        remember = None
        if persisted is not None:
            resolved = await persisted.resolve(request_data, partner=context.scopes is not None)
            request_data, remember = resolved.data, resolved.remember
            seen.registered = resolved.registered
        try:
            result = await super().execute_single(
                request, request_adapter, sub_response, context, None, request_data
            )
        except HTTPException as e:
            if request_adapter.method == "GET" and isinstance(
                e.__cause__, InvalidOperationTypeError
            ):
                raise Rejection(
                    405, "GET 只能用于查询；变更请用 POST", "METHOD_NOT_ALLOWED", {"Allow": "POST"}
                ) from e
            raise
        if (
            persisted is not None
            and remember
            and request_data.query
            and not _is_request_error(result)
        ):
            await persisted.remember(remember, request_data.query)
        return result

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if _is_request_error(result):
            # A request error: nothing ran. graphql-response+json answers it with 400.
            request.state.graphql_request_error = True
            if prefers_graphql_response(request.headers.get("accept", "")):
                response.pop("data", None)
        return response


def _is_request_error(result: ExecutionResult) -> bool:
    """No data and no error on a field's path: parse, validation, variables or limits."""
    errors: Sequence[Any] = result.errors or ()
    return result.data is None and bool(errors) and all(e.path is None for e in errors)
