"""Small HTTP helpers the relay's routes share: JSON errors, headers, and the 503 that
answers any request needing a store that cannot answer now."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .store.base import StoreUnavailable


def json_error(status: int, message: str, field_name: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if field_name is not None:
        body["field"] = field_name
    return web.json_response(body, status=status)


def header(request: web.Request, name: str) -> str:
    """A header as text; "" when it is not UTF-8, since no token, password or admin token
    is anything but UTF-8 (aiohttp hands such bytes on as surrogates, which nothing
    downstream can encode)."""
    value = request.headers.get(name, "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return value


@web.middleware
async def store_unavailable_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except StoreUnavailable as exc:
        # Retry-After: the store reconnects with backoff; a client asking again soon is fine.
        response = json_error(503, f"relay store unavailable: {exc.reason}")
        response.headers["Retry-After"] = "5"
        return response
