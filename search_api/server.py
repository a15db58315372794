"""`firstseen serve`: decide where to listen (loopback only without API keys) and run uvicorn."""

from __future__ import annotations

import ipaddress
import logging

from search_api.logs import configure_logging
from search_api.settings import ApiSettings

log = logging.getLogger("search_api")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_host(settings: ApiSettings, requested: str) -> tuple[str, str | None]:
    """The host to bind and, when it differs from the one asked for, why."""
    if settings.auth_required or is_loopback(requested):
        return requested, None
    return "127.0.0.1", (
        f"no API keys are configured (FIRSTSEEN_API_READ_KEYS, FIRSTSEEN_API_ADMIN_KEYS), so the API is "
        f"open to anyone who can reach it: listening on 127.0.0.1 only, not {requested}"
    )


def serve(settings: ApiSettings, *, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    from search_api.app import create_app

    configure_logging()
    bind, why = listen_host(settings, host or settings.api_host)
    if why:
        log.warning(why)
    elif not settings.auth_required:
        log.warning("no API keys are configured: the API is open to local users (listening on %s)", bind)
    port = port or settings.api_port
    log.info("FirstSeen API on http://%s:%d/ (docs at /docs), archive in %s", bind, port, settings.data_dir)
    # uvicorn's access log would repeat what the metrics middleware logs, without structure.
    uvicorn.run(
        create_app(settings), host=bind, port=port, access_log=False, log_config=None, timeout_graceful_shutdown=30
    )
