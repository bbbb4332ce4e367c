"""The seams: the pure core imports without aiohttp, headers are one case-insensitive mapping,
the in-memory transport, and the error tree."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import pytest

import zdactivity
from zdactivity import errors, protocol
from zdactivity.protocol import Headers
from zdactivity.transport import AiohttpTransport, MemoryTransport, Response, Timeout, Transport

BLOCKED_IMPORT = textwrap.dedent(
    """
    import sys

    class Blocked:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in ("aiohttp", "multidict", "yarl"):
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Blocked())
    import zdactivity.errors
    import zdactivity.models
    import zdactivity.protocol

    body = b'{"activities": [], "meta": {"has_more": false}}'
    outcome = zdactivity.protocol.interpret(
        zdactivity.protocol.list_request(),
        200,
        {"Content-Type": "application/json", "X-Zendesk-Request-Id": "r1"},
        body,
        lambda data, request_id: zdactivity.protocol.decode_page(data, request_id=request_id),
    )
    assert outcome.error is None and outcome.value.request_id == "r1", outcome
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in ("aiohttp", "multidict"))
    assert not loaded, loaded
    print("ok")
    """
)


def test_the_pure_core_imports_and_works_without_aiohttp() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# --- headers ---------------------------------------------------------------------------------


def test_headers_are_case_insensitive_and_keep_the_first_value() -> None:
    headers = Headers([("X-Rate-Limit", "700"), ("x-rate-limit", "1"), ("Retry-After", "5")])
    assert headers["x-RATE-limit"] == "700"
    assert headers.get("RETRY-AFTER") == "5"
    assert headers.get("missing") is None and headers.get("missing", "d") == "d"
    assert "retry-after" in headers and 7 not in headers
    assert len(headers) == 2 and set(headers) == {"x-rate-limit", "retry-after"}
    assert Headers.of(headers) is headers
    assert protocol.header({"X-Request-Id": "a"}, "x-request-id") == "a"


def test_interpret_parses_each_fact_once_into_an_outcome() -> None:
    headers = {
        "Content-Type": "application/json",
        "X-Zendesk-Request-Id": "req-1",
        "X-Rate-Limit": "700",
        "X-Rate-Limit-Remaining": "699",
        "Retry-After": "7",
    }
    calls: list[str | None] = []

    def decode(body: bytes, request_id: str | None) -> bytes:
        calls.append(request_id)
        return body

    request = protocol.count_request()
    ok = protocol.interpret(request, 200, headers, b"{}", decode)
    assert (ok.value, ok.error, ok.request_id) == (b"{}", None, "req-1")
    assert ok.rate_limit == protocol.RateLimitHeaders(limit=700, remaining=699)
    assert calls == ["req-1"]

    limited = protocol.interpret(request, 429, headers, b'{"error": "slow down"}', decode)
    assert isinstance(limited.error, zdactivity.RateLimitError)
    assert limited.error.retry_after == 7 and limited.error.request_id == "req-1"
    assert limited.error.path == request.path and limited.value is None
    assert limited.rate_limit.remaining == 699  # the limiter learns from errors too
    assert calls == ["req-1"]  # an error status is never decoded

    html = protocol.interpret(request, 200, {"Content-Type": "text/html"}, b"<html>", decode)
    assert isinstance(html.error, zdactivity.DecodeError)
    bad = protocol.interpret(request, 200, {}, b"not json", lambda b, _: protocol.decode_count(b))
    assert isinstance(bad.error, zdactivity.DecodeError)


def test_the_refresh_request_and_its_answer_are_pure() -> None:
    request = protocol.refresh_request("r1", client_id="app", client_secret="s")
    assert (request.method, request.path) == ("POST", "/oauth/tokens")
    assert request.form == (
        ("grant_type", "refresh_token"),
        ("refresh_token", "r1"),
        ("client_id", "app"),
        ("client_secret", "s"),
    )
    assert protocol.refresh_request("r1").form == (
        ("grant_type", "refresh_token"),
        ("refresh_token", "r1"),
    )
    pair = protocol.decode_token_pair(b'{"access_token": "a2", "refresh_token": "r2"}')
    assert pair == ("a2", "r2")
    with pytest.raises(zdactivity.AuthenticationError, match="no token pair"):
        protocol.decode_token_pair(b"{}")
    with pytest.raises(zdactivity.AuthenticationError, match="unusable access_token") as info:
        protocol.decode_token_pair(b'{"access_token": "a\\nb", "refresh_token": "r2"}')
    assert "a\nb" not in str(info.value)
    failed = protocol.refresh_error(zdactivity.ServerError(502, request_id="x"))
    assert isinstance(failed, zdactivity.AuthenticationError)
    assert (failed.status, failed.request_id, failed.path) == (502, "x", "/oauth/tokens")


# --- the in-memory transport -------------------------------------------------------------------


async def test_memory_transport_answers_its_script_in_order() -> None:
    timeout = Timeout()
    transport = MemoryTransport(
        [
            MemoryTransport.respond(200, {"a": 1}, {"X-Request-Id": "r"}),
            zdactivity.ConnectionFailedError("reset"),
            lambda sent: MemoryTransport.respond(201, sent.params),
        ]
    )
    assert isinstance(transport, Transport)
    kw = {"headers": {"A": "b"}, "form": None, "timeout": timeout, "max_body_size": 100}
    first = await transport.send("GET", "https://x/1", params=(), **kw)  # type: ignore[arg-type]
    assert (first.status, first.body, first.headers["x-request-id"]) == (200, b'{"a":1}', "r")
    with pytest.raises(zdactivity.ConnectionFailedError):
        await transport.send("GET", "https://x/2", params=(), **kw)  # type: ignore[arg-type]
    third = await transport.send("GET", "https://x/3", params=(("p", "1"),), **kw)  # type: ignore[arg-type]
    assert (third.status, third.body) == (201, b'[["p","1"]]')
    assert [s.url for s in transport.sent] == ["https://x/1", "https://x/2", "https://x/3"]
    with pytest.raises(AssertionError, match="no scripted answer"):
        await transport.send("GET", "https://x/4", params=(), **kw)  # type: ignore[arg-type]
    transport.add(Response(200, {}, b"x" * 101))
    with pytest.raises(zdactivity.ResponseTooLargeError):
        await transport.send("GET", "https://x/5", params=(), **kw)  # type: ignore[arg-type]


def test_the_aiohttp_transport_is_a_transport_and_checks_its_session() -> None:
    assert isinstance(AiohttpTransport(), Transport)
    with pytest.raises(TypeError, match=r"aiohttp\.ClientSession"):
        AiohttpTransport(object())  # type: ignore[arg-type]


# --- the error tree --------------------------------------------------------------------------


def _classes(module: object) -> set[type[BaseException]]:
    return {
        value
        for value in vars(module).values()
        if inspect.isclass(value) and issubclass(value, BaseException)
    }


def test_every_exported_exception_is_in_the_tree_and_drawn() -> None:
    exported = {
        value
        for name in zdactivity.__all__
        if inspect.isclass(value := getattr(zdactivity, name)) and issubclass(value, BaseException)
    }
    assert exported == _classes(errors)
    drawing = errors.__doc__ or ""
    for cls in exported:
        assert issubclass(cls, zdactivity.ZendeskError), cls
        assert f" {cls.__name__} " in drawing, cls


def test_errors_stay_importable_where_they_were() -> None:
    from zdactivity.checkpoint import CheckpointError
    from zdactivity.fanout import AgentError

    assert CheckpointError is zdactivity.CheckpointError
    assert AgentError is zdactivity.AgentError
    assert issubclass(CheckpointError, zdactivity.ZendeskError)


def test_timeouts_and_connection_failures_differ_by_type() -> None:
    for cls in (zdactivity.RequestTimeoutError, zdactivity.ConnectionFailedError):
        assert issubclass(cls, zdactivity.TransportError)
    assert not issubclass(zdactivity.RequestTimeoutError, zdactivity.ConnectionFailedError)
    assert not issubclass(zdactivity.ConnectionFailedError, zdactivity.RequestTimeoutError)
