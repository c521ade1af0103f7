"""What one operation may ask: depth, aliases, directives, root fields, tokens, length and
cost, counted over the fully expanded operation, with the defaults every documented query
passes. The refusals come before any service is called, so most of these need none."""

from __future__ import annotations

import ast
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import GraphQLList, GraphQLNonNull, get_named_type, is_composite_type, parse, validate

from gateway.config import GatewaySettings
from gateway.limits import LIST_SIZES, measure, refusals
from gateway.schema import schema
from services.kit.config import Settings
from tests.gateway.conftest import GATEWAY, bearer, gateway_client

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = GatewaySettings()
EDGE_TESTS = {"test_limits.py", "test_http_edge.py"}


def readme_queries() -> list[str]:
    return re.findall(r"```graphql\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def queries_of_the_tests() -> list[tuple[str, str]]:
    """Every string in tests/gateway that is a valid GraphQL document of this schema (but
    those of the edge's own tests, which are meant to be refused)."""
    found = []
    for path in sorted((ROOT / "tests" / "gateway").glob("test_*.py")):
        if path.name in EDGE_TESTS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                try:
                    document = parse(node.value)
                except Exception:  # not GraphQL
                    continue
                if not validate(schema._schema, document):
                    found.append((f"{path.name}:{node.lineno}", node.value))
    return found


def refused(query: str, limits: GatewaySettings = DEFAULTS, **variables: Any) -> dict[str, Any]:
    """The refusals of a document, by code (their extensions)."""
    measured = measure(schema._schema, parse(query), variables, limits.default_list_size)
    return {e.extensions["code"]: e.extensions for e in refusals(measured, limits)}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(settings) as client:
        yield client


async def ask(client: httpx.AsyncClient, query: str, **variables: Any) -> list[dict[str, Any]]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=bearer("admin")
    )
    assert response.status_code == 200, response.text
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert response.json()["data"] is None
    return errors


def nested(levels: int) -> str:
    """customer -> warnings -> customer -> ...: ``levels`` levels of nested fields."""
    names = ['customer(msisdn: "13800000000")']
    names += ["warnings" if i % 2 else "customer" for i in range(1, levels - 1)]
    query = "msisdn"
    for name in reversed(names):
        query = f"{name} {{ {query} }}"
    return f"{{ {query} }}"


class TestTheDocumentedQueriesPass:
    def test_the_readme_queries_pass_the_default_limits(self) -> None:
        queries = readme_queries()
        assert len(queries) == 2
        for query in queries:
            assert not validate(schema._schema, parse(query))
            assert refused(query) == {}

    def test_every_query_the_gateway_tests_send_passes_with_pages_of_100(self) -> None:
        queries = queries_of_the_tests()
        assert len(queries) > 20
        for where, query in queries:
            assert refused(query, first=100) == {}, where

    def test_the_figures_the_defaults_were_chosen_from(self) -> None:
        _, customer_360 = readme_queries()
        m = measure(schema._schema, parse(customer_360))[""]
        assert (m.depth, m.aliases, m.directives, m.root_fields) == (5, 0, 0, 1)
        assert m.cost < DEFAULTS.max_cost / 10
        costliest = max(
            m.cost
            for _, query in queries_of_the_tests()
            for m in measure(schema._schema, parse(query), {"first": 100}).values()
        )
        assert costliest * 1.5 < DEFAULTS.max_cost

    def test_declared_list_sizes_name_lists_of_objects(self) -> None:
        for key in LIST_SIZES:
            type_name, field_name = key.split(".")
            parent = schema._schema.get_type(type_name)
            assert parent is not None, key
            field = parent.fields[field_name]  # type: ignore[union-attr]
            of = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
            assert isinstance(of, GraphQLList), key
            assert is_composite_type(get_named_type(field.type)), key
            assert "first" not in field.args, key


class TestDepth:
    def test_depth_counts_levels_of_fields(self) -> None:
        assert refused(nested(DEFAULTS.max_depth)) == {}
        assert refused(nested(DEFAULTS.max_depth + 1))["QUERY_TOO_DEEP"] == {
            "code": "QUERY_TOO_DEEP",
            "depth": DEFAULTS.max_depth + 1,
            "maxDepth": DEFAULTS.max_depth,
        }

    def test_fragments_add_their_depth(self) -> None:
        query = """
        { customer(msisdn: "1") { ...A } }
        fragment A on Customer { warnings { customer { ...B } } }
        fragment B on Customer { warnings { customer { ...C } } }
        fragment C on Customer {
          warnings { customer { warnings { customer { warnings { msisdn } } } } }
        }
        """
        assert refused(query)["QUERY_TOO_DEEP"]["depth"] == 11

    async def test_a_deep_query_is_refused_with_its_code(self, client: httpx.AsyncClient) -> None:
        errors = await ask(client, nested(15))
        deep = [e["extensions"] for e in errors if e["extensions"]["code"] == "QUERY_TOO_DEEP"]
        assert deep == [{"code": "QUERY_TOO_DEEP", "depth": 15, "maxDepth": 10}]


class TestAliases:
    def test_aliases_are_counted(self) -> None:
        wide = "{ " + " ".join(f"v{i}: viewer {{ userId }}" for i in range(16)) + " }"
        assert refused(wide)["TOO_MANY_ALIASES"]["aliases"] == 16

    def test_a_fragment_spread_ten_times_counts_its_aliases_ten_times(self) -> None:
        # CVE-2026-47707's pattern: aliases multiplied through repeated spreads.
        aliases = " ".join(f"a{i}: userId" for i in range(10))
        spreads = " ".join(f"s{i}: viewer {{ ...F }}" for i in range(10))
        query = f"{{ {spreads} }} fragment F on Viewer {{ {aliases} }}"
        # 10 spreads x 10 aliases, and the 10 aliased viewers.
        assert refused(query)["TOO_MANY_ALIASES"]["aliases"] == 110
        plain = " ".join("viewer { ...F }" for _ in range(10))
        assert (
            refused(f"{{ {plain} }} fragment F on Viewer {{ {aliases} }}")["TOO_MANY_ALIASES"][
                "aliases"
            ]
            == 100
        )

    def test_nested_spreads_multiply_and_the_walk_stays_fast(self) -> None:
        # Each fragment spreads the next ten times: 10**40 aliases if expanded, counted
        # with each fragment measured once.
        fragments = [
            f"fragment F{i} on Viewer {{ {' '.join(f'...F{i + 1}' for _ in range(10))} }}"
            for i in range(40)
        ]
        fragments.append("fragment F40 on Viewer { a: userId }")
        query = "{ viewer { ...F0 } } " + " ".join(fragments)
        started = time.perf_counter()
        found = refused(query)
        assert time.perf_counter() - started < 1
        assert found["TOO_MANY_ALIASES"]["aliases"] >= 10**12

    async def test_alias_amplification_is_refused_with_its_code(
        self, client: httpx.AsyncClient
    ) -> None:
        aliases = " ".join(f"a{i}: userId" for i in range(10))
        spreads = " ".join("viewer { ...F }" for _ in range(10))
        errors = await ask(client, f"{{ {spreads} }} fragment F on Viewer {{ {aliases} }}")
        assert {e["extensions"]["code"] for e in errors} == {"TOO_MANY_ALIASES"}
        assert errors[0]["extensions"]["aliases"] == 100


class TestCircularFragments:
    @pytest.mark.parametrize(
        "query",
        [
            "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
            "{ viewer { ...V } } fragment V on Viewer { userId ...V }",
            '{ customer(msisdn: "1") { ...C } } '
            "fragment C on Customer { warnings { customer { ...C } } }",
        ],
    )
    async def test_a_circular_fragment_is_refused_not_followed(
        self, client: httpx.AsyncClient, query: str
    ) -> None:
        # CVE-2026-47706's pattern: a limiter that follows a cycle never returns.
        assert "CIRCULAR_FRAGMENT" in refused(query)
        errors = await ask(client, query)
        assert [e["extensions"]["code"] for e in errors] == ["CIRCULAR_FRAGMENT"]


class TestCost:
    COSTLY = """
    query ($first: Int!) {
      customers(first: $first) {
        nodes {
          msisdn
          warnings { customer { complaints { number sla { metrics { metric state dueAt } } } } }
        }
      }
    }
    """

    def test_lists_multiply_by_first_or_their_size(self) -> None:
        # customers 1 + nodes (1 + first x (msisdn 1 + warnings (1 + 9 x (customer (1 +
        #   complaints (1 + 10 x (number 1 + sla (1 + metrics (1 + 5 x 3)))))))))
        per_customer = 1 + (1 + 9 * (1 + (1 + 10 * (1 + (1 + (1 + 5 * 3))))))
        for first in (1, 10):
            found = measure(schema._schema, parse(self.COSTLY), {"first": first})[""]
            assert found.cost == 1 + 1 + first * per_customer
        assert refused(self.COSTLY, first=10) == {}
        assert refused(self.COSTLY, first=100)["QUERY_TOO_COSTLY"]["cost"] == (
            2 + 100 * per_customer
        )

    def test_an_unbounded_list_counts_the_default_size_and_first_defaults_apply(self) -> None:
        # customers' `first` defaults to 50; Customer.complaints is declared (10);
        # Query.managers is unbounded (the default size, 50).
        query = "{ customers { nodes { complaints { number } } } }"
        assert measure(schema._schema, parse(query))[""].cost == 1 + 1 + 50 * (1 + 10 * 1)
        unbounded = "{ managers { id } }"
        assert measure(schema._schema, parse(unbounded))[""].cost == 1 + 50 * 1
        small = DEFAULTS.model_copy(update={"default_list_size": 2})
        assert (
            measure(schema._schema, parse(unbounded), None, small.default_list_size)[""].cost
            == 1 + 2 * 1
        )

    async def test_a_costly_query_is_refused_with_its_cost(self, client: httpx.AsyncClient) -> None:
        errors = await ask(client, self.COSTLY, first=100)
        assert [e["extensions"]["code"] for e in errors] == ["QUERY_TOO_COSTLY"]
        assert errors[0]["extensions"]["cost"] > errors[0]["extensions"]["maxCost"]
        assert errors[0]["extensions"]["maxCost"] == GATEWAY.max_cost

    async def test_a_cached_validation_does_not_let_a_costlier_variable_through(
        self, client: httpx.AsyncClient
    ) -> None:
        # The same text twice: validated once (cached), measured each time with its variables.
        for first in (10, 100, 100):
            errors = await ask(client, self.COSTLY, first=first)
            codes = [e["extensions"]["code"] for e in errors]
            assert ("QUERY_TOO_COSTLY" in codes) is (first == 100), (first, codes)


class TestTheOtherLimits:
    async def test_too_many_root_fields(self, client: httpx.AsyncClient) -> None:
        query = "{ " + " ".join(["viewer { userId }"] * 11) + " }"
        errors = await ask(client, query)
        assert errors[0]["extensions"] == {
            "code": "TOO_MANY_ROOT_FIELDS",
            "rootFields": 11,
            "maxRootFields": 10,
        }

    async def test_too_many_directives(self, client: httpx.AsyncClient) -> None:
        query = "{ viewer { " + "userId @include(if: true) " * 21 + "} }"
        errors = await ask(client, query)
        assert errors[0]["extensions"]["code"] == "TOO_MANY_DIRECTIVES"

    async def test_too_many_tokens_before_parsing(self, client: httpx.AsyncClient) -> None:
        query = "{ viewer { " + "userId " * 1000 + "} }"
        errors = await ask(client, query)
        assert errors[0]["extensions"] == {"code": "TOO_MANY_TOKENS", "maxTokens": 1000}

    async def test_too_long_a_query(self, client: httpx.AsyncClient) -> None:
        query = "{ viewer { userId } }\n# " + "x" * 15_000
        errors = await ask(client, query)
        assert errors[0]["extensions"]["code"] == "QUERY_TOO_LONG"

    async def test_every_limit_is_a_setting(self, settings: Settings) -> None:
        strict = GATEWAY.model_copy(update={"max_depth": 2, "max_cost": 2})
        async with gateway_client(settings, strict) as client:
            errors = await ask(client, "{ viewer { team { name } } }")
        assert {e["extensions"]["code"] for e in errors} == {"QUERY_TOO_DEEP", "QUERY_TOO_COSTLY"}
