"""The aiohttp seam: send one request, return ``(status, headers, body)``.

This is the only module that touches aiohttp's request API, and every aiohttp or OS failure is
turned into :class:`~zdactivity.TransportError` here. Redirects are not followed, so the
``Authorization`` header never reaches another host.

The TransportError is raised outside the ``except`` block that caught aiohttp's exception, so
that neither its ``__cause__`` nor its ``__context__`` holds it: aiohttp's exceptions carry the
request's headers, ``Authorization`` included. Their message is kept, as text.
A certificate that cannot be verified raises :class:`~zdactivity.CertificateError` (not retried).
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy

from .errors import CertificateError, ResponseTooLargeError, TransportError

__all__ = ["Response", "Timeout", "send"]


@dataclass(frozen=True, slots=True)
class Timeout:
    """Timeouts in seconds: positive finite numbers, or None to disable one deliberately.

    ``connect``: establishing a connection (including waiting for a pooled one);
    ``read``: the longest silence between two chunks of a response;
    ``total``: one attempt, from sending to the last byte of the body, including the time it
    waited in the rate limiter for another request's answer (the first of a window).
    Zero, negative, NaN or infinite values raise ValueError; non-numbers and bools TypeError.
    """

    connect: float | None = 10.0
    read: float | None = 30.0
    total: float | None = 60.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if value is not None:
                check_seconds(f"Timeout.{name}", value)

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, connect=self.connect, sock_read=self.read)


def check_seconds(name: str, value: object) -> float:
    """``value`` as a positive finite number of seconds, or TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number of seconds, not {value!r}")
    return float(value)


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
    error: TransportError
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
    except ResponseTooLargeError:
        raise  # ours, raised outside any except block: no aiohttp exception in its chain
    except TimeoutError:
        error = TransportError(f"{where}: timed out")
    except aiohttp.ClientConnectorCertificateError as exc:
        error = CertificateError(
            f"{where}: TLS certificate of {exc.host} could not be verified: "
            f"{_certificate_reason(exc.certificate_error)}"
        )
    except aiohttp.ClientPayloadError as exc:
        error = TransportError(f"{where}: the response body was cut off ({_reason(exc)})")
    except aiohttp.ClientError as exc:
        error = TransportError(f"{where}: {_reason(exc)}")
    except OSError as exc:
        error = TransportError(f"{where}: {exc.strerror or type(exc).__name__}")
    except asyncio.IncompleteReadError:
        error = TransportError(f"{where}: the connection closed mid-body")
    # Raised here, outside the except blocks: neither __cause__ nor __context__ holds aiohttp's
    # exception, whose repr shows the request headers (Authorization included).
    raise error


def _certificate_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    return _reason(exc)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
