"""Run ``watch()`` for many agents of one or more accounts in one worker process.

::

    async with (
        zdactivity.checkpoint.SQLiteCheckpointStore("checkpoints.db") as store,
        zdactivity.fleet.Fleet(store, interval=30) as fleet,   # closing it closes the clients
    ):
        for agent in agents:
            fleet.add(agent.email, account.with_auth(zdactivity.OAuthToken(agent.token)))
        fleet.install_signal_handlers()        # SIGTERM / SIGINT stop it gracefully
        await fleet.run(notify)                # async def notify(key, activity): ...

- Each agent is watched by its own task, with its own checkpoint (saved after ``notify``
  returns: exactly once while the worker lives and stops cleanly, at most one activity per
  agent again after a crash).
- Clients of one account share that account's rate limiter (``with_auth`` views do);
  ``max_concurrent_polls`` bounds the polls in flight across the whole fleet.
- An agent that fails (bad token, 403, retries exhausted, a checkpoint that cannot be saved,
  ``notify`` raising: any exception) is retried after an exponential, jittered backoff that
  only a committed activity or a finished poll resets; the others carry on.
  :meth:`Fleet.status` tells.
- :meth:`Fleet.stop` (or a signal, or cancelling ``run``) stops polling, lets handlers in
  progress finish (``grace`` seconds at most), and returns with every handled activity
  committed. :meth:`Fleet.close` (or leaving ``async with``) then closes the clients'
  sessions: each account's once, through its owning client.
- :meth:`Fleet.stream` is the same as an async iterator of ``(key, activity)``.
- How every watcher polls is one :class:`~zdactivity.WatchOptions` (``options=``, or its
  fields as keywords).
- Several workers (processes, machines) share one fleet with a ``coordinator``, e.g.
  ``Fleet(RedisCheckpointStore(r), coordinator=RedisCoordinator(r, "group"))``: every worker
  adds every agent and watches only the agents it owns (see :mod:`zdactivity.redis`). Before
  watching an agent the fleet claims the ownership's fencing token in the store, and every
  save carries it; an agent whose lease is lost, or whose save is refused
  (:class:`~zdactivity.errors.FencedOutError`), is stopped at once, without delivering
  another activity. :meth:`Fleet.stop` commits and releases the worker's agents and leaves the
  group, so the others take them over at their next heartbeat.
- :meth:`Fleet.writes` gives the handler the writes to commit together with its activity, in
  the same transaction as the checkpoint (Redis commands, or SQL statements with SQLite): output
  kept in the store's database is exactly once, across crashes and zombie workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import signal
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, Unpack

from ._aio import AsyncClosing
from ._signals import STOP_SIGNALS, on_signals
from .checkpoint import CheckpointStore, WritesNotSupportedError
from .client import Client
from .errors import FencedOutError
from .models import Activity
from .watch import WatchOptions, WatchSettings

__all__ = ["AgentStatus", "Fleet"]

log = logging.getLogger("zdactivity")

Handler = Callable[[str, Activity], Awaitable[None]]


@dataclass
class AgentStatus:
    """How one agent of a fleet is doing."""

    delivered: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: BaseException | None = None
    retry_at: float | None = None  # loop time of the next attempt after a failure
    #: Saves (and claims) the store refused because another worker owns the agent now.
    fenced_out: int = 0


class Coordinator(Protocol):
    """What a fleet needs from a coordinator (:class:`zdactivity.redis.RedisCoordinator`)."""

    heartbeat: float

    async def tick(self, keys: Iterable[str]) -> Any:
        """Renew; return ``.acquired`` / ``.lost`` ownerships and ``.handoff`` keys."""
        ...

    async def release(self, key: str) -> None: ...

    async def leave(self) -> None: ...


class _AgentView:
    """One agent's view of the store: every save carries the ownership's fencing token (with a
    coordinator) and the writes the handler staged for the activity that save commits."""

    def __init__(self, store: Any, key: str, ownership: Any, status: AgentStatus) -> None:
        self._store = store
        self.key = key
        self._ownership = ownership
        self._status = status
        self.handling = False  # the handler has an activity of this agent in hand
        self.staged: Any = None  # what Fleet.writes gave it, committed by the next save

    async def load(self, key: str) -> Any:
        return await self._store.load(key)

    async def save(self, key: str, checkpoint: Any) -> None:
        if key != self.key:
            raise ValueError(f"this view saves only {self.key!r}")
        staged, self.staged = self.staged, None
        extra: dict[str, Any] = {}
        if staged is not None:
            extra["writes"] = staged
        if self._ownership is None:
            await self._store.save(key, checkpoint, **extra)
            return
        try:
            await self._store.save(key, checkpoint, fence=self._ownership.fence, **extra)
        except FencedOutError:
            self._status.fenced_out += 1
            self._ownership.lose()
            raise

    async def close(self) -> None:
        return None


#: The view of the agent whose handler runs in this task (``Fleet.writes`` prefers it).
_handling: contextvars.ContextVar[_AgentView | None] = contextvars.ContextVar(
    "zdactivity_fleet_handling", default=None
)


class _LeaseLost(Exception):
    """Raised inside a watcher whose ownership may have lapsed: deliver nothing more."""


class _Stopping(Exception):
    """Raised out of a watcher's sleep when the fleet stops."""


class Fleet(AsyncClosing):
    """Watch many agents with durable checkpoints, isolated failures and graceful shutdown.

    ``options`` (or its fields as keywords, given on top) say how every agent is polled; see
    :class:`~zdactivity.WatchOptions`. ``async with Fleet(...) as fleet:`` closes the clients'
    sessions on the way out (:meth:`close`); the checkpoint store stays the caller's.
    """

    def __init__(
        self,
        store: CheckpointStore,
        options: WatchOptions | None = None,
        *,
        max_concurrent_polls: int = 50,
        retry_delay: float = 5.0,
        max_retry_delay: float = 600.0,
        grace: float = 10.0,
        coordinator: Coordinator | None = None,
        **settings: Unpack[WatchSettings],
    ) -> None:
        if max_concurrent_polls < 1:
            raise ValueError("max_concurrent_polls must be at least 1")
        self.store = store
        self.options = WatchOptions.build(options, **settings)
        self.max_concurrent_polls = max_concurrent_polls
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.grace = grace
        self.coordinator = coordinator
        self._clients: dict[str, Client] = {}
        self._status: dict[str, AgentStatus] = {}
        self._stopping: asyncio.Event | None = None
        self._rng = random.Random()
        self._views: dict[str, _AgentView] = {}

    def add(self, key: str, client: Client) -> None:
        """Watch ``client``'s agent under ``key`` (its name in the checkpoint store)."""
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty str")
        if key in self._clients:
            raise ValueError(f"agent {key!r} is already in the fleet")
        self._clients[key] = client
        self._status[key] = AgentStatus()

    @property
    def keys(self) -> list[str]:
        """The agents' keys."""
        return list(self._clients)

    def status(self) -> dict[str, AgentStatus]:
        """Per-agent counters and last error."""
        return dict(self._status)

    def ownership(self, key: str) -> Any:
        """With a coordinator, this worker's current ownership of ``key`` (``.fence``, the
        fencing token its saves carry; ``.valid()``), or ``None`` when it does not own it.

        A handler that writes elsewhere can carry ``.fence`` with its own writes (and have its
        database refuse a lower one), so a paused worker's late writes are refused there too.
        """
        coordinator = self.coordinator
        owned = getattr(coordinator, "owned", None) if coordinator is not None else None
        return None if owned is None else owned.get(key)

    def writes(self, key: str) -> Any:
        """The writes to commit together with the activity ``key``'s handler is handling.

        Call it in the handler (or, with :meth:`stream`, before taking the next item); stage
        the activity's output on what it returns, e.g. ``fleet.writes(key).rpush("inbox",
        activity.id)`` with a :class:`~zdactivity.redis.RedisCheckpointStore` (a
        :class:`~zdactivity.redis.RedisWrites`). The save that commits the activity applies
        them and the checkpoint in one transaction, behind the same fence: both are stored or
        neither, so output in the store's own database is exactly once, across crashes and
        zombie workers. A handler that raises drops them (the activity comes again).
        :class:`~zdactivity.checkpoint.SQLiteCheckpointStore` stages SQL statements instead
        (:class:`~zdactivity.checkpoint.SQLiteWrites`); a store without the hook (memory)
        raises :class:`~zdactivity.checkpoint.WritesNotSupportedError`. For output elsewhere,
        dedupe by ``activity.id``.
        """
        view = _handling.get()  # set in the agent's task: the handler's own agent
        if view is None:  # stream(): the consumer's task
            view = self._views.get(key)
        elif view.key != key:
            raise RuntimeError(f"the handler of {view.key!r} cannot stage writes for {key!r}")
        if view is None or not view.handling:
            raise RuntimeError(f"writes({key!r}) is for the handler of {key!r}, while it runs")
        if view.staged is None:
            factory = getattr(self.store, "writes", None)
            if factory is None:
                raise WritesNotSupportedError(
                    f"{type(self.store).__name__} cannot commit writes with a checkpoint; use a "
                    "store that can (RedisCheckpointStore, SQLiteCheckpointStore), or dedupe "
                    "by activity.id"
                )
            view.staged = factory(key)
        return view.staged

    def stop(self) -> None:
        """Stop gracefully: no new polls; handlers in progress finish; ``run`` returns."""
        if self._stopping is None:
            self._stopping = asyncio.Event()
        self._stopping.set()

    def install_signal_handlers(self, signals: Iterable[signal.Signals] = STOP_SIGNALS) -> None:
        """Make these signals call :meth:`stop` (Unix event loops only)."""
        on_signals(asyncio.get_running_loop(), signals, lambda _signum: self.stop())

    async def run(self, handler: Handler) -> None:
        """Watch every agent until :meth:`stop` is called or this task is cancelled."""
        if self._stopping is None or self._stopping.is_set():
            self._stopping = asyncio.Event()
        stopping = self._stopping
        gate = asyncio.Semaphore(self.max_concurrent_polls)
        if self.coordinator is not None:
            await self._run_coordinated(self.coordinator, handler, gate, stopping)
            return
        tasks = [
            asyncio.create_task(self._watch_agent(key, client, handler, gate, stopping))
            for key, client in self._clients.items()
        ]
        stopped: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
        try:
            # Not gather(): cancelling it would cancel the agents too, skipping the drain.
            pending: set[asyncio.Future[Any]] = set(tasks)
            while pending and not stopping.is_set():
                _done, pending = await asyncio.wait(
                    pending | {stopped}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stopped)
        finally:
            stopped.cancel()
            stopping.set()
            await self._drain(tasks)

    async def _run_coordinated(
        self,
        coordinator: Coordinator,
        handler: Handler,
        gate: asyncio.Semaphore,
        stopping: asyncio.Event,
    ) -> None:
        keys = list(self._clients)
        running: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        every: list[asyncio.Task[None]] = []

        async def release(key: str) -> None:
            try:
                await coordinator.release(key)
            except Exception as exc:  # the lease then expires on its own
                log.warning("agent %s: could not release its lease (%s)", key, exc)

        async def watch_owned(ownership: Any, agent_stop: asyncio.Event) -> None:
            key = ownership.key
            status = self._status[key]
            try:
                claim = getattr(self.store, "claim", None)
                if claim is None:
                    raise TypeError("a coordinated fleet needs a store with claim() (fencing)")
                try:
                    await claim(key, ownership.fence)
                except FencedOutError:
                    status.fenced_out += 1
                    ownership.lose()
                    return
                await self._watch_agent(
                    key, self._clients[key], handler, gate, agent_stop, ownership
                )
            finally:
                if running.get(key, (None,))[0] is asyncio.current_task():
                    del running[key]
                if not ownership.lost:
                    await release(key)  # committed: another worker may take it at once

        try:
            while not stopping.is_set():
                try:
                    tick = await coordinator.tick(keys)
                except Exception as exc:  # Redis away: owned agents stop at their deadline
                    log.warning("fleet coordinator: heartbeat failed (%s)", exc)
                else:
                    for ownership in tick.lost:
                        entry = running.pop(ownership.key, None)
                        if entry is not None:
                            log.warning("agent %s: lease lost; stopped", ownership.key)
                            entry[0].cancel()
                    for key in tick.handoff:
                        entry = running.get(key)
                        if entry is not None:
                            entry[1].set()  # commits, then releases
                        else:
                            await release(key)
                    for ownership in tick.acquired:
                        agent_stop = asyncio.Event()
                        task = asyncio.create_task(watch_owned(ownership, agent_stop))
                        running[ownership.key] = (task, agent_stop)
                        every.append(task)
                every[:] = [t for t in every if not t.done()]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), coordinator.heartbeat)
        finally:
            stopping.set()
            for _task, agent_stop in list(running.values()):
                agent_stop.set()
            await self._drain(every)
            try:
                await coordinator.leave()
            except Exception as exc:
                log.warning("fleet coordinator: could not leave the group (%s)", exc)

    async def _drain(self, tasks: list[asyncio.Task[None]]) -> None:
        live = [t for t in tasks if not t.done()]
        if live:
            _done, late = await asyncio.wait(live, timeout=self.grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*live, return_exceptions=True)

    async def _watch_agent(
        self,
        key: str,
        client: Client,
        handler: Handler,
        gate: asyncio.Semaphore,
        stopping: asyncio.Event,
        ownership: Any = None,
    ) -> None:
        status = self._status[key]
        view = _AgentView(self.store, key, ownership, status)
        self._views[key] = view
        _handling.set(view)
        try:
            await self._watch_loop(key, client, handler, gate, stopping, ownership, view)
        finally:
            if self._views.get(key) is view:
                del self._views[key]

    async def _watch_loop(
        self,
        key: str,
        client: Client,
        handler: Handler,
        gate: asyncio.Semaphore,
        stopping: asyncio.Event,
        ownership: Any,
        view: _AgentView,
    ) -> None:
        status = self._status[key]

        async def sleep(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), seconds)
            if stopping.is_set():
                raise _Stopping

        while not stopping.is_set():
            watcher = client.activities.watch(
                self.options, checkpoint=view, key=key, poll_gate=gate, sleep=sleep
            )
            try:
                async with watcher:  # a clean exit commits the last handled activity
                    committed = watcher.checkpoint
                    async for activity in watcher:
                        if watcher.checkpoint is not committed:
                            # Progress was saved: the agent works again.
                            committed = watcher.checkpoint
                            status.consecutive_failures = 0
                        if ownership is not None and not ownership.valid():
                            raise _LeaseLost  # not delivered, not committed
                        view.handling, view.staged = True, None
                        try:
                            await handler(key, activity)
                        except BaseException:
                            view.staged = None  # not handled: it comes again, staged again
                            raise
                        finally:
                            view.handling = False
                        status.delivered += 1
                        if stopping.is_set():
                            break
                return
            except (_Stopping, _LeaseLost):
                return
            except Exception as exc:  # one agent's failure, never the fleet's
                if ownership is not None and (ownership.lost or isinstance(exc, FencedOutError)):
                    log.warning("agent %s: fenced out (%s); stopped", key, exc)
                    ownership.lose()
                    return
                status.failures += 1
                status.consecutive_failures += 1
                status.last_error = exc
                delay = min(
                    self.max_retry_delay,
                    self.retry_delay * 2 ** (status.consecutive_failures - 1),
                ) * self._rng.uniform(0.5, 1.0)
                status.retry_at = asyncio.get_running_loop().time() + delay
                log.warning("agent %s failed (%s); retrying in %.1fs", key, exc, delay)
                try:
                    await sleep(delay)
                except _Stopping:
                    return

    async def stream(self) -> AsyncGenerator[tuple[str, Activity], None]:
        """Like :meth:`run`, as an async iterator of ``(key, activity)``.

        An activity counts as handled (and is committed) when the consumer asks for the next
        one; the last one taken before the loop ends is delivered again next time (at least
        once). Use ``contextlib.aclosing`` so that leaving the loop stops the fleet at once."""
        queue: asyncio.Queue[tuple[str, Activity, asyncio.Future[None]]] = asyncio.Queue(1)
        loop = asyncio.get_running_loop()

        async def hand_over(key: str, activity: Activity) -> None:
            taken: asyncio.Future[None] = loop.create_future()
            await queue.put((key, activity, taken))
            await taken

        runner = asyncio.create_task(self.run(hand_over))
        previous: asyncio.Future[None] | None = None
        try:
            while True:
                if previous is not None and not previous.done():
                    previous.set_result(None)
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    runner.result()
                    return
                key, activity, previous = getter.result()
                yield key, activity
        finally:
            # The consumer is gone: nothing more will be taken, so release every hand-over
            # (uncommitted: they come again next time) instead of waiting out the grace.
            self.stop()
            if previous is not None and not previous.done():
                previous.cancel()
            while not runner.done():
                # Wake when the runner ends or when a handler offers one more activity.
                offered = asyncio.ensure_future(queue.get())
                await asyncio.wait({offered, runner}, return_when=asyncio.FIRST_COMPLETED)
                if offered.done():
                    offered.result()[2].cancel()
                else:
                    offered.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    async def close(self) -> None:
        """Close every client's session, once per account, through the client that owns it
        (``with_auth`` views share their owner's). Idempotent; the store stays open."""
        owners = {id(c.owner): c.owner for c in self._clients.values()}
        for owner in owners.values():
            await owner.close()
