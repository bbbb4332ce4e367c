"""Follow one agent's stream forever, yielding each new activity once.

Each poll lists the activities ``since`` the high-water mark minus a ``lookback`` (Zendesk may
show an activity a little after its ``created_at``, and whether ``since`` is inclusive is not
documented). Activities already delivered are recognised by id; the rest are delivered oldest
first. Nothing depends on the order Zendesk sends. Polls are spaced by a jittered ``interval``
so that many watchers do not poll in lockstep.

Guarantee: with a checkpoint store, the checkpoint is saved only after the consumer has taken
an activity (when it asks for the next one, or closes the watcher). Delivery is therefore
*exactly once* while the process lives, and *at least once* across crashes: an activity being
handled when the process died is delivered again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .checkpoint import Checkpoint, CheckpointStore
from .models import Activity
from .protocol import format_since

if TYPE_CHECKING:
    from .client import ActivitiesAPI

__all__ = ["ActivityWatcher"]


class ActivityWatcher:
    """The async iterator returned by ``client.activities.watch()``."""

    def __init__(
        self,
        api: ActivitiesAPI,
        *,
        since: datetime | str | None = None,
        interval: float = 60.0,
        jitter: float = 0.2,
        lookback: timedelta = timedelta(minutes=10),
        checkpoint: CheckpointStore | None = None,
        key: str | None = None,
        page_size: int = 100,
        poll_gate: asyncio.Semaphore | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError("interval must be a positive number of seconds")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be a share between 0 and 1")
        if lookback < timedelta(0):
            raise ValueError("lookback must not be negative")
        if checkpoint is not None and not key:
            raise ValueError("a checkpoint store needs key= (the agent's name in the store)")
        if since is not None:
            format_since(since)  # validate now, before any request
        api.list(page_size=page_size)  # validates page_size
        self._api = api
        self._since = since
        self.interval = interval
        self.jitter = jitter
        self.lookback = lookback
        self._store = checkpoint
        self.key = key
        self._page_size = page_size
        self._gate = poll_gate
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._state: Checkpoint | None = None  # None until loaded
        self._buffer: deque[Activity] = deque()
        self._taken: Activity | None = None
        self._polled = False
        self.polls = 0

    @property
    def checkpoint(self) -> Checkpoint | None:
        """What has been committed so far (None before the first load)."""
        return self._state

    def __aiter__(self) -> ActivityWatcher:
        return self

    async def __anext__(self) -> Activity:
        await self._commit_taken()
        while not self._buffer:
            if self._polled:
                await self._sleep(self.next_delay())
            await self._poll()
        activity = self._buffer.popleft()
        self._taken = activity
        return activity

    async def aclose(self) -> None:
        """Commit the activity the consumer took last, and stop."""
        await self._commit_taken()

    def next_delay(self) -> float:
        """The jittered seconds to wait before the next poll."""
        spread = self.interval * self.jitter
        return self.interval + self._rng.uniform(-spread, spread)

    async def _load(self) -> Checkpoint:
        if self._state is None:
            loaded = None
            if self._store is not None:
                assert self.key is not None
                loaded = await self._store.load(self.key)
            self._state = loaded or Checkpoint()
        return self._state

    async def _commit_taken(self) -> None:
        activity, self._taken = self._taken, None
        if activity is None:
            return
        state = await self._load()
        high_water = state.high_water
        if high_water is None or activity.created_at > high_water:
            high_water = activity.created_at
        self._state = Checkpoint(high_water, state.recent_ids | {activity.id})
        if self._store is not None:
            assert self.key is not None
            await self._store.save(self.key, self._state)

    async def _poll(self) -> None:
        state = await self._load()
        since: datetime | str | None = self._since
        if state.high_water is not None:
            since = state.high_water.astimezone(UTC) - self.lookback
        async with self._gate or contextlib.nullcontext():
            listed = await self._api.list(since=since, page_size=self._page_size).collect()
        self.polls += 1
        self._polled = True
        seen = state.recent_ids
        fresh: dict[int, Activity] = {}
        window_ids: set[int] = set()
        floor = None if state.high_water is None else state.high_water - self.lookback
        for activity in listed:
            if floor is not None and activity.created_at < floor:
                continue  # older than what we asked for: delivered before, or too late to tell
            window_ids.add(activity.id)
            if activity.id not in seen:
                fresh.setdefault(activity.id, activity)
        # Ids that fell out of the polled window can never come back: forget them.
        if seen and not seen <= window_ids:
            self._state = Checkpoint(state.high_water, seen & window_ids)
        self._buffer.extend(sorted(fresh.values(), key=lambda a: (a.created_at, a.id)))
