"""Property test: every operation of every service's OpenAPI document, driven by
schemathesis with inputs that fit the schema and inputs that do not, answers without a 5xx,
and (for inputs that fit) with a body its schema declares.

Each app is served by uvicorn on a loopback port (in a thread: schemathesis calls over
HTTP, synchronously) against the session's PostgreSQL and Redis, as an admin, who passes
every role gate, so the inputs reach the routes. Few examples per operation keep the
whole run within about a minute on a small machine.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from services.kit.config import SERVICES
from services.kit.testing import Infra, free_port

EXAMPLES = 6  # per operation and mode


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def drive(
    operation: Any, mode: GenerationMode, url: str, auth: dict[str, str], calls: list[int]
) -> list[str]:
    failures: list[str] = []
    checks = [not_a_server_error]
    if mode is GenerationMode.POSITIVE:
        checks.append(response_schema_conformance)

    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same inputs on every run: a failure is reproducible
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(base_url=url, headers=auth, timeout=30)
        calls.append(response.status_code)
        try:
            case.validate_response(response, checks=checks)
        except Exception as exc:  # collect every finding, not only the first
            failures.append(
                f"{operation.label} [{mode.value}] {response.status_code}: "
                f"{case.as_curl_command()}\n  {str(exc)[:500]}"
            )

    # Unsatisfiable: nothing of this mode to generate (no inputs means no negative ones).
    with suppress(Unsatisfiable):
        run()
    return failures


@pytest.mark.parametrize("service", SERVICES)
def test_no_input_makes_a_route_fail(service: str, infra: Infra, token: Callable[..., str]) -> None:
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app()
    auth = {"Authorization": f"Bearer {token('admin', team='T1')}"}
    failures: list[str] = []
    operations, calls = 0, []
    with served(app) as url:
        schema = schemathesis.openapi.from_dict(app.openapi())
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path in ("/metrics",):
                continue
            operations += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                failures += drive(operation, mode, url, auth, calls)
    assert operations > 5 and len(calls) > 4 * operations
    print(f"{service}: {operations} operations, {len(calls)} calls", sorted(set(calls)))
    assert not failures, "\n".join(failures)
