"""The complaint service's arq worker (for now: relaying its events)."""

from services.kit.worker import worker_settings

WorkerSettings = worker_settings("complaint", [])
