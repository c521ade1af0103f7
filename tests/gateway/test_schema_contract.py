"""The schema file is the contract apps are built against."""

from __future__ import annotations

from gateway.contract import SCHEMA_FILE, changes, current_sdl


def test_the_committed_schema_is_the_code_s_schema() -> None:
    assert SCHEMA_FILE.read_text() == current_sdl(), (
        "gateway/schema.graphql differs from the code: check `keepwell schema check` "
        "for breaking changes, then `keepwell schema export`"
    )


def test_removing_a_field_or_requiring_an_argument_is_breaking() -> None:
    old = current_sdl()
    removed = old.replace("  honorific: String!\n", "", 1)
    breaking, _ = changes(old, removed)
    assert any("honorific" in line and "removed" in line for line in breaking)

    required = old.replace(
        "customer(msisdn: String = null, id: ID = null): Customer",
        "customer(msisdn: String = null, id: ID = null, why: String!): Customer",
    )
    assert required != old
    breaking, _ = changes(old, required)
    assert any("why" in line for line in breaking)

    added = old.replace("  honorific: String!\n", "  honorific: String!\n  nickname: String\n", 1)
    assert changes(old, added) == ([], [])


def test_every_type_and_field_has_a_description_or_a_self_evident_name() -> None:
    from gateway.schema import schema

    graphql_schema = schema._schema
    undocumented = [
        name
        for name, t in graphql_schema.type_map.items()
        if not name.startswith("__")
        and name
        not in (
            "String",
            "Int",
            "Float",
            "Boolean",
            "ID",
            "Date",
            "DateTime",
            "Decimal",
            "JSON",
            "UUID",
            "Query",
            "Mutation",
        )
        and not t.description
    ]
    assert undocumented == []
