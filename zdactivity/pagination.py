"""Async iteration over activity listings.

:class:`ActivityPager` is what ``client.activities.list()`` returns: ``async for`` over it yields
activities, ``pager.pages()`` yields pages. Each page is fetched by one (retried) request; the next
request is a pure function of the last page (:func:`zdactivity.protocol.next_request`). The
iterators are plain classes, not async generators: nothing is held open between two pages, so
abandoning an iteration at any point needs no cleanup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from .errors import InvalidRequestError, PaginationDepthError, ZendeskError
from .models import Activity, ActivityPage
from .protocol import Request, next_request

__all__ = ["ActivityPager", "PageIterator"]

FetchPage = Callable[[Request], Awaitable[ActivityPage]]


class PageIterator:
    """Iterates the pages of one listing, from its first request."""

    __slots__ = ("_error", "_fetch", "_request", "_seen", "pages_fetched")

    def __init__(self, fetch: FetchPage, first: Request) -> None:
        self._fetch = fetch
        self._request: Request | None = first
        self._seen: set[str] = set()
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
        cursor = request.param("page[after]")
        if cursor:
            self._seen.add(cursor)
        try:
            self._request = next_request(request, page, self._seen)
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
    pager.pages()``. Each iteration starts again from the first request."""

    __slots__ = ("_fetch", "first_request")

    def __init__(self, fetch: FetchPage, first: Request) -> None:
        self._fetch = fetch
        self.first_request = first

    def pages(self) -> PageIterator:
        """Iterate the listing page by page (``page.after_cursor`` lets you resume later)."""
        return PageIterator(self._fetch, self.first_request)

    def __aiter__(self) -> AsyncIterator[Activity]:
        return _ActivityIterator(self.pages())

    async def collect(self, limit: int | None = None) -> list[Activity]:
        """All activities of the listing (or the first ``limit``) as a list."""
        result: list[Activity] = []
        async for activity in self:
            if limit is not None and len(result) >= limit:
                break
            result.append(activity)
        return result
