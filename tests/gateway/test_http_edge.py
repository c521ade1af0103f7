"""GraphQL over HTTP at the edge: body size, batching, CSRF, methods and media types, CORS,
and what production keeps to itself (introspection, suggestions, unexpected errors)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.clients.base import ServiceClient
from gateway.http import GRAPHQL_RESPONSE, prefers_graphql_response
from services.kit.config import Settings
from tests.gateway.conftest import GATEWAY, gateway_client, production

TYPENAME = {"query": "{ __typename }"}
PREFLIGHT = {"X-Requested-With": "XMLHttpRequest"}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(settings) as client:
        yield client


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


class TestBodySize:
    async def test_a_declared_length_over_the_limit_is_refused_unread(
        self, client: httpx.AsyncClient
    ) -> None:
        body = json.dumps({"query": "{ __typename }", "pad": "x" * (2 * 1024 * 1024)})
        response = await client.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert code_of(response) == "BODY_TOO_LARGE"

    async def test_a_streamed_body_is_refused_once_past_the_limit(
        self, client: httpx.AsyncClient
    ) -> None:
        sent = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal sent
            yield b'{"query": "{ __typename }", "pad": "'
            for _ in range(100):  # 6.4 MB if it were all read
                sent += 1
                yield b"x" * 65536
            yield b'"}'

        response = await client.post(
            "/graphql", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert code_of(response) == "BODY_TOO_LARGE"
        assert sent < 40, "the body is not read past the limit"

    async def test_a_body_under_the_limit_passes(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/graphql", json={**TYPENAME, "pad": "x" * 100_000})
        assert response.status_code == 200
        assert response.json()["data"] == {"__typename": "Query"}


class TestBatching:
    async def test_an_array_of_operations_is_refused_by_default(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/graphql", json=[TYPENAME, TYPENAME])
        assert response.status_code == 400
        assert code_of(response) == "BATCHING_DISABLED"

    async def test_batches_are_capped_when_allowed(self, settings: Settings) -> None:
        gateway = GATEWAY.model_copy(update={"max_batch_operations": 2})
        async with gateway_client(settings, gateway) as client:
            two = await client.post("/graphql", json=[TYPENAME, TYPENAME])
            three = await client.post("/graphql", json=[TYPENAME] * 3)
        assert two.status_code == 200
        assert [r["data"] for r in two.json()] == [{"__typename": "Query"}] * 2
        assert three.status_code == 400
        assert code_of(three) == "TOO_MANY_OPERATIONS"


class TestCsrf:
    @pytest.mark.parametrize(
        "content_type",
        ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
    )
    async def test_a_simple_content_type_needs_a_preflight_header(
        self, client: httpx.AsyncClient, content_type: str
    ) -> None:
        body = json.dumps(TYPENAME)
        refused = await client.post(
            "/graphql", content=body, headers={"content-type": content_type}
        )
        assert refused.status_code == 400
        assert code_of(refused) == "CSRF_PREFLIGHT_REQUIRED"
        # With the header it is no cross-site request, but still no JSON.
        unsupported = await client.post(
            "/graphql", content=body, headers={"content-type": content_type, **PREFLIGHT}
        )
        assert unsupported.status_code == 415

    async def test_a_get_operation_needs_a_preflight_header(
        self, client: httpx.AsyncClient
    ) -> None:
        refused = await client.get("/graphql", params=TYPENAME)
        assert refused.status_code == 400
        assert code_of(refused) == "CSRF_PREFLIGHT_REQUIRED"
        for header in ({"X-Requested-With": "x"}, {"Apollo-Require-Preflight": "true"}):
            allowed = await client.get("/graphql", params=TYPENAME, headers=header)
            assert allowed.status_code == 200, allowed.text
            assert allowed.json()["data"] == {"__typename": "Query"}
        # A JSON content type cannot be sent cross-site without a preflight either.
        json_get = await client.get(
            "/graphql", params=TYPENAME, headers={"content-type": "application/json"}
        )
        assert json_get.status_code == 200
        # Asking for the GraphiQL page is no operation (404 where there is none).
        page = await client.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code in (200, 404)

    async def test_json_needs_no_preflight_header(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/graphql", json=TYPENAME)
        assert response.status_code == 200


class TestMethodsAndMediaTypes:
    async def test_a_mutation_over_get_is_405(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            "/graphql",
            params={"query": 'mutation { revokeApiKey(id: "1") { __typename } }'},
            headers=PREFLIGHT,
        )
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert code_of(response) == "METHOD_NOT_ALLOWED"

    async def test_a_post_that_is_not_json_is_415(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/graphql", content="<query/>", headers={"content-type": "application/xml"}
        )
        assert response.status_code == 415
        assert code_of(response) == "UNSUPPORTED_MEDIA_TYPE"

    async def test_a_body_that_is_not_json_is_a_coded_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/graphql", content="{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert code_of(response) == "BAD_REQUEST"

    @pytest.mark.parametrize(
        ("accept", "prefers"),
        [
            (GRAPHQL_RESPONSE, True),
            (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", True),
            (f"application/json, {GRAPHQL_RESPONSE}", False),
            (f"application/json;q=0.5, {GRAPHQL_RESPONSE}", True),
            ("application/json", False),
            ("*/*", False),
            ("", False),
            (f"{GRAPHQL_RESPONSE};q=0", False),
        ],
    )
    def test_which_accept_headers_prefer_graphql_response_json(
        self, accept: str, prefers: bool
    ) -> None:
        assert prefers_graphql_response(accept) is prefers

    async def test_graphql_response_json_gets_its_media_type_and_status_codes(
        self, client: httpx.AsyncClient
    ) -> None:
        accept = {"accept": GRAPHQL_RESPONSE}
        ok = await client.post("/graphql", json=TYPENAME, headers=accept)
        assert ok.status_code == 200
        assert ok.headers["content-type"].startswith(GRAPHQL_RESPONSE)
        for query in ("{ __typename", "{ nope }", nested_too_deep()):
            bad = await client.post("/graphql", json={"query": query}, headers=accept)
            assert bad.status_code == 400, query
            assert bad.headers["content-type"].startswith(GRAPHQL_RESPONSE)
            assert "data" not in bad.json() and bad.json()["errors"]
        # Variables that do not coerce: a request error as well.
        bad_variables = await client.post(
            "/graphql",
            json={"query": "query ($n: Int!) { customers(first: $n) { nodes { msisdn } } }"},
            headers=accept,
        )
        assert bad_variables.status_code == 400
        # A field's error is no request error: the operation ran.
        ran = await client.post("/graphql", json={"query": "{ viewer { userId } }"}, headers=accept)
        assert ran.status_code == 200
        assert ran.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    async def test_application_json_keeps_200_for_graphql_errors(
        self, client: httpx.AsyncClient
    ) -> None:
        for query in ("{ __typename", "{ nope }"):
            response = await client.post("/graphql", json={"query": query})
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["data"] is None


def nested_too_deep() -> str:
    query = "msisdn"
    for _ in range(6):
        query = f"warnings {{ customer {{ {query} }} }}"
    return f'{{ customer(msisdn: "1") {{ {query} }} }}'


class TestCors:
    async def test_no_origin_is_allowed_by_default(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/graphql", json=TYPENAME, headers={"origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in response.headers
        preflight = await client.options(
            "/graphql",
            headers={
                "origin": "https://evil.example",
                "access-control-request-method": "POST",
            },
        )
        assert "access-control-allow-origin" not in preflight.headers

    async def test_configured_origins_are_allowed(self, settings: Settings) -> None:
        gateway = GATEWAY.model_copy(update={"cors_origins": ["https://app.example"]})
        async with gateway_client(settings, gateway) as client:
            preflight = await client.options(
                "/graphql",
                headers={
                    "origin": "https://app.example",
                    "access-control-request-method": "POST",
                    "access-control-request-headers": "authorization, content-type",
                },
            )
            other = await client.post(
                "/graphql", json=TYPENAME, headers={"origin": "https://other.example"}
            )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-origin" not in other.headers


class TestProduction:
    @pytest.fixture
    async def live(self, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        # What production hides, for any operation: the safelist (on in production) has
        # tests of its own (test_persisted_queries.py).
        unlisted = GATEWAY.model_copy(update={"safelist": False})
        async with gateway_client(production(settings), unlisted) as client:
            yield client

    async def test_introspection_is_refused(self, live: httpx.AsyncClient) -> None:
        response = await live.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        assert response.json()["data"] is None
        assert {e["extensions"]["code"] for e in response.json()["errors"]} == {
            "INTROSPECTION_DISABLED"
        }
        # __typename is no introspection of the schema.
        assert (await live.post("/graphql", json=TYPENAME)).json()["data"] == {
            "__typename": "Query"
        }

    async def test_introspection_and_suggestions_outside_production(
        self, client: httpx.AsyncClient
    ) -> None:
        schema = await client.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        assert "errors" not in schema.json()
        typo = await client.post("/graphql", json={"query": "{ customerz { msisdn } }"})
        assert "Did you mean" in typo.json()["errors"][0]["message"]

    async def test_no_suggestions(self, live: httpx.AsyncClient) -> None:
        response = await live.post("/graphql", json={"query": "{ customerz { msisdn } }"})
        message = response.json()["errors"][0]["message"]
        assert message == "Cannot query field 'customerz' on type 'Query'."

    async def test_no_graphiql(self, live: httpx.AsyncClient) -> None:
        response = await live.get("/graphql", headers={"accept": "text/html"})
        assert response.status_code == 404

    async def test_an_unexpected_error_is_masked_with_the_request_id(
        self, live: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def broken(self: ServiceClient) -> Any:
            raise RuntimeError("SELECT password FROM staff at http://10.1.2.3:8001/internal")

        monkeypatch.setattr(ServiceClient, "readiness", broken)
        response = await live.post(
            "/graphql", json={"query": "{ health { service } }"}, headers={"X-Request-ID": "r-42"}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["data"] is None
        assert body["errors"] == [
            {
                "message": "内部错误",
                "locations": [{"line": 1, "column": 3}],
                "path": ["health"],
                "extensions": {"code": "INTERNAL", "requestId": "r-42"},
            }
        ]
        assert "10.1.2.3" not in response.text and "SELECT" not in response.text

    async def test_coded_errors_pass_unmasked(self, live: httpx.AsyncClient) -> None:
        response = await live.post("/graphql", json={"query": "{ viewer { userId } }"})
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert response.json()["errors"][0]["message"].startswith("请先登录")
