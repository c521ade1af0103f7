"""`keepwell apikey`: an operator makes a partner's key on the command line (shown once),
lists it without the secret, revokes it; the gateway then refuses it."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from services.kit.testing import Infra


def keepwell(infra: Infra, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": infra.database_url, "REDIS_URL": infra.redis_url}
    return subprocess.run(
        [sys.executable, "-m", "keepwell", "apikey", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_key_made_listed_and_revoked_on_the_command_line(
    infra: Infra, gateway: httpx.AsyncClient
) -> None:
    made = keepwell(infra, "create", "--partner", "bss", "--scope", "customers:read")
    assert made.returncode == 0, made.stderr
    info, key = made.stdout.strip().splitlines()
    key_id = info.split()[1]
    assert key.startswith(f"kw_{key_id}_")

    listed = keepwell(infra, "list")
    assert key_id in listed.stdout and "active" in listed.stdout
    assert key.split("_")[-1] not in listed.stdout

    query = {"query": "{ customers(first: 1) { nodes { msisdn } } }"}
    ok = await gateway.post("/graphql", json=query, headers={"X-API-Key": key})
    assert ok.status_code == 200 and "errors" not in ok.json()

    assert keepwell(infra, "revoke", key_id).returncode == 0
    refused = await gateway.post("/graphql", json=query, headers={"X-API-Key": key})
    assert refused.status_code == 401

    unknown = keepwell(infra, "create", "--partner", "bss", "--scope", "everything")
    assert unknown.returncode == 2
    [line] = unknown.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("error: scopes：") and "everything" in line
