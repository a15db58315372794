"""API keys and their two scopes (read: search and videos; admin: also ingest and remove)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from enum import Enum

from fastapi import Request

from search_api.errors import ApiError
from search_api.settings import ApiSettings


class Scope(str, Enum):
    READ = "read"
    ADMIN = "admin"


class KeyRing:
    """The configured keys. Comparison is constant-time per key and visits every key, so
    neither the timing nor the log says which key, or how much of one, was right."""

    def __init__(self, read_keys: list[str], admin_keys: list[str]):
        self._read = [k.encode() for k in read_keys]
        self._admin = [k.encode() for k in admin_keys]

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> KeyRing:
        return cls(
            [k.get_secret_value() for k in settings.api_read_keys],
            [k.get_secret_value() for k in settings.api_admin_keys],
        )

    @property
    def enabled(self) -> bool:
        return bool(self._read or self._admin)

    def scope_of(self, presented: str) -> Scope | None:
        given = presented.encode()
        admin = _any_equal(given, self._admin)
        read = _any_equal(given, self._read)
        if admin:
            return Scope.ADMIN
        return Scope.READ if read else None


def _any_equal(given: bytes, keys: list[bytes]) -> bool:
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key)
    return found


def presented_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer KEY` or `X-API-Key: KEY`. Never from the URL:
    query strings end up in access logs and browser history."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


def require(scope: Scope) -> Callable[[Request], None]:
    """A FastAPI dependency admitting requests whose key has `scope` (admin includes read)."""

    def check(request: Request) -> None:
        keys: KeyRing = request.app.state.keys
        if not keys.enabled:
            return  # no keys configured: the server is bound to loopback (see server.py)
        key = presented_key(request)
        if key is None:
            raise ApiError(
                401,
                "unauthorized",
                "an API key is required (Authorization: Bearer KEY)",
                {"WWW-Authenticate": "Bearer"},
            )
        granted = keys.scope_of(key)
        if granted is None:
            raise ApiError(401, "unauthorized", "the API key is not valid", {"WWW-Authenticate": "Bearer"})
        if scope is Scope.ADMIN and granted is not Scope.ADMIN:
            raise ApiError(403, "forbidden", "this needs an admin key")

    return check
