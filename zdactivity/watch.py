"""Follow one agent's stream forever, yielding each new activity once.

Each poll lists the activities ``since`` the high-water mark minus a ``lookback`` (Zendesk may
show an activity a little after its ``created_at``, and whether ``since`` is inclusive is not
documented). Activities already delivered are recognised by id. Each page's new activities are
delivered as the page arrives, oldest first within the page; nothing depends on the order in
which Zendesk sends pages. Polls are spaced by a jittered ``interval`` so that many watchers do
not poll in lockstep.

The high-water mark moves only when a poll has read its listing to the end, and never further
than the local clock plus :attr:`ActivityWatcher.max_skew` (a future-dated activity must not hide
the ones that arrive after it). While a poll is under way, the checkpoint records where its
listing stands (the cursor of the page being delivered), so a restart continues that listing
instead of skipping the rest of it. A poll reads at most ``max_pages_per_poll`` pages before it
waits an interval and goes on, so that a server that never stops saying ``has_more`` cannot make
a watcher page forever without pause; memory stays bounded by the lookback, not the listing.

Within a poll, the listing reads ``prefetch`` pages ahead of the consumer (see
:mod:`zdactivity.pagination`), never past the poll's ``max_pages_per_poll``. A page read ahead
changes nothing until it is delivered: the position, the ids and the mark move as before, in
delivery order. ``poll_gate`` is held by each page request itself, read-ahead included.

Guarantee: with a checkpoint store, an activity is committed once the consumer has taken it:
when it asks for the next one, or when the ``async with`` block around the watcher ends without
an exception (``break`` included). Delivery is therefore *exactly once* within a process that
ends cleanly, and after a crash *at most one activity per agent comes again* (the one being
handled when the process died). An exception out of the ``async with`` block leaves the activity
in hand uncommitted: it comes again next time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import ClassVar, Final, TypedDict, Unpack

import msgspec

from .checkpoint import Checkpoint, CheckpointStore
from .models import Activity, ActivityPage
from .pagination import DEFAULT_PREFETCH, FetchPage, PageIterator, check_prefetch
from .protocol import MAX_PAGE_SIZE, Request, format_since, list_request

__all__ = [
    "DEFAULT_MAX_PAGES_PER_POLL",
    "MAX_INTERVAL",
    "MAX_LOOKBACK",
    "ActivityWatcher",
    "FetchPage",
    "WatchOptions",
    "WatchSettings",
]

#: How many pages one poll reads before it waits an interval and reads on (10,000 activities
#: at the default page size).
DEFAULT_MAX_PAGES_PER_POLL: Final = 100

log = logging.getLogger("zdactivity")


class _Position(msgspec.Struct, frozen=True):
    """Where an unfinished poll stands: kept in :attr:`Checkpoint.position`."""

    since: str | None  # the poll's since, as sent
    cursor: str | None  # fetches the page being delivered (None: the listing's first page)
    newest: datetime | None  # the newest created_at the poll has seen so far


_POSITION_ENCODER = msgspec.json.Encoder()
_POSITION_DECODER = msgspec.json.Decoder(_Position)


def _utc_now() -> datetime:
    return datetime.now(UTC)


#: The longest wait between two polls (a day): activities leave Zendesk's listing after 30 days.
MAX_INTERVAL: Final = 86_400.0
#: The longest lookback: Zendesk lists the last 30 days only.
MAX_LOOKBACK: Final = timedelta(days=30)


@dataclasses.dataclass(frozen=True, kw_only=True)
class WatchOptions:
    """How a watcher polls: one frozen set of options, shared by
    :meth:`ActivitiesAPI.watch <zdactivity.client.ActivitiesAPI.watch>`,
    :class:`ActivityWatcher` and :class:`~zdactivity.fleet.Fleet`, checked once when it is made
    (ValueError / TypeError).

    ``since`` applies when there is no checkpoint yet (None: the whole 30-day window).
    ``interval`` seconds between polls, spread by ``jitter`` (a share, 0 <= jitter < 1);
    ``lookback`` re-reads that much before the high-water mark to catch activities that show up
    late. ``page_size`` is 1..:data:`~zdactivity.protocol.MAX_PAGE_SIZE`. A poll reads at most
    ``max_pages_per_poll`` pages, then waits an interval before reading on. ``prefetch``: pages
    of a poll's listing kept fetched or in flight ahead of the consumer (0: none).
    :meth:`replace` gives a copy with some options changed.
    """

    since: datetime | str | None = None
    interval: float = 60.0
    jitter: float = 0.2
    lookback: timedelta = timedelta(minutes=10)
    page_size: int = MAX_PAGE_SIZE
    max_pages_per_poll: int = DEFAULT_MAX_PAGES_PER_POLL
    prefetch: int = DEFAULT_PREFETCH

    def __post_init__(self) -> None:
        if self.since is not None:
            format_since(self.since)
        if isinstance(self.interval, bool) or not isinstance(self.interval, int | float):
            raise TypeError(f"interval must be a number, not {type(self.interval).__name__}")
        if not 0 < self.interval <= MAX_INTERVAL:
            # Far longer and activities would age out of Zendesk's 30-day window between polls.
            raise ValueError(
                f"interval must be a number of seconds above 0 and at most {MAX_INTERVAL:g}"
            )
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be a share between 0 and 1")
        if not isinstance(self.lookback, timedelta):
            raise TypeError(f"lookback must be a timedelta, not {type(self.lookback).__name__}")
        if not timedelta(0) <= self.lookback <= MAX_LOOKBACK:
            raise ValueError(f"lookback must be between 0 and {MAX_LOOKBACK.days} days")
        page_size = self.page_size
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise TypeError(f"page_size must be an int, not {type(page_size).__name__}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
        pages = self.max_pages_per_poll
        if isinstance(pages, bool) or not isinstance(pages, int) or pages < 1:
            raise ValueError(f"max_pages_per_poll must be a positive int, not {pages!r}")
        check_prefetch(self.prefetch)

    def replace(self, **changes: Unpack[WatchSettings]) -> WatchOptions:
        """A copy with ``changes`` (checked like the original)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def build(
        cls, options: WatchOptions | None = None, **settings: Unpack[WatchSettings]
    ) -> WatchOptions:
        """``options`` (or the defaults) with the keyword ``settings`` given on top."""
        if options is not None and not isinstance(options, WatchOptions):
            raise TypeError(f"options must be a WatchOptions, not {type(options).__name__}")
        base = options if options is not None else cls()
        return base.replace(**settings) if settings else base


class WatchSettings(TypedDict, total=False):
    """The options of :class:`WatchOptions` as keyword arguments (``watch(interval=30)``)."""

    since: datetime | str | None
    interval: float
    jitter: float
    lookback: timedelta
    page_size: int
    max_pages_per_poll: int
    prefetch: int


class ActivityWatcher:
    """The async iterator returned by ``client.activities.watch()``.

    Use it as an async context manager, so that leaving the loop (``break`` included) commits
    the activity taken last::

        async with zd.activities.watch(checkpoint=store, key="me") as stream:
            async for activity in stream:
                await handle(activity)
    """

    #: How far ahead of the local clock the high-water mark may go (clock skew allowance).
    max_skew: ClassVar[timedelta] = timedelta(minutes=1)

    def __init__(
        self,
        fetch_page: FetchPage,
        options: WatchOptions | None = None,
        *,
        checkpoint: CheckpointStore | None = None,
        key: str | None = None,
        poll_gate: asyncio.Semaphore | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Follow the listing that ``fetch_page`` (one request in, one decoded page out)
        serves, as ``options`` say. ``client.activities.watch()`` makes one."""
        options = WatchOptions.build(options)
        if checkpoint is not None and not key:
            raise ValueError("a checkpoint store needs key= (the agent's name in the store)")
        self.options = options
        self._since = None if options.since is None else format_since(options.since)
        self._fetch_page = fetch_page if poll_gate is None else _gated(fetch_page, poll_gate)
        self._store = checkpoint
        self.key = key
        self._sleep = sleep
        self._clock = clock or _utc_now
        self._rng = rng or random.Random()
        self._loaded = False
        self._high_water: datetime | None = None
        # Delivered ids near the mark, with their created_at (None: loaded, not yet seen again).
        self._ids: dict[int, datetime | None] = {}
        self._position: _Position | None = None  # a poll under way
        self._pages: PageIterator | None = None  # its open listing
        self._next_cursor: str | None = None  # the cursor of the listing's next request
        self._read_on: str | None = None  # where a paused poll goes on
        self._pages_read = 0  # pages of the open listing read since the last pause
        self._fresh = False  # this process read the poll from its first page
        self._unknown_seen: set[int] = set()  # loaded ids this fresh poll listed again
        self._pause = False  # wait an interval before reading on
        self._buffer: deque[Activity] = deque()
        self._taken: Activity | None = None
        self._committed: Checkpoint | None = None
        self.polls = 0

    @property
    def interval(self) -> float:
        """Seconds between polls (before jitter)."""
        return self.options.interval

    @property
    def jitter(self) -> float:
        """The share by which each wait is spread."""
        return self.options.jitter

    @property
    def lookback(self) -> timedelta:
        """How far before the high-water mark each poll reads again."""
        return self.options.lookback

    @property
    def max_pages_per_poll(self) -> int:
        """Pages a poll reads before it waits an interval and reads on."""
        return self.options.max_pages_per_poll

    # --- the consumer's side

    @property
    def checkpoint(self) -> Checkpoint | None:
        """What has been committed so far (None before the first commit or load)."""
        return self._committed

    def __aiter__(self) -> ActivityWatcher:
        return self

    async def __anext__(self) -> Activity:
        await self._commit_taken()
        while not self._buffer:
            await self._read_page()
        activity = self._buffer.popleft()
        self._taken = activity
        return activity

    async def __aenter__(self) -> ActivityWatcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.aclose()
        else:
            self._taken = None  # not handled: it comes again next time
            await self._close_listing()

    async def aclose(self) -> None:
        """Commit the activity the consumer took last, and stop (the page in flight, if any,
        is cancelled)."""
        try:
            await self._commit_taken()
        finally:
            await self._close_listing()

    async def _close_listing(self) -> None:
        pages, self._pages = self._pages, None
        if pages is not None:
            await pages.aclose()

    def next_delay(self) -> float:
        """The jittered seconds to wait before the next poll."""
        spread = self.interval * self.jitter
        return self.interval + self._rng.uniform(-spread, spread)

    # --- checkpoints

    async def _load(self) -> None:
        if self._loaded:
            return
        loaded = None
        if self._store is not None:
            assert self.key is not None
            loaded = await self._store.load(self.key)
        if loaded is not None:
            self._high_water = loaded.high_water
            self._ids = dict.fromkeys(loaded.recent_ids)
            self._position = self._decode_position(loaded.position)
            self._committed = loaded
        self._loaded = True

    def _decode_position(self, text: str | None) -> _Position | None:
        if text is None:
            return None
        try:
            return _POSITION_DECODER.decode(text)
        except msgspec.DecodeError:
            log.warning(
                "watcher %s: the saved poll position does not decode; starting a new poll",
                self.key,
            )
            return None

    async def _commit_taken(self) -> None:
        activity, self._taken = self._taken, None
        if activity is not None:
            self._ids[activity.id] = activity.created_at
            await self._save()

    async def _save(self) -> None:
        position = self._position
        self._committed = Checkpoint(
            self._high_water,
            frozenset(self._ids),
            None if position is None else _POSITION_ENCODER.encode(position).decode(),
        )
        if self._store is not None:
            assert self.key is not None
            await self._store.save(self.key, self._committed)

    # --- polling

    def _clamp(self, when: datetime) -> datetime:
        """``when``, but never further ahead than the local clock allows."""
        limit = self._clock() + self.max_skew
        if when > limit:
            log.warning(
                "watcher %s: an activity is dated %s, ahead of the local clock; the high-water "
                "mark stops at %s",
                self.key,
                when.isoformat(),
                limit.isoformat(),
            )
            return limit
        return when

    def _open(self) -> None:
        """Open the listing of the poll under way (or of a new one)."""
        position = self._position
        if position is None:
            since = self._since
            if self._high_water is not None:
                since = format_since(self._high_water - self.lookback)
            position = self._position = _Position(since, None, None)
            self._unknown_seen = set()
            self.polls += 1
        cursor: str | None
        if self._read_on is not None:  # a paused poll goes on
            cursor, self._read_on = self._read_on, None
        else:  # a new poll, or one a restart goes on with
            cursor = position.cursor
            self._fresh = cursor is None
        self._next_cursor = cursor
        first = list_request(since=position.since, page_size=self.options.page_size, cursor=cursor)
        self._pages = PageIterator(self._fetch_page, first, prefetch=self.options.prefetch)
        self._pages._read_no_further(pages=self.max_pages_per_poll)  # then the poll pauses
        self._pages_read = 0

    async def _read_page(self) -> None:
        await self._load()
        if self._pause:
            await self._sleep(self.next_delay())
            self._pause = False
        if self._pages is None:
            self._open()
        pages, position = self._pages, self._position
        assert pages is not None and position is not None
        try:
            page = await pages.__anext__()
        except StopAsyncIteration:
            page = None
        if page is None:
            await self._finish_poll()
            return
        self._pages_read += 1
        cursor, self._next_cursor = self._next_cursor, page.after_cursor
        floor = None if self._high_water is None else self._high_water - self.lookback
        newest = position.newest
        ids = self._ids
        fresh: dict[int, Activity] = {}
        listed_again: list[int] = []
        for activity in page.activities:
            created = activity.created_at
            if floor is not None and created < floor:
                continue  # older than what was asked for: delivered before, or too late to tell
            if newest is None or created > newest:
                newest = created
            if activity.id in ids:
                listed_again.append(activity.id)
                if ids[activity.id] is None:
                    ids[activity.id] = created
                    if self._fresh:
                        self._unknown_seen.add(activity.id)
            else:
                fresh.setdefault(activity.id, activity)
        # Ids the rest of this poll and the next one cannot list again are forgotten now; those
        # on this page are kept while it is delivered (a restart fetches it again).
        self._prune(newest, keep=listed_again)
        self._position = _Position(position.since, cursor, newest)
        self._buffer.extend(sorted(fresh.values(), key=lambda a: (a.created_at, a.id)))
        if self._pages_read >= self.max_pages_per_poll and page.has_more and page.after_cursor:
            log.warning(
                "watcher %s: %d pages in one poll; reading on after an interval",
                self.key,
                self._pages_read,
            )
            # The position stays on this page until it has been delivered.
            self._pages = None
            self._read_on = page.after_cursor
            self._pause = True

    def _prune(self, newest: datetime | None, keep: tuple[int, ...] | list[int] = ()) -> None:
        if newest is None:
            return
        mark = self._clamp(newest)
        if self._high_water is not None and self._high_water > mark:
            mark = self._high_water
        floor = mark - self.lookback
        ids = self._ids
        stale = {i for i, created in ids.items() if created is not None and created < floor}
        for i in stale.difference(keep):
            del ids[i]

    async def _finish_poll(self) -> None:
        position = self._position
        assert position is not None
        if position.newest is not None:
            mark = self._clamp(position.newest)
            if self._high_water is None or mark > self._high_water:
                self._high_water = mark
        if self._fresh:
            # Loaded ids this whole listing did not show again can never come back.
            for i in [i for i, c in self._ids.items() if c is None]:
                if i not in self._unknown_seen:
                    del self._ids[i]
        self._prune(self._high_water)
        self._position = None
        self._pages = None
        self._pause = True
        await self._save()


def _gated(fetch_page: FetchPage, gate: asyncio.Semaphore) -> FetchPage:
    """``fetch_page`` holding ``gate`` for each request (read-ahead ones too)."""

    async def fetch(request: Request) -> ActivityPage:
        async with gate:
            return await fetch_page(request)

    return fetch
