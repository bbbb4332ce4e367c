"""Async iteration over activity listings.

:class:`ActivityPager` is what ``client.activities.list()`` returns: ``async for`` over it yields
activities, ``pager.pages()`` yields pages. Each page is fetched by one (retried) request; the next
request is a pure function of the last page (:func:`zdactivity.protocol.next_request`). The
iterators are plain classes, not async generators: nothing is held open between two pages, so
abandoning an iteration at any point needs no cleanup.

A listing's memory stays bounded however long a server keeps saying ``has_more``: repeats are
looked for among the last :data:`REMEMBERED_CURSORS` cursors only (kept as 16-byte digests), and
a listing stops with :class:`~zdactivity.PaginationError` after ``max_pages`` pages
(:data:`DEFAULT_MAX_PAGES` unless told otherwise), which also catches any longer cycle.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from .errors import InvalidRequestError, PaginationDepthError, PaginationError, ZendeskError
from .models import Activity, ActivityPage
from .protocol import Request, next_request, resume_token

__all__ = [
    "DEFAULT_MAX_PAGES",
    "REMEMBERED_CURSORS",
    "ActivityPager",
    "PageIterator",
]

FetchPage = Callable[[Request], Awaitable[ActivityPage]]

#: How many of a listing's most recent cursors are remembered to catch a server that repeats
#: one. A cycle longer than this is stopped by ``max_pages`` instead.
REMEMBERED_CURSORS: Final = 1000

#: The default bound on pages per listing: 1,000,000 activities at the default page size, far
#: more than an agent's 30-day window holds, and about 14 minutes of an Enterprise account's
#: whole request budget. Pass ``max_pages=None`` to lift it.
DEFAULT_MAX_PAGES: Final = 10_000


class _RecentCursors:
    """The last ``size`` cursors added, as digests: a ``Container[str]`` of bounded size."""

    __slots__ = ("_order", "_set", "_size")

    def __init__(self, size: int = REMEMBERED_CURSORS) -> None:
        self._size = size
        self._order: deque[bytes] = deque()
        self._set: set[bytes] = set()

    @staticmethod
    def _digest(cursor: str) -> bytes:
        return hashlib.blake2b(cursor.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def add(self, cursor: str) -> None:
        digest = self._digest(cursor)
        if digest in self._set:
            return
        self._order.append(digest)
        self._set.add(digest)
        if len(self._order) > self._size:
            self._set.discard(self._order.popleft())

    def __contains__(self, cursor: object) -> bool:
        return isinstance(cursor, str) and self._digest(cursor) in self._set

    def __len__(self) -> int:
        return len(self._order)


def _check_max_pages(max_pages: object) -> int | None:
    if max_pages is None:
        return None
    if isinstance(max_pages, bool) or not isinstance(max_pages, int):
        raise TypeError(f"max_pages must be an int or None, not {type(max_pages).__name__}")
    if max_pages < 1:
        raise ValueError(f"max_pages must be at least 1, not {max_pages}")
    return max_pages


class PageIterator:
    """Iterates the pages of one listing, from its first request.

    At most ``max_pages`` pages are requested (None: no bound). When the last of them still
    says ``has_more``, that page is delivered and the next call raises
    :class:`~zdactivity.PaginationError`: the listing is incomplete, and the last page's
    ``resume_token`` continues it.
    """

    __slots__ = ("_error", "_fetch", "_max_pages", "_request", "_seen", "pages_fetched")

    def __init__(
        self, fetch: FetchPage, first: Request, *, max_pages: int | None = DEFAULT_MAX_PAGES
    ) -> None:
        self._fetch = fetch
        self._request: Request | None = first
        self._seen = _RecentCursors()
        self._max_pages = _check_max_pages(max_pages)
        self._error: ZendeskError | None = None
        self.pages_fetched = 0

    def __aiter__(self) -> PageIterator:
        return self

    async def __anext__(self) -> ActivityPage:
        if self._error is not None:
            error, self._error, self._request = self._error, None, None
            raise error
        request = self._request
        if request is None:
            raise StopAsyncIteration
        try:
            page = await self._fetch(request)
        except InvalidRequestError as exc:
            self._request = None
            if exc.code == "InvalidPaginationDepth":
                raise PaginationDepthError(
                    f"Zendesk refused the offset page: {exc.description or exc}. "
                    "Use cursor pagination (the default) to read deeper."
                ) from exc
            raise
        self.pages_fetched += 1
        page.resume_token = resume_token(request, page)
        cursor = request.param("page[after]")
        if cursor:
            self._seen.add(cursor)
        try:
            self._request = next_request(request, page, self._seen)
            limit = self._max_pages
            if self._request is not None and limit is not None and self.pages_fetched >= limit:
                raise PaginationError(
                    f"stopped after max_pages={limit} pages and the server still says "
                    "has_more; pass a larger max_pages= (or None) to read further, or resume "
                    "from the last page's resume_token"
                )
        except ZendeskError as exc:
            # Deliver the good page first; the error comes with the next call.
            self._request, self._error = None, exc
        return page


class _ActivityIterator:
    __slots__ = ("_current", "_index", "_pages")

    def __init__(self, pages: PageIterator) -> None:
        self._pages = pages
        self._current: list[Activity] = []
        self._index = 0

    def __aiter__(self) -> _ActivityIterator:
        return self

    async def __anext__(self) -> Activity:
        while self._index >= len(self._current):
            page = await self._pages.__anext__()
            self._current, self._index = page.activities, 0
        activity = self._current[self._index]
        self._index += 1
        return activity


class ActivityPager:
    """A listing of activities: ``async for activity in pager`` or ``async for page in
    pager.pages()``. Each iteration starts again from the first request, and fetches a page
    only when the one before is used up. ``max_pages`` bounds the pages of each iteration
    (None: no bound)."""

    __slots__ = ("_fetch", "first_request", "max_pages")

    def __init__(
        self, fetch: FetchPage, first: Request, *, max_pages: int | None = DEFAULT_MAX_PAGES
    ) -> None:
        self._fetch = fetch
        self.first_request = first
        self.max_pages = _check_max_pages(max_pages)

    def pages(self) -> PageIterator:
        """Iterate the listing page by page (save ``page.resume_token`` to resume later)."""
        return PageIterator(self._fetch, self.first_request, max_pages=self.max_pages)

    def __aiter__(self) -> AsyncIterator[Activity]:
        return _ActivityIterator(self.pages())

    async def collect(self, limit: int | None = None) -> list[Activity]:
        """All activities of the listing (or the first ``limit``) as a list.

        No page is requested beyond the one that reaches ``limit``: ``list(page_size=20)
        .collect(limit=20)`` is one request, and ``limit=0`` none.
        """
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError(f"limit must be an int or None, not {type(limit).__name__}")
            if limit < 0:
                raise ValueError(f"limit must not be negative, not {limit}")
            if limit == 0:
                return []
        result: list[Activity] = []
        async for page in self.pages():
            if limit is None:
                result.extend(page.activities)
                continue
            result.extend(page.activities[: limit - len(result)])
            if len(result) >= limit:
                break
        return result
