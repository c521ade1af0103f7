"""One line instead of a traceback when a command cannot reach the database, Redis or a
service: which URL, what went wrong, what to do."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from services.kit.outages import chain, raised_through, unavailable

HINT = "start the system with `make run` (or `keepwell run`) or set {var}"


def masked(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _kind(exc: BaseException) -> str | None:
    """database, redis, http or None (not a reachability problem)."""
    down = unavailable(exc)
    if down is not None:
        return down
    for found in chain(exc):
        module = type(found).__module__
        # A server that is there but refuses us: for a command, as good as unreachable.
        if module.startswith("asyncpg") and type(found).__name__ in (
            "InvalidCatalogNameError",
            "InvalidPasswordError",
            "InvalidAuthorizationSpecificationError",
        ):
            return "database"
        if module.startswith("sqlalchemy") and type(found).__name__ in (
            "OperationalError",
            "InterfaceError",
        ):
            return "database"
        if module.startswith(("httpx", "httpcore")) and type(found).__name__ in (
            "ConnectError",
            "ConnectTimeout",
            "ReadTimeout",
            "RemoteProtocolError",
        ):
            return "http"
        if isinstance(found, OSError) and raised_through(found, "httpx", "httpcore"):
            return "http"
    return None


def innermost(exc: BaseException) -> BaseException:
    """The exception at the end of ``exc``'s chain of causes (the first to be raised)."""
    return list(chain(exc))[-1]


def innermost_reason(exc: BaseException) -> str:
    """The first line of what the innermost exception of the chain says."""
    last = innermost(exc)
    text = str(last).strip().splitlines()[0] if str(last).strip() else type(last).__name__
    return text


def _http_url(exc: BaseException) -> str:
    for found in chain(exc):
        request = getattr(found, "_request", None)
        if request is not None:
            return str(request.url)
    return "a service"


def explain(exc: BaseException) -> str | None:
    """The one line for ``exc``, or None when it is not about reaching something."""
    kind = _kind(exc)
    if kind is None:
        return None
    from services.kit.config import SERVICES, get_settings
    from services.kit.runfile import RUN_FILE, data_dir_from_environ, live_run, read

    settings = get_settings()
    if kind == "database":
        where, var = masked(settings.database_url), "DATABASE_URL"
    elif kind == "redis":
        where, var = masked(settings.redis_url), "REDIS_URL"
    else:
        where, var = _http_url(exc), "KEEPWELL_<SERVICE>_URL"
        for service in SERVICES:
            if where.startswith(settings.url_of(service)):
                var = f"KEEPWELL_{service.upper()}_URL"
    hint = HINT.format(var=var)
    recorded = data_dir_from_environ() / RUN_FILE
    if live_run(data_dir_from_environ()) is None:
        stale = read(data_dir_from_environ())
        hint += (
            f" (the run recorded in {recorded}, pid {stale.pid}, has stopped)"
            if stale is not None
            else f" (no running system recorded in {recorded})"
        )
    reason = innermost_reason(exc)
    return f"error: cannot reach {where}: {reason}; {hint}; --debug shows the traceback"
