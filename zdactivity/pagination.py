"""Async iteration over activity listings.

:class:`ActivityPager` is what ``client.activities.list()`` returns: ``async for`` over it yields
activities, ``pager.pages()`` yields pages. Each page is fetched by one (retried) request; the next
request is a pure function of the last page (:func:`zdactivity.protocol.next_request`).

Read-ahead: with ``prefetch=n`` (n >= 1) a listing keeps up to ``n`` pages fetched or in flight
ahead of the consumer. As soon as a page has arrived (its ``after_cursor`` is known) and fewer
than ``n`` pages wait, the next one is requested in a task of its own, through the same
per-page coroutine (rate limiter, retries), so network, server and consumer time overlap. One
request of a listing is in flight at a time: each needs the cursor of the one before. Pages
and errors reach the consumer in listing order: a failure comes after every page before it.
``prefetch=0`` fetches in the consumer's own task, only when asked. A known need bounds the
read-ahead: ``collect(limit=)`` requests no page past the one that reaches the limit.

Leaving early: ``aclose()`` (or ``async with``) cancels the page in flight and waits for it to
end. An iterator that is just dropped (a ``break`` out of ``async for``) cancels it when it is
garbage collected, which CPython does at once: the read-ahead task holds its iterator only by
a weak reference, so the cancellation runs on the event loop's next turn. Cancelling the
consumer while it waits for a page cancels that page's request, as without read-ahead. Nothing
is held open between two pages but that one task; no rate-limiter permit outlives it.

A listing's memory stays bounded however long a server keeps saying ``has_more``: repeats are
looked for among the last :data:`REMEMBERED_CURSORS` cursors only (kept as 16-byte digests), and
a listing stops with :class:`~zdactivity.PaginationError` after ``max_pages`` pages
(:data:`DEFAULT_MAX_PAGES` unless told otherwise), which also catches any longer cycle.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from ._aio import AsyncIteratorClosing
from .errors import InvalidRequestError, PaginationDepthError, PaginationError, ZendeskError
from .models import Activity, ActivityPage
from .protocol import Request, next_request, resume_token

__all__ = [
    "DEFAULT_MAX_PAGES",
    "DEFAULT_PREFETCH",
    "REMEMBERED_CURSORS",
    "ActivityIterator",
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

#: Pages a listing keeps fetched or in flight ahead of its consumer (see the README's
#: "Read-ahead"): one page overlaps the next request with the consumer's work, which is all a
#: single stream can gain (its requests go one after another), at the cost of one page
#: requested beyond an early ``break``.
DEFAULT_PREFETCH: Final = 1


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


def check_prefetch(prefetch: object) -> int:
    if isinstance(prefetch, bool) or not isinstance(prefetch, int):
        raise TypeError(f"prefetch must be an int, not {type(prefetch).__name__}")
    if prefetch < 0:
        raise ValueError(f"prefetch must not be negative, not {prefetch}")
    return prefetch


class PageIterator(AsyncIteratorClosing):
    """Iterates the pages of one listing, from its first request.

    At most ``max_pages`` pages are requested (None: no bound). When the last of them still
    says ``has_more``, that page is delivered and the next call raises
    :class:`~zdactivity.PaginationError`: the listing is incomplete, and the last page's
    ``resume_token`` continues it.

    ``prefetch``: pages kept fetched or in flight ahead of the consumer (0: each page is
    requested when asked for). ``pages_fetched`` counts the pages that have arrived, read-ahead
    included. Use ``async with`` (or :meth:`aclose`) to stop the read-ahead at once when
    leaving early; a dropped iterator stops it when garbage collected.
    """

    __slots__ = (
        "__weakref__",
        "_activities",
        "_buffer",
        "_error",
        "_failure",
        "_fetch",
        "_generation",
        "_in_flight",
        "_max_pages",
        "_need_activities",
        "_need_pages",
        "_prefetch",
        "_request",
        "_seen",
        "_task",
        "_waiter",
        "pages_fetched",
    )

    def __init__(
        self,
        fetch: FetchPage,
        first: Request,
        *,
        max_pages: int | None = DEFAULT_MAX_PAGES,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> None:
        self._task: asyncio.Task[None] | None = None  # the read-ahead request
        self._fetch = fetch
        self._request: Request | None = first  # the next page's request
        self._seen = _RecentCursors()
        self._max_pages = _check_max_pages(max_pages)
        self._prefetch = check_prefetch(prefetch)
        self._error: ZendeskError | None = None  # ends the listing after the pages delivered
        self._failure: BaseException | None = None  # a read-ahead request that failed
        self._buffer: deque[ActivityPage] = deque()  # pages read ahead, not yet delivered
        self._waiter: asyncio.Future[None] | None = None  # the consumer waiting for a page
        self._in_flight: int | None = None  # the generation of the read-ahead request
        self._generation = 0
        self._need_pages: int | None = None  # read ahead no further than this
        self._need_activities: int | None = None
        self._activities = 0  # on the pages fetched so far
        self.pages_fetched = 0

    @property
    def prefetch(self) -> int:
        """Pages kept fetched or in flight ahead of the consumer."""
        return self._prefetch

    def __aiter__(self) -> PageIterator:
        return self

    async def __anext__(self) -> ActivityPage:
        if self._prefetch:
            return await self._next_read_ahead()
        if self._error is not None:
            error, self._error, self._request = self._error, None, None
            raise error
        request = self._request
        if request is None:
            raise StopAsyncIteration
        try:
            page = await self._fetch(request)
        except InvalidRequestError as exc:
            refused = self._refused(exc)
            if refused is exc:
                raise
            raise refused from exc
        self._advance(request, page)
        return page

    async def aclose(self) -> None:
        """End the iteration: cancel the page in flight, wait for it to end, drop the pages
        read ahead. Idempotent; the iterator then raises ``StopAsyncIteration``."""
        self._request = self._error = self._failure = None
        self._buffer.clear()
        await self._cancel_read_ahead()

    def __del__(self) -> None:
        task = getattr(self, "_task", None)  # (absent if __init__ failed)
        if task is not None and not task.done():
            _cancel_soon(task)

    def _read_no_further(self, *, pages: int | None = None, activities: int | None = None) -> None:
        """Read ahead no page past the one that makes ``pages`` pages or ``activities``
        activities in all (what its owner will ask for at most)."""
        self._need_pages, self._need_activities = pages, activities

    # --- one page in

    def _refused(self, exc: InvalidRequestError) -> ZendeskError:
        """What to raise for a request Zendesk refused: the listing ends there."""
        self._request = None
        if exc.code == "InvalidPaginationDepth":
            return PaginationDepthError(
                f"Zendesk refused the offset page: {exc.description or exc}. "
                "Use cursor pagination (the default) to read deeper."
            )
        return exc

    def _advance(self, request: Request, page: ActivityPage) -> None:
        """Take ``page``, the answer to ``request``: its resume token, and the next request."""
        self.pages_fetched += 1
        self._activities += len(page.activities)
        page._resume_from = (resume_token, request)  # its resume_token, made when read
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

    # --- read-ahead

    async def _next_read_ahead(self) -> ActivityPage:
        try:
            while True:
                if self._buffer:
                    # The consumer takes this page: the next may be requested now, and goes
                    # out before the consumer works on this one (which may never yield).
                    if self._read_ahead(taken=1):
                        await asyncio.sleep(0)
                    if self._buffer:
                        return self._buffer.popleft()
                    continue  # (closed meanwhile)
                failure = self._failure
                if failure is not None:
                    self._failure = None
                    raise failure
                if self._in_flight is None:
                    if self._request is None:
                        if self._error is not None:
                            error, self._error = self._error, None
                            raise error
                        raise StopAsyncIteration
                    self._start()
                    continue  # (an eager task factory may have delivered it already)
                waiter = self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await waiter
                finally:
                    self._waiter = None
        except asyncio.CancelledError:
            # The consumer gave up on this page: so does the request in flight, as without
            # read-ahead (the listing stays where it was: asking again asks again).
            await self._cancel_read_ahead()
            raise

    def _read_ahead(self, taken: int = 0) -> bool:
        """Request the next page if the consumer may want it and fewer than ``prefetch``
        pages would wait, not counting the ``taken`` one the consumer is about to take."""
        if (
            self._in_flight is None
            and self._request is not None
            and self._failure is None
            and len(self._buffer) - taken < self._prefetch
            and (self._need_pages is None or self.pages_fetched < self._need_pages)
            and (self._need_activities is None or self._activities < self._need_activities)
        ):
            self._start()
            return True
        return False

    def _start(self) -> None:
        request = self._request
        assert request is not None
        self._generation += 1
        generation = self._in_flight = self._generation
        task = asyncio.get_running_loop().create_task(
            _fetch_ahead(weakref.ref(self), self._fetch, request, generation)
        )
        if self._in_flight == generation:  # not already delivered (eager task factories)
            self._task = task

    def _landed(
        self, generation: int, request: Request, outcome: ActivityPage | BaseException
    ) -> None:
        """A read-ahead request ended with a page or an exception (in its own task)."""
        if self._in_flight != generation:
            return  # cancelled meanwhile: the iterator has moved on
        self._in_flight = self._task = None
        if isinstance(outcome, InvalidRequestError):
            failure = self._refused(outcome)
            if failure is not outcome:
                failure.__cause__ = outcome  # as ``raise failure from outcome``
            self._failure = failure
        elif isinstance(outcome, BaseException):
            self._failure = outcome  # the request stays: asking again asks again
        else:
            self._advance(request, outcome)
            self._buffer.append(outcome)
            # A consumer waiting for this page takes it at once: its successor goes out first.
            waiter = self._waiter
            self._read_ahead(taken=int(waiter is not None and not waiter.done()))
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _cancel_read_ahead(self) -> None:
        task = self._task
        self._in_flight = self._task = None
        self._wake()  # a consumer waiting for that page looks again
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait((task,))


async def _fetch_ahead(
    ref: weakref.ref[PageIterator], fetch: FetchPage, request: Request, generation: int
) -> None:
    """The read-ahead task: fetch one page and hand it to the iterator, if it still exists.

    It holds the iterator weakly, so that a dropped iterator is collected (and cancels this)."""
    outcome: ActivityPage | BaseException
    try:
        outcome = await fetch(request)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # the consumer's to see, in order (KeyboardInterrupt too)
        outcome = exc
    iterator = ref()
    if iterator is not None:
        iterator._landed(generation, request, outcome)


def _cancel_soon(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` from a finalizer, which may run on another thread or after its loop."""
    loop = task.get_loop()
    try:
        if loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task.cancel()
        else:
            loop.call_soon_threadsafe(task.cancel)
    except RuntimeError:  # the loop closed meanwhile: nothing runs any more
        pass


class ActivityIterator(AsyncIteratorClosing):
    """Iterates the activities of one listing, page after page (see :class:`PageIterator`,
    whose read-ahead it uses). ``async with`` (or :meth:`aclose`) stops it at once."""

    __slots__ = ("_current", "_index", "_pages")

    def __init__(self, pages: PageIterator) -> None:
        self._pages = pages
        self._current: list[Activity] = []
        self._index = 0

    @property
    def pages(self) -> PageIterator:
        """The page iterator underneath (``pages.pages_fetched``...)."""
        return self._pages

    def __aiter__(self) -> ActivityIterator:
        return self

    async def __anext__(self) -> Activity:
        while self._index >= len(self._current):
            page = await self._pages.__anext__()
            self._current, self._index = page.activities, 0
        activity = self._current[self._index]
        self._index += 1
        return activity

    async def aclose(self) -> None:
        """End the iteration (see :meth:`PageIterator.aclose`)."""
        self._current, self._index = [], 0
        await self._pages.aclose()


class ActivityPager:
    """A listing of activities: ``async for activity in pager`` or ``async for page in
    pager.pages()``. Each iteration starts again from the first request. ``max_pages`` bounds
    the pages of each iteration (None: no bound); ``prefetch`` is how many pages each keeps
    fetched or in flight ahead of the consumer (0: a page is requested only when the one
    before is used up)."""

    __slots__ = ("_fetch", "first_request", "max_pages", "prefetch")

    def __init__(
        self,
        fetch: FetchPage,
        first: Request,
        *,
        max_pages: int | None = DEFAULT_MAX_PAGES,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> None:
        self._fetch = fetch
        self.first_request = first
        self.max_pages = _check_max_pages(max_pages)
        self.prefetch = check_prefetch(prefetch)

    def pages(self) -> PageIterator:
        """Iterate the listing page by page (save ``page.resume_token`` to resume later)."""
        return PageIterator(
            self._fetch, self.first_request, max_pages=self.max_pages, prefetch=self.prefetch
        )

    def __aiter__(self) -> ActivityIterator:
        return ActivityIterator(self.pages())

    async def collect(self, limit: int | None = None) -> list[Activity]:
        """All activities of the listing (or the first ``limit``) as a list.

        No page is requested beyond the one that reaches ``limit``, read-ahead included:
        ``list(page_size=20).collect(limit=20)`` is one request, and ``limit=0`` none.
        """
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError(f"limit must be an int or None, not {type(limit).__name__}")
            if limit < 0:
                raise ValueError(f"limit must not be negative, not {limit}")
            if limit == 0:
                return []
        result: list[Activity] = []
        async with self.pages() as pages:
            pages._read_no_further(activities=limit)
            async for page in pages:
                if limit is None:
                    result.extend(page.activities)
                    continue
                result.extend(page.activities[: limit - len(result)])
                if len(result) >= limit:
                    break
        return result
