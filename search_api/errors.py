"""Every error the API returns, as {"error": {"code", "message"}} with the right status: never a bare 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from firstseen.errors import BadInputError, FirstSeenError

log = logging.getLogger("search_api")

# The status each core error code maps to; a BadInputError not listed here is a plain 400.
STATUS_BY_CODE = {
    "empty_file": 400,
    "bad_input": 400,
    "bad_time": 422,
    "not_media": 415,
    "no_video_stream": 415,
    "unreadable_media": 422,
    "truncated": 422,
    "too_long": 422,
    "image_too_large": 413,
    "not_found": 404,
    "archive_busy": 409,
    "archive_unavailable": 503,
    "descriptor_unavailable": 503,
}


class ApiError(Exception):
    """An error the shell itself raises (auth, limits, unknown ids)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def status_of(exc: FirstSeenError) -> int:
    if exc.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[exc.code]
    return 400 if isinstance(exc, BadInputError) else 500


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(FirstSeenError)
    async def _core_error(request: Request, exc: FirstSeenError) -> JSONResponse:
        status = status_of(exc)
        if status >= 500:
            log.error("core error on %s %s: %s", request.method, request.url.path, exc)
        return error_response(status, exc.code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return error_response(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(
            exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail), getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with the traceback for the operator; the caller gets no internals.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; the server log has the details")
