"""zdactivity: an asyncio client for Zendesk Support's Ticket Activities API.

Quick look::

    import zdactivity

    async with zdactivity.Client(subdomain="acme", auth=zdactivity.OAuthToken(token)) as zd:
        async for activity in zd.activities.list(since="2026-11-01T00:00:00Z"):
            actor = activity.actor  # a User, or None when Zendesk sent no actor
            print(activity.created_at, activity.title, actor.name if actor else "?")

``zdactivity.testing.Emulator`` is a local Zendesk to run it (and your tests) against.

What a first script needs is here: the client, credentials, the retry policy and rate limiter,
the records and every error. The rest lives in submodules named for their job:
``zdactivity.fleet`` (many agents in one worker), ``zdactivity.checkpoint`` (checkpoint stores),
``zdactivity.watch``, ``zdactivity.pagination``, ``zdactivity.models``, ``zdactivity.ratelimit``,
``zdactivity.transport``, ``zdactivity.protocol`` (the sans-I/O core) and ``zdactivity.testing``
(the emulator). The names that need aiohttp (the client, its transport, fan-out and the fleet)
are loaded on first use, so that ``zdactivity.protocol``, ``zdactivity.models`` and
``zdactivity.errors`` import without aiohttp.
"""

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .auth import APIToken, Auth, OAuthToken
from .errors import (
    AgentError,
    APIError,
    AuthenticationError,
    CertificateError,
    CheckpointError,
    ConnectionFailedError,
    DecodeError,
    FencedOutError,
    InvalidRequestError,
    LocalRateLimitError,
    NotFoundError,
    PaginationDepthError,
    PaginationError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
    ZendeskError,
)
from .models import SYSTEM_USER, Activity, ActivityCount, ActivityPage, Content, User
from .ratelimit import RateLimiter
from .retry import RetryPolicy
from .watch import WatchOptions

if TYPE_CHECKING:
    from . import checkpoint as checkpoint
    from . import client as client
    from . import fanout as fanout
    from . import fleet as fleet
    from . import transport as transport
    from .client import Client
    from .fanout import fan_out
    from .transport import Timeout

# Loaded on first access: these import aiohttp.
_LAZY = {"Client": "client", "fan_out": "fanout", "Timeout": "transport"}
_LAZY_MODULES = frozenset({"checkpoint", "client", "fanout", "fleet", "transport"})

# Names that were exported here before 0.2, and where they live now.
_MOVED = {
    "ActivitiesAPI": "client",
    "ClientStats": "client",
    "RequestEvent": "client",
    "Fleet": "fleet",
    "AgentStatus": "fleet",
    "Checkpoint": "checkpoint",
    "CheckpointStore": "checkpoint",
    "MemoryCheckpointStore": "checkpoint",
    "SQLiteCheckpointStore": "checkpoint",
    "ActivityPager": "pagination",
    "PageIterator": "pagination",
    "ActivityWatcher": "watch",
    "RateLimitState": "ratelimit",
    "RateLimitBackend": "ratelimit",
    "Permit": "ratelimit",
    "OnRefresh": "auth",
    "RefreshableAuth": "auth",
    "Transport": "transport",
    "Photo": "models",
    "Thumbnail": "models",
    "Ticket": "models",
    "Comment": "models",
    "Change": "models",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        module = _MOVED.get(name)
        if module is None:
            raise AttributeError(f"module 'zdactivity' has no attribute {name!r}")
        warnings.warn(
            f"zdactivity.{name} moved to zdactivity.{module}.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(f".{module}", __name__), name)
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "SYSTEM_USER",
    "APIError",
    "APIToken",
    "Activity",
    "ActivityCount",
    "ActivityPage",
    "AgentError",
    "Auth",
    "AuthenticationError",
    "CertificateError",
    "CheckpointError",
    "Client",
    "ConnectionFailedError",
    "Content",
    "DecodeError",
    "FencedOutError",
    "InvalidRequestError",
    "LocalRateLimitError",
    "NotFoundError",
    "OAuthToken",
    "PaginationDepthError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimiter",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "RetryPolicy",
    "ServerError",
    "Timeout",
    "TransportError",
    "User",
    "WatchOptions",
    "ZendeskError",
    "__version__",
    "fan_out",
]
