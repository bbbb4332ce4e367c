"""Stream many agents' activities concurrently.

:func:`fan_out` runs ``concurrency`` workers; each takes the next agent and streams its pages,
one request at a time, so at most ``concurrency`` requests are in flight. Pages go through a
queue of ``concurrency`` slots: a slow consumer stops the workers (backpressure), and memory
stays bounded by about ``2 * concurrency`` pages whatever the number of agents.

Failures are isolated: an agent whose stream fails (bad token, 403, retries exhausted, or any
other exception, such as a credential that cannot be sent) stops only that agent. When every
other stream is done, an :class:`ExceptionGroup` of :class:`AgentError` (one per failed agent,
with ``.key`` and the cause) is raised; only cancellation (and ``KeyboardInterrupt`` /
``SystemExit``) stops every agent::

    try:
        async for key, activity in zdactivity.fan_out(clients, since=since):
            ...
    except* zdactivity.AgentError as group:
        for failure in group.exceptions:  # the group is flat: isinstance is for type checkers
            if isinstance(failure, zdactivity.AgentError):
                log.warning("agent %s failed: %s", failure.key, failure.error)

Leaving the loop early or cancelling the consumer cancels every fetch. For deterministic
cleanup on ``break``, wrap it in :func:`contextlib.aclosing`.

``prefetch`` (0 by default) lets each worker's listing read that many pages ahead while the
worker waits for a queue slot. The workers already overlap one another's requests, so it adds
little but memory (up to ``prefetch`` more pages per worker); requests in flight stay at most
``concurrency``, one per worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Final, TypeVar, cast

from .errors import AgentError
from .models import Activity, ActivityPage
from .pagination import check_prefetch
from .protocol import MAX_PAGE_SIZE

if TYPE_CHECKING:
    from .client import Client

__all__ = ["AgentError", "fan_out"]

K = TypeVar("K", bound=Hashable)

_DONE: Final = object()


class _Crash:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def fan_out(
    clients: Mapping[K, Client],
    *,
    since: datetime | str | None = None,
    page_size: int = MAX_PAGE_SIZE,
    concurrency: int = 50,
    prefetch: int = 0,
) -> AsyncIterator[tuple[K, Activity]]:
    """Yield ``(key, activity)`` for every activity of every client's stream, as pages arrive.

    ``clients`` maps your key (an agent id, an email...) to a client, usually ``with_auth``
    views of one account so that they share its rate limiter. Arguments are checked before any
    request. Each agent's activities come in its server order; agents interleave.
    ``prefetch``: pages each agent's listing reads ahead (see the module docstring).
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int, not {concurrency!r}")
    check_prefetch(prefetch)
    pagers = {
        key: client.activities.list(since=since, page_size=page_size, prefetch=prefetch)
        for key, client in clients.items()
    }
    if not pagers:
        return
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=concurrency)
    pending = iter(pagers.items())
    failures: list[AgentError[K]] = []

    async def worker() -> None:
        try:
            for key, pager in pending:
                try:
                    async with pager.pages() as pages:  # cancelling stops its read-ahead
                        async for page in pages:
                            if page.activities:
                                await queue.put((key, page))
                except Exception as exc:  # this agent's failure, whatever it is: the others go on
                    error = AgentError(key, exc)
                    error.__cause__ = exc
                    failures.append(error)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # KeyboardInterrupt, SystemExit...: stop everything
            await queue.put(_Crash(exc))
            return
        await queue.put(_DONE)

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(pagers)))]
    try:
        running = len(workers)
        while running:
            item = await queue.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, _Crash):
                raise item.error
            else:
                key, page = cast("tuple[K, ActivityPage]", item)
                for activity in page.activities:
                    yield key, activity
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    if failures:
        raise ExceptionGroup(f"{len(failures)} of {len(pagers)} agent streams failed", failures)
