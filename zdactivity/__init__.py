"""zdactivity: an asyncio client for Zendesk Support's Ticket Activities API.

Quick look::

    import zdactivity

    async with zdactivity.Client(subdomain="acme", auth=zdactivity.OAuthToken(token)) as zd:
        async for activity in zd.activities.list(since="2026-11-01T00:00:00Z"):
            print(activity.created_at, activity.title, activity.actor.name)

``zdactivity.testing.Emulator`` is a local Zendesk to run it (and your tests) against.
"""

from ._version import __version__
from .auth import APIToken, Auth, OAuthToken, OnRefresh, RefreshableAuth
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointStore,
    MemoryCheckpointStore,
    SQLiteCheckpointStore,
)
from .client import ActivitiesAPI, Client, ClientStats, RequestEvent
from .errors import (
    APIError,
    AuthenticationError,
    CertificateError,
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
from .fanout import AgentError, fan_out
from .fleet import AgentStatus, Fleet
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
from .transport import Timeout, Transport
from .watch import ActivityWatcher

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
    "ZendeskError",
    "__version__",
    "fan_out",
]
