"""Zendesk-shaped answers of the emulator: ``ApiError`` and the error bodies the service sends.

Handlers raise ``ApiError``; the ``finalize`` middleware (``_server``) turns it into a JSON
response with the common headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec
from aiohttp import web

__all__ = [
    "BAD_PAGE_SIZE",
    "DEPTH_EXCEEDED",
    "FORBIDDEN",
    "INVALID_TOKEN",
    "INVALID_TOKEN_HEADERS",
    "JSON_TYPE",
    "MAX_OFFSET_PAGE",
    "MAX_PAGE_SIZE",
    "UNAUTHORIZED",
    "ApiError",
    "cursor_error",
    "json_response",
    "not_found_endpoint",
    "oauth_error",
    "raw_response",
    "record_not_found",
]

JSON_TYPE: Final = "application/json; charset=utf-8"
MAX_PAGE_SIZE: Final = 100
MAX_OFFSET_PAGE: Final = 100

_encode = msgspec.json.encode


class ApiError(Exception):
    """Raised by handlers; ``finalize`` turns it into a JSON error response."""

    def __init__(self, status: int, body: object, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers


def not_found_endpoint() -> ApiError:
    return ApiError(404, {"error": "InvalidEndpoint", "description": "Not found"})


def record_not_found() -> ApiError:
    return ApiError(404, {"error": "RecordNotFound", "description": "Not found"})


UNAUTHORIZED = {"error": "Couldn't authenticate you"}
INVALID_TOKEN = {
    "error": "invalid_token",
    "error_description": "The access token provided is expired, revoked, malformed or invalid "
    "for other reasons.",
}
INVALID_TOKEN_HEADERS = {
    "WWW-Authenticate": 'Bearer realm="Zendesk", error="invalid_token", '
    'error_description="The access token is invalid or has expired"'
}
_OAUTH_ERRORS = {
    "invalid_request": "The request is missing a required parameter, includes an unsupported "
    "parameter value, or is otherwise malformed.",
    "invalid_client": "Client authentication failed due to unknown client, no client "
    "authentication included, or unsupported authentication method.",
    "invalid_grant": "The provided authorization grant is invalid, expired, or revoked.",
    "unsupported_grant_type": "The authorization grant type is not supported by the "
    "authorization server.",
}
FORBIDDEN = {
    "error": {
        "title": "Forbidden",
        "message": "You do not have access to this page. Please contact the account owner of "
        "this help desk for further help.",
    }
}
BAD_PAGE_SIZE = {
    "error": "InvalidPaginationParameter",
    "description": f"page[size] must be between 1 and {MAX_PAGE_SIZE}",
}
DEPTH_EXCEEDED = {
    "errors": [
        {
            "code": "InvalidPaginationDepth",
            "title": "Pagination depth exceeded",
            "detail": "Offset pagination is limited to 100 pages / 10,000 records. "
            "Use cursor pagination instead.",
        }
    ]
}


def cursor_error(detail: str) -> ApiError:
    return ApiError(
        400,
        {
            "errors": [
                {"code": "InvalidPaginationParameter", "title": "Invalid cursor", "detail": detail}
            ]
        },
    )


def oauth_error(status: int, error: str, description: str | None = None) -> ApiError:
    return ApiError(
        status, {"error": error, "error_description": description or _OAUTH_ERRORS[error]}
    )


def json_response(status: int, body: object) -> web.Response:
    return web.Response(status=status, body=_encode(body), headers={"Content-Type": JSON_TYPE})


def raw_response(body: bytes) -> web.Response:
    return web.Response(status=200, body=body, headers={"Content-Type": JSON_TYPE})
