"""zdactivity: an asyncio client for Zendesk Support's Ticket Activities API.

Quick look::

    import zdactivity

    async with zdactivity.Client(subdomain="acme", auth=zdactivity.OAuthToken(token)) as zd:
        async for activity in zd.activities.list(since="2026-11-01T00:00:00Z"):
            print(activity.created_at, activity.title, activity.actor.name)

``zdactivity.testing.Emulator`` is a local Zendesk to run it (and your tests) against.

The names that need aiohttp (the client, its transport, fan-out and the fleet) are loaded on
first use, so that ``zdactivity.protocol``, ``zdactivity.models`` and ``zdactivity.errors``
import without aiohttp.
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .auth import APIToken, Auth, OAuthToken, OnRefresh, RefreshableAuth
from .checkpoint import (
    Checkpoint,
    CheckpointStore,
    MemoryCheckpointStore,
    SQLiteCheckpointStore,
)
from .errors import (
    AgentError,
    APIError,
    AuthenticationError,
    CertificateError,
    CheckpointError,
    ConnectionFailedError,
    DecodeError,
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
from .models import (
    SYSTEM_USER,
    Activity,
    ActivityCount,
    ActivityPage,
    Change,
    Comment,
    Content,
    Photo,
    Thumbnail,
    Ticket,
    User,
)
from .pagination import ActivityPager, PageIterator
from .ratelimit import Permit, RateLimitBackend, RateLimiter, RateLimitState
from .retry import RetryPolicy
from .watch import ActivityWatcher, WatchOptions

if TYPE_CHECKING:
    from .client import ActivitiesAPI, Client, ClientStats, RequestEvent
    from .fanout import fan_out
    from .fleet import AgentStatus, Fleet
    from .transport import Timeout, Transport

# name -> the module that defines it, imported on first access (they import aiohttp)
_LAZY = {
    "ActivitiesAPI": "client",
    "Client": "client",
    "ClientStats": "client",
    "RequestEvent": "client",
    "fan_out": "fanout",
    "AgentStatus": "fleet",
    "Fleet": "fleet",
    "Timeout": "transport",
    "Transport": "transport",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zdactivity' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "SYSTEM_USER",
    "APIError",
    "APIToken",
    "ActivitiesAPI",
    "Activity",
    "ActivityCount",
    "ActivityPage",
    "ActivityPager",
    "ActivityWatcher",
    "AgentError",
    "AgentStatus",
    "Auth",
    "AuthenticationError",
    "CertificateError",
    "Change",
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "Client",
    "ClientStats",
    "Comment",
    "ConnectionFailedError",
    "Content",
    "DecodeError",
    "Fleet",
    "InvalidRequestError",
    "LocalRateLimitError",
    "MemoryCheckpointStore",
    "NotFoundError",
    "OAuthToken",
    "OnRefresh",
    "PageIterator",
    "PaginationDepthError",
    "PaginationError",
    "PermissionDeniedError",
    "Permit",
    "Photo",
    "RateLimitBackend",
    "RateLimitError",
    "RateLimitState",
    "RateLimiter",
    "RefreshableAuth",
    "RequestEvent",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "RetryPolicy",
    "SQLiteCheckpointStore",
    "ServerError",
    "Thumbnail",
    "Ticket",
    "Timeout",
    "Transport",
    "TransportError",
    "User",
    "WatchOptions",
    "ZendeskError",
    "__version__",
    "fan_out",
]
