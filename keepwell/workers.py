"""Running arq workers: one service's queue, or several in one process.

Production runs one worker process per service (and several replicas of each); ``keepwell
run`` puts every service's worker in one process, which starts in a fraction of the time
and memory on a developer's machine. Either way each queue is worked by the kernel's
:class:`~services.kit.worker.Worker`, which waits out a Redis outage instead of exiting.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
from collections.abc import Sequence
from typing import Any, cast

from arq.worker import get_kwargs

from services.kit.config import get_settings
from services.kit.worker import Worker, configure_worker_process


def run_workers(services: Sequence[str]) -> None:
    if len(services) > 1:
        # One name for the process's logs, and every queue's metrics on the first's port.
        configure_worker_process("workers", get_settings(), services[0])
    asyncio.run(_run_together(services))


def _settings_of(service: str) -> type:
    settings: type = importlib.import_module(f"services.{service}.worker").WorkerSettings
    return settings


async def _run_together(services: Sequence[str]) -> None:
    # arq's create_worker, with the kernel's Worker (arq types get_kwargs' values wrongly).
    workers = [
        Worker(**cast(dict[str, Any], get_kwargs(_settings_of(s))), handle_signals=False)
        for s in services
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = [asyncio.create_task(w.main()) for w in workers]
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([*running, stopping], return_when=asyncio.FIRST_COMPLETED)
    # A job cut short here runs again later: every job is safe to run twice.
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    for worker in workers:
        await worker.close()
    for task in running:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
