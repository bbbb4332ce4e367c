"""A small hostile HTTP server on loopback, for the cases the emulator is too polite to produce.

Each test hands ``HostileServer`` a handler (an aiohttp handler coroutine), or a list of them
taken in order (the last one repeats), and points a client at ``server.url``. The server
records every request it gets. The helpers build Zendesk-shaped bodies with chosen fields so
that a test can send exactly the wrong thing it needs.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
import ssl
import struct
import subprocess
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

import zdactivity

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HostileServer:
    """An aiohttp server on 127.0.0.1 that answers with the given handlers, in order."""

    def __init__(self, *handlers: Handler) -> None:
        if not handlers:
            raise ValueError("give at least one handler")
        self._handlers = list(handlers)
        self.requests: list[web.Request] = []
        self.paths: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        self.paths.append(request.path_qs)
        handler = self._handlers[0] if len(self._handlers) == 1 else self._handlers.pop(0)
        return await handler(request)

    async def __aenter__(self) -> HostileServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def client(self, **kwargs: Any) -> zdactivity.Client:
        """A client of this server with a retry policy that never sleeps, unless overridden."""
        kwargs.setdefault("auth", zdactivity.OAuthToken("s3cret-token"))
        kwargs.setdefault("retry", zdactivity.RetryPolicy(max_tries=2).testing())
        return zdactivity.Client(base_url=self.url, **kwargs)


def activity(
    activity_id: int,
    created_at: datetime | str = "2026-11-20T12:00:00Z",
    **fields: Any,
) -> dict[str, Any]:
    """One activity record; ``fields`` override or add keys (send anything you like)."""
    when = created_at if isinstance(created_at, str) else _iso(created_at)
    record: dict[str, Any] = {
        "id": activity_id,
        "url": f"https://acme.zendesk.com/api/v2/activities/{activity_id}.json",
        "verb": "tickets.comment",
        "title": f"activity {activity_id}",
        "actor_id": 7,
        "user_id": 8,
        "created_at": when,
        "updated_at": when,
        "object": {"comment": {"value": "hi", "public": True}},
        "target": {"ticket": {"id": 1, "subject": "s"}},
    }
    record.update(fields)
    return record


def page(
    activities: Iterable[Mapping[str, Any]],
    *,
    has_more: bool = False,
    after_cursor: str | None = None,
) -> dict[str, Any]:
    """A cursor page body."""
    return {
        "activities": list(activities),
        "actors": [],
        "users": [],
        "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": None},
        "links": {"next": None, "prev": None},
    }


def json_response(
    body: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response of ``body`` (any msgspec-encodable value, or raw bytes)."""
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    return web.Response(body=data, status=status, headers=headers, content_type="application/json")


def respond(
    body: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Handler:
    """A handler that always answers ``body``."""

    async def handler(_request: web.Request) -> web.StreamResponse:
        return json_response(body, status=status, headers=headers)

    return handler


async def never_answer(_request: web.Request) -> web.StreamResponse:
    """A handler that accepts the request and never answers (until the server stops)."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- appended: resets, TLS, hostile header values ----------------------------------------------


async def reset_connection(request: web.Request) -> web.StreamResponse:
    """A handler that drops the connection with a TCP RST before answering."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await asyncio.sleep(0.5)  # the server must not answer; the client is gone by then
    return web.Response()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for 127.0.0.1 (made with the openssl command)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = shlex.split(
        "openssl req -x509 -nodes -days 1 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
        " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
    )
    subprocess.run(
        [*command, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


class TLSHostileServer(HostileServer):
    """A HostileServer over https, with a self-signed certificate no client trusts."""

    def __init__(self, directory: Path, *handlers: Handler) -> None:
        super().__init__(*handlers)
        self._directory = directory

    async def __aenter__(self) -> TLSHostileServer:
        cert, key = self_signed_certificate(self._directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context).start()
        port = self._runner.addresses[0][1]
        self.url = f"https://127.0.0.1:{port}"
        return self


def exception_web(error: BaseException) -> list[BaseException]:
    """Every exception reachable from ``error``: causes, contexts, group members, attributes."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        exc = todo.pop()
        if any(exc is s for s in seen):
            continue
        seen.append(exc)
        linked: list[object] = [exc.__cause__, exc.__context__, *exc.args]
        linked += getattr(exc, "exceptions", ())
        linked += vars(exc).values() if hasattr(exc, "__dict__") else ()
        todo += [x for x in linked if isinstance(x, BaseException)]
    return seen


def cli_env(env: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """The checkout's root and the environment to run the command in: this one without its
    ``ZENDESK_*`` variables, plus ``env``."""
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    full = {k: v for k, v in os.environ.items() if not k.startswith("ZENDESK_")}
    full["PYTHONPATH"] = root
    full.update(env or {})
    return root, full


async def run_cli(*args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``python -m zdactivity ARGS`` as a subprocess without blocking the event loop, so
    that a ``HostileServer`` of the same loop can answer it: ``(exit code, stdout, stderr)``.
    The ``ZENDESK_*`` variables come from ``env`` only."""
    import sys

    root, full_env = cli_env(env)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zdactivity",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=full_env,
        cwd=root,
    )
    try:
        async with asyncio.timeout(60):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return (
        process.returncode,
        stdout.decode("utf-8", "backslashreplace"),
        stderr.decode("utf-8", "backslashreplace"),
    )
