"""Persisted queries: Apollo's automatic persisted queries over GET and POST (stored in
Redis), the safelist of registered operations (``keepwell gateway register-operations``),
and a repeated operation skipping parsing and validation."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from strawberry.extensions.parser_cache import _get_parse_cache

from gateway import apikeys, operations
from gateway.config import GatewaySettings
from gateway.http import GRAPHQL_RESPONSE
from gateway.persisted import APQ_PREFIX
from services.kit.config import Settings
from services.kit.db import create_engine, create_sessionmaker, libpq_url, session_scope
from services.kit.testing import Infra
from tests.gateway.conftest import GATEWAY, bearer, gateway_client

VIEWER = "query Me { viewer { userId role } }"
PREFLIGHT = {"X-Requested-With": "XMLHttpRequest"}


def admin() -> dict[str, str]:
    """An admin's token, made when asked (tokens expire within minutes)."""
    return bearer("admin", "a1")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(text: str | None = None, digest: str | None = None) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest or sha(text or "")}}


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(settings) as client:
        yield client


@asynccontextmanager
async def safelisted(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(
        settings, GATEWAY.model_copy(update={"safelist": True, **changes})
    ) as c:
        yield c


async def register(database_url: str, *texts: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        found = [operations.Registrable(sha(t), None, "", t) for t in texts]
        async with session_scope(create_sessionmaker(engine)) as session:
            await operations.register(session, found, "test")
    finally:
        await engine.dispose()


class TestAutomaticPersistedQueriesOverPost:
    async def test_an_unknown_hash_then_hash_and_query_then_the_hash_alone(
        self, client: httpx.AsyncClient, redis: Redis
    ) -> None:
        hashed = {"extensions": persisted(VIEWER)}
        unknown = await client.post("/graphql", json=hashed, headers=admin())
        # As Apollo's clients expect it: 200, and they send the query with the hash.
        assert unknown.status_code == 200
        [error] = unknown.json()["errors"]
        assert error["message"] == "PersistedQueryNotFound"
        assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"

        registered = await client.post(
            "/graphql", json={"query": VIEWER, **hashed}, headers=admin()
        )
        assert registered.status_code == 200
        assert registered.json()["data"] == {"viewer": {"userId": "a1", "role": "admin"}}
        ttl = await redis.ttl(APQ_PREFIX + sha(VIEWER))
        assert 7 * 24 * 3600 - 60 < ttl <= 7 * 24 * 3600

        by_hash = await client.post("/graphql", json=hashed, headers=admin())
        assert by_hash.status_code == 200
        assert by_hash.json()["data"] == {"viewer": {"userId": "a1", "role": "admin"}}

    async def test_every_replica_finds_what_one_stored(
        self, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        hashed = {"extensions": persisted(VIEWER)}
        await client.post("/graphql", json={"query": VIEWER, **hashed}, headers=admin())
        async with gateway_client(settings) as other:
            found = await other.post("/graphql", json=hashed, headers=admin())
        assert found.json()["data"]["viewer"]["userId"] == "a1"

    async def test_a_hash_that_does_not_match_the_query_is_refused_and_not_stored(
        self, client: httpx.AsyncClient, redis: Redis
    ) -> None:
        wrong = sha("{ __typename }")
        response = await client.post(
            "/graphql",
            json={"query": VIEWER, "extensions": persisted(digest=wrong)},
            headers=admin(),
        )
        assert response.status_code == 400
        assert code_of(response) == "PERSISTED_QUERY_HASH_MISMATCH"
        assert await redis.exists(APQ_PREFIX + wrong) == 0

    async def test_an_operation_that_does_not_validate_is_not_stored(
        self, client: httpx.AsyncClient, redis: Redis
    ) -> None:
        invalid = "{ viewer { nope } }"
        response = await client.post(
            "/graphql", json={"query": invalid, "extensions": persisted(invalid)}, headers=admin()
        )
        assert response.json()["data"] is None
        assert await redis.exists(APQ_PREFIX + sha(invalid)) == 0

    async def test_not_found_is_200_for_graphql_response_json_too(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/graphql",
            json={"extensions": persisted("{ __typename }")},
            headers={"accept": GRAPHQL_RESPONSE},
        )
        assert response.status_code == 200
        assert code_of(response) == "PERSISTED_QUERY_NOT_FOUND"

    async def test_a_bad_persisted_query_extension_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        version_2 = {"persistedQuery": {"version": 2, "sha256Hash": sha(VIEWER)}}
        response = await client.post("/graphql", json={"extensions": version_2})
        assert response.status_code == 400
        assert code_of(response) == "PERSISTED_QUERY_VERSION_NOT_SUPPORTED"
        not_a_hash = await client.post("/graphql", json={"extensions": persisted(digest="abc")})
        assert not_a_hash.status_code == 400

    async def test_switched_off_a_hash_alone_is_not_supported(self, settings: Settings) -> None:
        off = GATEWAY.model_copy(update={"apq": False})
        async with gateway_client(settings, off) as client:
            response = await client.post("/graphql", json={"extensions": persisted(VIEWER)})
            with_query = await client.post(
                "/graphql",
                json={"query": VIEWER, "extensions": persisted(VIEWER)},
                headers=admin(),
            )
        assert response.status_code == 400
        assert response.json()["errors"][0]["message"] == "PersistedQueryNotSupported"
        assert code_of(response) == "PERSISTED_QUERY_NOT_SUPPORTED"
        assert with_query.json()["data"]["viewer"]["userId"] == "a1"


class TestAutomaticPersistedQueriesOverGet:
    async def test_the_same_flow_with_the_hash_in_the_url(self, client: httpx.AsyncClient) -> None:
        params = {"operationName": "Me", "extensions": json.dumps(persisted(VIEWER))}
        # curl's Accept (*/*) must not get the GraphiQL page (or its 404) for a hash.
        headers = {**admin(), **PREFLIGHT, "accept": "*/*"}
        unknown = await client.get("/graphql", params=params, headers=headers)
        assert unknown.status_code == 200, unknown.text
        assert code_of(unknown) == "PERSISTED_QUERY_NOT_FOUND"

        stored = await client.get("/graphql", params={**params, "query": VIEWER}, headers=headers)
        assert stored.json()["data"]["viewer"]["userId"] == "a1"

        by_hash = await client.get("/graphql", params=params, headers=headers)
        assert by_hash.status_code == 200
        assert by_hash.json()["data"]["viewer"]["userId"] == "a1"

    async def test_a_hash_over_get_needs_a_preflight_header_like_any_operation(
        self, client: httpx.AsyncClient
    ) -> None:
        params = {"extensions": json.dumps(persisted(VIEWER))}
        refused = await client.get("/graphql", params=params, headers=admin())
        assert refused.status_code == 400
        assert code_of(refused) == "CSRF_PREFLIGHT_REQUIRED"

    async def test_a_stored_mutation_is_still_refused_over_get(
        self, client: httpx.AsyncClient
    ) -> None:
        mutation = 'mutation { revokeApiKey(id: "nope") { __typename } }'
        await client.post(
            "/graphql", json={"query": mutation, "extensions": persisted(mutation)}, headers=admin()
        )
        response = await client.get(
            "/graphql",
            params={"extensions": json.dumps(persisted(mutation))},
            headers={**admin(), **PREFLIGHT},
        )
        assert response.status_code == 405


class TestCaches:
    async def test_a_repeated_operation_by_hash_skips_parsing(
        self, client: httpx.AsyncClient
    ) -> None:
        text = "query Cached { viewer { userId teamId } }"
        hashed = {"extensions": persisted(text)}
        await client.post("/graphql", json={"query": text, **hashed}, headers=admin())
        parse_cache = _get_parse_cache(256)
        hits = parse_cache.cache_info().hits
        for _ in range(3):
            response = await client.post("/graphql", json=hashed, headers=admin())
            assert "errors" not in response.json()
        assert parse_cache.cache_info().hits == hits + 3
        assert parse_cache.cache_info().maxsize == 256  # bounded


class TestSafelist:
    async def test_only_registered_operations_run(self, settings: Settings, infra: Infra) -> None:
        await register(infra.database_url, VIEWER)
        async with safelisted(settings) as client:
            unlisted = await client.post(
                "/graphql", json={"query": "{ viewer { userId } }"}, headers=admin()
            )
            assert unlisted.status_code == 400
            assert code_of(unlisted) == "OPERATION_NOT_SAFELISTED"

            by_hash = await client.post(
                "/graphql", json={"extensions": persisted(VIEWER)}, headers=admin()
            )
            assert by_hash.status_code == 200
            assert by_hash.json()["data"]["viewer"]["userId"] == "a1"

            by_text = await client.post("/graphql", json={"query": VIEWER}, headers=admin())
            assert by_text.json()["data"]["viewer"]["userId"] == "a1"

            unknown_hash = await client.post(
                "/graphql", json={"extensions": persisted("{ __typename }")}, headers=admin()
            )
            assert unknown_hash.status_code == 400
            assert code_of(unknown_hash) == "OPERATION_NOT_SAFELISTED"

            # APQ cannot add to the safelist.
            text = "{ __typename }"
            apq = await client.post(
                "/graphql", json={"query": text, "extensions": persisted(text)}, headers=admin()
            )
            assert code_of(apq) == "OPERATION_NOT_SAFELISTED"

    async def test_an_operation_registered_later_runs_soon_after(
        self, settings: Settings, infra: Infra, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("gateway.persisted.UNKNOWN_FOR_SECONDS", 0.0)
        text = "query Later { viewer { role } }"
        async with safelisted(settings) as client:
            before = await client.post("/graphql", json={"query": text}, headers=admin())
            assert code_of(before) == "OPERATION_NOT_SAFELISTED"
            await register(infra.database_url, text)
            after = await client.post("/graphql", json={"query": text}, headers=admin())
            assert after.json()["data"] == {"viewer": {"role": "admin"}}

    async def test_partners_are_held_to_it_only_when_configured(
        self, settings: Settings, infra: Infra
    ) -> None:
        engine = create_engine(infra.database_url, pool_size=1)
        try:
            async with session_scope(create_sessionmaker(engine)) as session:
                _, key = await apikeys.create(
                    session,
                    partner_id="bss",
                    name="feed",
                    scopes=["customers:read"],
                    created_by="test",
                )
        finally:
            await engine.dispose()
        partner = {"X-API-Key": key}
        typename = {"query": "{ __typename }"}
        async with safelisted(settings) as client:
            assert (await client.post("/graphql", json=typename, headers=partner)).json()[
                "data"
            ] == {"__typename": "Query"}
        async with safelisted(settings, safelist_partners=True) as client:
            refused = await client.post("/graphql", json=typename, headers=partner)
            assert code_of(refused) == "OPERATION_NOT_SAFELISTED"

    def test_on_in_production_off_elsewhere_unless_set(self) -> None:
        from gateway.persisted import PersistedQueries

        def on(production: bool, **changes: Any) -> bool:
            gateway = GatewaySettings(**changes)
            return PersistedQueries(None, None, gateway, production).safelist_on  # type: ignore[arg-type]

        assert on(True) and not on(False)
        assert on(False, safelist=True) and not on(True, safelist=False)


MANIFEST_OPERATIONS = [
    "query Me { viewer { userId role } }",
    "mutation Revoke($id: ID!) { revokeApiKey(id: $id) { __typename } }",
]


def keepwell(infra: Infra, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": infra.database_url, "REDIS_URL": infra.redis_url}
    return subprocess.run(
        [sys.executable, "-m", "keepwell", "gateway", "register-operations", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def registered(infra: Infra) -> dict[str, tuple[str | None, str, str]]:
    conn = await asyncpg.connect(libpq_url(infra.database_url))
    try:
        rows = await conn.fetch("SELECT id, name, type, body FROM gateway.operation")
    finally:
        await conn.close()
    return {r["id"]: (r["name"], r["type"], r["body"]) for r in rows}


class TestTheRegisterCommand:
    async def test_registers_an_apollo_manifest_once(
        self, infra: Infra, settings: Settings, tmp_path: Path
    ) -> None:
        manifest = {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": sha(b), "name": n, "type": t, "body": b}
                for b, n, t in zip(
                    MANIFEST_OPERATIONS, ["Me", "Revoke"], ["query", "mutation"], strict=True
                )
            ],
        }
        path = tmp_path / "persisted-query-manifest.json"
        path.write_text(json.dumps(manifest))

        first = keepwell(infra, str(path))
        assert first.returncode == 0, first.stderr
        assert f"{sha(MANIFEST_OPERATIONS[0])}  query  Me" in first.stdout
        assert first.stdout.strip().endswith("registered 2 new, 0 already registered")
        again = keepwell(infra, str(path))
        assert again.stdout.strip().endswith("registered 0 new, 2 already registered")

        rows = await registered(infra)
        assert rows[sha(MANIFEST_OPERATIONS[1])] == ("Revoke", "mutation", MANIFEST_OPERATIONS[1])

        async with safelisted(settings) as client:
            by_hash = await client.post(
                "/graphql", json={"extensions": persisted(MANIFEST_OPERATIONS[0])}, headers=admin()
            )
        assert by_hash.json()["data"] == {"viewer": {"userId": "a1", "role": "admin"}}

    async def test_registers_each_operation_of_a_graphql_file_with_its_fragments(
        self, infra: Infra, settings: Settings, tmp_path: Path
    ) -> None:
        path = tmp_path / "app.graphql"
        path.write_text(
            "fragment Who on Viewer { userId ...Where }\n"
            "fragment Where on Viewer { teamId }\n"
            "fragment Unused on Viewer { role }\n"
            "query Me { viewer { ...Who } }\n"
            "query Role { viewer { role } }\n"
        )
        result = keepwell(infra, str(path))
        assert result.returncode == 0, result.stderr
        rows = await registered(infra)
        assert sorted(name for name, _, _ in rows.values()) == ["Me", "Role"]
        [me] = [body for name, _, body in rows.values() if name == "Me"]
        assert "fragment Who" in me and "fragment Where" in me and "Unused" not in me
        assert f"{sha(me)}  query  Me" in result.stdout

        async with safelisted(settings) as client:
            response = await client.post("/graphql", json={"query": me}, headers=admin())
        assert response.json()["data"] == {"viewer": {"userId": "a1", "teamId": None}}

    async def test_a_file_with_a_bad_operation_registers_nothing(
        self, infra: Infra, tmp_path: Path
    ) -> None:
        good, bad = "query Me { viewer { userId } }", "query Bad { viewer { nope } }"
        manifest = {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": sha(good), "name": "Me", "type": "query", "body": good},
                {"id": sha(bad), "name": "Bad", "type": "query", "body": bad},
            ],
        }
        path = tmp_path / "manifest.json"
        path.write_text(json.dumps(manifest))
        result = keepwell(infra, str(path))
        assert result.returncode == 2
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: Bad：") and "nope" in line
        assert await registered(infra) == {}

        manifest["operations"] = [{"id": sha(bad), "name": "Me", "type": "query", "body": good}]
        path.write_text(json.dumps(manifest))
        mismatch = keepwell(infra, str(path))
        assert mismatch.returncode == 2
        assert "SHA-256" in mismatch.stderr
