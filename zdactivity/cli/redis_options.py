"""``--redis URL``: the account's budget (and ``tail``'s checkpoint, ``worker``'s fleet) in Redis.

redis-py is optional (``pip install 'zdactivity[redis]'``): it is imported only when ``--redis``
is given. Every failure is one line on stderr, never a traceback, and never the URL's password:
messages show the URL with its password replaced by ``***`` (:func:`redacted`), and any text
redis-py produced is scrubbed of the password too. Exit codes: 2 for redis-py missing or a URL
that is not one, 3 when Redis refuses the credentials, 5 when Redis cannot be reached (at the
start, or later: a checkpoint that cannot be saved stops the command).
"""

from __future__ import annotations

import argparse
import contextlib
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..checkpoint import CheckpointError
from ..ratelimit import RateLimitBackend
from .arguments import Parser
from .common import EXIT_AUTH, EXIT_NETWORK, EXIT_USAGE, UsageError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "ENV_VAR",
    "RedisFailure",
    "add_redis_option",
    "connect",
    "redacted",
    "redis_connection",
    "redis_errors",
    "redis_url",
    "shared_limiter",
]

#: The environment variable ``--redis`` defaults to (a password in a flag shows up in ``ps``).
ENV_VAR = "ZDACTIVITY_REDIS_URL"

INSTALL_HINT = "pip install 'zdactivity[redis]'"
_SCHEMES = ("redis", "rediss", "unix")
#: How long connecting to Redis (and each command) may take before it counts as unreachable.
TIMEOUT = 5.0


class RedisFailure(Exception):
    """Redis could not be used: ``main`` prints the message (already redacted) and exits."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_redis_option(parser: Parser, what: str) -> None:
    parser.add_argument(
        "--redis",
        metavar="URL",
        help=f"{what} (redis://[:password@]host:port/db, rediss://..., unix:///path; default "
        f"${ENV_VAR}; needs {INSTALL_HINT})",
    )


def redis_url(args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    url: str | None = getattr(args, "redis", None) or env.get(ENV_VAR, "").strip() or None
    return url


def _password(url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
        query = urllib.parse.parse_qs(parts.query)
    except ValueError:
        return None
    values = query.get("password")
    return password or (values[0] if values else None)


def redacted(url: str) -> str:
    """``url`` fit to print: its password (in the netloc or the query) is ``***``; a text
    that is not a URL at all is not shown."""
    if "://" not in url:
        return "(not shown: no scheme)"
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"
        query = urllib.parse.urlencode(
            [
                (k, "***" if k == "password" else v)
                for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "the --redis URL"


def _scrub(text: str, url: str) -> str:
    secret = _password(url)
    if secret:
        for form in {secret, urllib.parse.unquote(secret), urllib.parse.quote(secret)}:
            if form:
                text = text.replace(form, "***")
    return text.replace(url, redacted(url))


def _import() -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError:
        raise UsageError(f"--redis needs redis-py: {INSTALL_HINT}") from None
    return aioredis


def _failure(exc: BaseException, url: str) -> RedisFailure | None:
    """The one-line failure for a redis-py error, or None if ``exc`` is not one."""
    try:
        from redis import exceptions as rex
    except ImportError:  # pragma: no cover - checked by _import first
        return None
    where = redacted(url)
    detail = _scrub(str(exc), url) or type(exc).__name__
    if isinstance(exc, CheckpointError):
        # RedisCheckpointStore's errors name the redis-py error they replace, not chaining it.
        lost = any(f": {name}" in detail for name in ("ConnectionError", "TimeoutError"))
        return RedisFailure(EXIT_NETWORK if lost else EXIT_USAGE, f"checkpoint in Redis: {detail}")
    if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError) or (
        isinstance(exc, rex.ResponseError)
        and str(exc).split(" ", 1)[0] in ("NOAUTH", "WRONGPASS", "NOPERM")
    ):
        return RedisFailure(EXIT_AUTH, f"Redis at {where} refused the credentials: {detail}")
    if isinstance(exc, rex.ConnectionError | rex.TimeoutError | OSError):
        return RedisFailure(EXIT_NETWORK, f"Redis at {where} is unreachable: {detail}")
    if isinstance(exc, rex.RedisError):
        return RedisFailure(EXIT_NETWORK, f"Redis at {where} failed: {detail}")
    return None


@contextlib.contextmanager
def redis_errors(url: str | None) -> Iterator[None]:
    """Turn a redis-py error raised inside (alone or in an exception group) into a
    :class:`RedisFailure`."""
    if url is None:
        yield
        return
    try:
        yield
    except BaseExceptionGroup as group:
        for exc in group.exceptions:
            failure = _failure(exc, url)
            if failure is not None:
                raise failure from None
        raise
    except Exception as exc:
        failure = _failure(exc, url)
        if failure is None:
            raise
        raise failure from None


def connect(url: str) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url`` (not connected yet: :func:`ping` it), or a one-line
    usage error for a URL that is not one / redis-py missing."""
    aioredis = _import()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise UsageError(
            f"--redis {redacted(url)}: not a Redis URL (redis://[:password@]host:port/db, "
            "rediss://... or unix:///path)"
        )
    try:
        client: Redis = aioredis.from_url(
            url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT
        )
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--redis {redacted(url)}: {_scrub(str(exc), url)}") from None
    return client


@contextlib.asynccontextmanager
async def redis_connection(client: Redis | None, url: str | None) -> AsyncIterator[None]:
    """Ping ``client`` first (fail fast, in one line, when Redis cannot be reached or refuses
    us), close it on the way out. Nothing to do without one."""
    if client is None or url is None:
        yield
        return
    try:
        with redis_errors(url):
            await client.ping()
        yield
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


def shared_limiter(client: Redis) -> Callable[[str], RateLimitBackend]:
    """The account's budget in Redis, shared with every process naming the same account (a
    Redis outage mid-run falls back to the in-process limiter, logged: see
    :class:`~zdactivity.redis.RedisRateLimiter`)."""
    from ..redis import RedisRateLimiter

    def limiter_for(account: str) -> RateLimitBackend:
        return RedisRateLimiter(client, account)

    return limiter_for
