"""Credentials (headers, secrecy, validation) and the error classes (messages, hierarchy)."""

from __future__ import annotations

import base64
import copy
import pickle
from typing import Any

import pytest

import zdactivity
from zdactivity import (
    APIError,
    APIToken,
    Auth,
    AuthenticationError,
    Client,
    DecodeError,
    InvalidRequestError,
    NotFoundError,
    OAuthToken,
    PaginationDepthError,
    PaginationError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TransportError,
    ZendeskError,
)
from zdactivity import errors as errors_module
from zdactivity import protocol as p

EMAIL = "dana.agent@northwind.example"
SECRET = "kR9vQ2xT7mWzB4nL8pYc1dF6hJ3sG5aE0uI"
OAUTH_SECRET = "8f1c2d9e0b7a4c3f5e6d1a2b9c8e7f60aa11bb22cc33dd44ee55ff6677889900"


def b64_secret(email: str = EMAIL, token: str = SECRET) -> str:
    return base64.b64encode(f"{email}/token:{token}".encode()).decode()


# --- APIToken ---------------------------------------------------------------------------------


def test_api_token_header() -> None:
    auth = APIToken(EMAIL, SECRET)
    header = auth.authorization()
    assert header == "Basic " + b64_secret()
    scheme, _, encoded = header.partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"{EMAIL}/token:{SECRET}"
    assert auth.email == EMAIL


def test_api_token_header_with_non_ascii_email() -> None:
    auth = APIToken("zoë@example.com", "t0k")
    decoded = base64.b64decode(auth.authorization().removeprefix("Basic "))
    assert decoded == "zoë@example.com/token:t0k".encode()


def test_api_token_equality() -> None:
    assert APIToken(EMAIL, SECRET) == APIToken(EMAIL, SECRET)
    assert hash(APIToken(EMAIL, SECRET)) == hash(APIToken(EMAIL, SECRET))
    assert APIToken(EMAIL, SECRET) != APIToken(EMAIL, SECRET + "x")
    assert APIToken(EMAIL, SECRET) != APIToken("other@northwind.example", SECRET)
    assert APIToken(EMAIL, SECRET) != OAuthToken(SECRET)


def test_oauth_token_header() -> None:
    auth = OAuthToken(OAUTH_SECRET)
    assert auth.authorization() == f"Bearer {OAUTH_SECRET}"
    assert auth.access_token == OAUTH_SECRET


def test_credentials_are_auth() -> None:
    assert isinstance(APIToken(EMAIL, SECRET), Auth)
    assert isinstance(OAuthToken(OAUTH_SECRET), Auth)


@pytest.mark.parametrize("render", [repr, str, lambda x: f"{x}", lambda x: f"{x!r:>200}"])
def test_reprs_never_show_secrets(render: Any) -> None:
    api, oauth = APIToken(EMAIL, SECRET), OAuthToken(OAUTH_SECRET)
    for text in (render(api), render(oauth), render([api, oauth]), render({"auth": api})):
        assert SECRET not in text
        assert OAUTH_SECRET not in text
        assert b64_secret() not in text
        assert "***" in text
    assert EMAIL in render(api)  # the email is not a secret and helps debugging


def test_api_token_has_no_public_secret_attribute() -> None:
    auth = APIToken(EMAIL, SECRET)
    public = {name: getattr(auth, name) for name in dir(auth) if not name.startswith("_")}
    assert all(SECRET not in str(value) for value in public.values() if not callable(value))


def test_client_repr_hides_the_secret() -> None:
    client = Client(subdomain="northwind", auth=APIToken(EMAIL, SECRET))
    assert SECRET not in repr(client)
    assert b64_secret() not in repr(client)
    viewed = client.with_auth(OAuthToken(OAUTH_SECRET))
    assert OAUTH_SECRET not in repr(viewed)


@pytest.mark.parametrize("value", ["", " ", "\t\n"])
def test_empty_credentials_are_value_errors(value: str) -> None:
    with pytest.raises(ValueError, match="email"):
        APIToken(value, SECRET)
    with pytest.raises(ValueError, match="token"):
        APIToken(EMAIL, value)
    with pytest.raises(ValueError, match="access_token"):
        OAuthToken(value)


@pytest.mark.parametrize("value", [None, 42, b"bytes-token", ["x"]])
def test_non_str_credentials_are_type_errors(value: Any) -> None:
    with pytest.raises(TypeError, match="email"):
        APIToken(value, SECRET)
    with pytest.raises(TypeError, match="token"):
        APIToken(EMAIL, value)
    with pytest.raises(TypeError, match="access_token"):
        OAuthToken(value)


def test_validation_errors_never_echo_the_other_secret() -> None:
    with pytest.raises(ValueError) as info:
        APIToken("", SECRET)
    assert SECRET not in str(info.value)
    with pytest.raises(TypeError) as type_info:
        APIToken(None, SECRET)  # type: ignore[arg-type]
    assert SECRET not in str(type_info.value)


# --- error messages ---------------------------------------------------------------------------


def test_api_error_message_has_everything_useful() -> None:
    error = RateLimitError(
        429,
        code="TooManyRequests",
        description="Rate limit exceeded",
        request_id="7f7a837918c40a3b-ARN",
        body='{"error": "TooManyRequests"}',
        method="GET",
        path="/api/v2/activities",
        retry_after=2.5,
    )
    assert str(error) == (
        "HTTP 429 on GET /api/v2/activities - TooManyRequests: Rate limit exceeded "
        "- retry after 2.5s (request id 7f7a837918c40a3b-ARN)"
    )
    assert error.status == 429
    assert error.code == "TooManyRequests"
    assert error.description == "Rate limit exceeded"
    assert error.request_id == "7f7a837918c40a3b-ARN"
    assert error.body == '{"error": "TooManyRequests"}'
    assert error.retry_after == 2.5
    assert error.method == "GET"
    assert error.path == "/api/v2/activities"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "HTTP 500"),
        ({"code": "RecordNotFound"}, "HTTP 500 - RecordNotFound"),
        ({"description": "Not found"}, "HTTP 500 - Not found"),
        ({"request_id": "abc"}, "HTTP 500 (request id abc)"),
        ({"method": "GET"}, "HTTP 500"),  # method without path is not shown
        ({"retry_after": 0.0}, "HTTP 500 - retry after 0s"),
        ({"body": "a body is never part of the message"}, "HTTP 500"),
    ],
)
def test_api_error_message_parts(kwargs: dict[str, Any], message: str) -> None:
    assert str(ServerError(500, **kwargs)) == message


def test_error_messages_never_contain_credentials() -> None:
    api, oauth = APIToken(EMAIL, SECRET), OAuthToken(OAUTH_SECRET)
    headers = {
        "X-Zendesk-Request-Id": "zd-1",
        "Retry-After": "3",
        # a proxy reflecting the credentials back in headers must not leak them
        "Authorization": oauth.authorization(),
        "WWW-Authenticate": api.authorization(),
        "Set-Cookie": f"session={SECRET}",
    }
    for status, body in [
        (401, b'{"error": "Couldn\'t authenticate you"}'),
        (403, b'{"error": {"title": "Forbidden", "message": "Agents only"}}'),
        (429, b"Too Many Requests"),
        (503, b""),
    ]:
        error = p.error_from_response(
            status, headers, body, method="GET", path="/api/v2/activities"
        )
        for text in (str(error), repr(error), error.body, error.description or ""):
            assert SECRET not in text
            assert OAUTH_SECRET not in text
            assert b64_secret() not in text
        assert "zd-1" in str(error)
        assert f"HTTP {status}" in str(error)


def test_decode_error_message() -> None:
    error = DecodeError("Expected `int`, got `str`", snippet='{"activities": [', path="$.x")
    assert str(error) == "Expected `int`, got `str` (body starts: '{\"activities\": [')"
    assert error.path == "$.x"
    assert error.snippet == '{"activities": ['
    assert str(DecodeError("empty body")) == "empty body"
    assert DecodeError("empty body").path is None


@pytest.mark.parametrize("clone", [copy.copy, lambda e: pickle.loads(pickle.dumps(e))])
def test_api_errors_survive_copy_and_pickle(clone: Any) -> None:
    error = NotFoundError(404, code="RecordNotFound", request_id="r-1", retry_after=None)
    cloned = clone(error)
    assert type(cloned) is NotFoundError
    assert cloned.status == 404
    assert cloned.code == "RecordNotFound"
    assert str(cloned) == str(error)


def test_decode_errors_survive_pickle() -> None:
    error = DecodeError("bad", snippet="<html>", path="$.activities")
    cloned = pickle.loads(pickle.dumps(error))
    assert str(cloned) == str(error)
    assert cloned.path == "$.activities"
    assert cloned.snippet == "<html>"


# --- hierarchy --------------------------------------------------------------------------------

API_ERRORS = [
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
]


@pytest.mark.parametrize("cls", API_ERRORS)
def test_api_error_subclasses(cls: type[APIError]) -> None:
    assert issubclass(cls, APIError)
    assert issubclass(cls, ZendeskError)
    error = cls(400)
    assert isinstance(error, Exception)
    others = [c for c in API_ERRORS if c is not cls]
    assert not any(isinstance(error, other) for other in others)


@pytest.mark.parametrize("cls", [TransportError, DecodeError, PaginationError])
def test_non_api_errors(cls: type[ZendeskError]) -> None:
    assert issubclass(cls, ZendeskError)
    assert not issubclass(cls, APIError)


def test_pagination_depth_error_is_a_pagination_error() -> None:
    assert issubclass(PaginationDepthError, PaginationError)
    assert not issubclass(PaginationError, PaginationDepthError)
    assert not issubclass(PaginationDepthError, APIError)


def test_every_exported_error_is_a_zendesk_error() -> None:
    exported = [getattr(errors_module, name) for name in errors_module.__all__]
    assert {*API_ERRORS, APIError, TransportError, DecodeError, PaginationError} <= set(exported)
    assert PaginationDepthError in exported
    for cls in exported:
        assert issubclass(cls, ZendeskError)
        assert getattr(zdactivity, cls.__name__) is cls
        assert cls.__name__ in zdactivity.__all__
    assert not issubclass(ZendeskError, (ValueError, TypeError, OSError))
