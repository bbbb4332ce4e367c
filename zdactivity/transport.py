"""The aiohttp seam: send one request, return ``(status, headers, body)``.

This is the only module that touches aiohttp's request API, and every aiohttp or OS failure is
turned into :class:`~zdactivity.TransportError` here. Redirects are not followed, so the
``Authorization`` header never reaches another host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy

from .errors import ResponseTooLargeError, TransportError

__all__ = ["Response", "Timeout", "send"]


@dataclass(frozen=True, slots=True)
class Timeout:
    """Timeouts in seconds (None disables one).

    ``connect``: establishing a connection (including waiting for a pooled one);
    ``read``: the longest silence between two chunks of a response;
    ``total``: one attempt, from sending to the last byte of the body.
    """

    connect: float | None = 10.0
    read: float | None = 30.0
    total: float | None = 60.0

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, connect=self.connect, sock_read=self.read)


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


async def send(
    session: aiohttp.ClientSession,
    url: str,
    *,
    params: tuple[tuple[str, str], ...],
    headers: Mapping[str, str],
    client_timeout: aiohttp.ClientTimeout,
    max_body_size: int,
    method: str = "GET",
    data: Mapping[str, str] | None = None,
) -> Response:
    """Send one request and read the whole body (at most ``max_body_size`` bytes, decoded)."""
    where = f"{method} {url}"
    try:
        async with session.request(
            method,
            url,
            params=params,
            headers=headers,
            data=data,
            timeout=client_timeout,
            allow_redirects=False,
        ) as resp:
            length = resp.content_length
            if (
                length is not None
                and length > max_body_size
                and not resp.headers.get("Content-Encoding")
            ):
                raise ResponseTooLargeError(
                    f"{where}: response of {length} bytes exceeds max_body_size={max_body_size}"
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_any():
                size += len(chunk)
                if size > max_body_size:
                    raise ResponseTooLargeError(
                        f"{where}: response body exceeds max_body_size={max_body_size}"
                    )
                chunks.append(chunk)
            return Response(resp.status, resp.headers, b"".join(chunks))
    except TransportError:
        raise
    except TimeoutError as exc:
        raise TransportError(f"{where}: timed out") from exc
    except aiohttp.ClientPayloadError as exc:
        raise TransportError(f"{where}: the response body was cut off ({_reason(exc)})") from exc
    except aiohttp.ClientError as exc:
        raise TransportError(f"{where}: {_reason(exc)}") from exc
    except OSError as exc:
        raise TransportError(f"{where}: {exc.strerror or type(exc).__name__}") from exc
    except asyncio.IncompleteReadError:
        raise TransportError(f"{where}: the connection closed mid-body") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
