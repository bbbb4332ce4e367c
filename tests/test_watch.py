"""client.activities.watch(): incremental polling with dedupe, late arrivals and checkpoints."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta

import pytest
from conftest import NOW, token
from fakes import FakeTime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zdactivity
from zdactivity.checkpoint import Checkpoint, MemoryCheckpointStore
from zdactivity.testing import Agent, Emulator
from zdactivity.watch import ActivityWatcher

pytestmark = pytest.mark.emulator(seed=31, agents=2, activities_per_agent=25)


def oldest_first(emu: Emulator, agent: Agent) -> list[int]:
    return [a["id"] for a in reversed(emu.activities_for(agent))]


async def take(watcher: ActivityWatcher, n: int) -> list[int]:
    return [(await watcher.__anext__()).id for _ in range(n)]


async def test_first_poll_delivers_the_window_oldest_first_then_only_new(
    emu: Emulator, client: zdactivity.Client
) -> None:
    agent = emu.agents[0]
    t = FakeTime()
    watcher = client.activities.watch(interval=30, sleep=t.sleep)
    backlog = oldest_first(emu, agent)
    assert await take(watcher, len(backlog)) == backlog
    assert t.slept == [] and watcher.polls == 1
    added = [emu.add_activity(agent, created_at=NOW + timedelta(seconds=i))["id"] for i in range(3)]
    assert await take(watcher, 3) == added
    assert len(t.slept) == 1 and 24 <= t.slept[0] <= 36  # one jittered interval
    assert watcher.polls == 2
    # The boundary activity (the bound is inclusive) came back in that poll, and was dropped.
    assert emu.requests[-1].query["since"] <= f"{NOW:%Y-%m-%dT%H:%M:%SZ}"


async def test_late_activities_inside_the_lookback_are_delivered_once(
    emu: Emulator, client: zdactivity.Client
) -> None:
    agent = emu.agents[0]
    t = FakeTime()
    watcher = client.activities.watch(since=NOW, lookback=timedelta(minutes=5), sleep=t.sleep)
    first = emu.add_activity(agent, created_at=NOW + timedelta(minutes=10))
    assert await take(watcher, 1) == [first["id"]]
    late = emu.add_activity(agent, created_at=NOW + timedelta(minutes=7))  # shows up late
    newer = emu.add_activity(agent, created_at=NOW + timedelta(minutes=11))
    assert await take(watcher, 2) == [late["id"], newer["id"]]
    emu.add_activity(agent, created_at=NOW + timedelta(minutes=1))  # beyond the lookback
    nxt = emu.add_activity(agent, created_at=NOW + timedelta(minutes=12))
    assert await take(watcher, 1) == [nxt["id"]]


async def test_checkpoint_is_committed_only_after_the_activity_is_taken(
    emu: Emulator, client: zdactivity.Client
) -> None:
    store = MemoryCheckpointStore()
    watcher = client.activities.watch(checkpoint=store, key="agent-0", sleep=FakeTime().sleep)
    first = await watcher.__anext__()
    assert store.snapshot() == {}  # taken, not yet handled
    second = await watcher.__anext__()  # asking for the next one says the first was handled
    saved = store.snapshot()["agent-0"]
    assert first.id in saved.recent_ids and second.id not in saved.recent_ids
    # The mark moves when the poll has read its listing to the end; until then the checkpoint
    # says where the poll stands.
    assert saved.high_water is None and saved.position is not None
    await watcher.aclose()
    assert second.id in store.snapshot()["agent-0"].recent_ids


async def test_a_restart_resumes_where_it_left_off(emu: Emulator) -> None:
    agent = emu.agents[0]
    backlog = oldest_first(emu, agent)
    store = MemoryCheckpointStore()
    async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
        watcher = zd.activities.watch(checkpoint=store, key="a", sleep=FakeTime().sleep)
        got = await take(watcher, 10)
        # The process dies while handling the 10th: it was never committed.
    assert got == backlog[:10]
    async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
        watcher = zd.activities.watch(checkpoint=store, key="a", sleep=FakeTime().sleep)
        rest = await take(watcher, len(backlog) - 9)
    assert rest == backlog[9:]  # the 10th again (at least once), then the rest, nothing else


async def test_many_polls_with_random_arrivals_never_lose_or_duplicate(emu: Emulator) -> None:
    agent = emu.agents[1]
    rng = random.Random(5)
    store = MemoryCheckpointStore()
    delivered: list[int] = []
    expected = set(oldest_first(emu, agent))
    async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
        for restart in range(4):
            watcher = zd.activities.watch(
                checkpoint=store, key="b", lookback=timedelta(minutes=60), sleep=FakeTime().sleep
            )
            for _ in range(6):
                # Arrivals up to 40 minutes late: within the lookback, so none may be missed.
                for _ in range(rng.randint(0, 4)):
                    when = NOW + timedelta(minutes=restart * 60 + rng.randint(-20, 20))
                    expected.add(emu.add_activity(agent, created_at=when)["id"])
                async with asyncio.timeout(10):
                    while len(delivered) < len(expected):
                        delivered.append((await watcher.__anext__()).id)
            await watcher.aclose()
    assert len(delivered) == len(set(delivered))
    assert set(delivered) == expected


async def test_arguments_are_checked_before_any_request(
    emu: Emulator, client: zdactivity.Client
) -> None:
    with pytest.raises(ValueError, match="key"):
        client.activities.watch(checkpoint=MemoryCheckpointStore())
    with pytest.raises(ValueError):
        client.activities.watch(interval=0)
    with pytest.raises(ValueError):
        client.activities.watch(since=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        client.activities.watch(page_size=1000)
    assert emu.requests == []


async def test_jitter_spreads_the_polls(client: zdactivity.Client) -> None:
    watcher = client.activities.watch(interval=60, jitter=0.25)
    delays = [watcher.next_delay() for _ in range(200)]
    assert all(45 <= d <= 75 for d in delays)
    assert max(delays) - min(delays) > 20


async def test_cancelling_a_watcher_is_clean(emu: Emulator, client: zdactivity.Client) -> None:
    emu.latency = 0.2
    watcher = client.activities.watch()
    task = asyncio.create_task(watcher.__anext__())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.25)
    assert emu.in_flight == 0


def test_checkpoint_defaults() -> None:
    assert Checkpoint() == Checkpoint(None, frozenset())


# One step of a watcher's life: take some activities, add arrivals, crash, or stop cleanly.
_steps = st.one_of(
    st.tuples(st.just("take"), st.integers(1, 40)),
    st.tuples(
        st.just("add"),
        # Seconds from the wall clock: late arrivals inside the lookback, ties, the near future,
        # and now and then a day ahead.
        st.lists(st.sampled_from([-240, -60, -1, 0, 0, 5, 30, 86_400]), min_size=1, max_size=8),
    ),
    st.just(("crash", 0)),
    st.just(("stop", 0)),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    backlog=st.integers(0, 60),
    page_size=st.integers(1, 25),
    steps=st.lists(_steps, max_size=12),
    prefetch=st.integers(0, 3),
)
async def test_crashes_arrivals_and_page_sizes_never_lose_and_repeat_at_most_once_per_crash(
    backlog: int, page_size: int, steps: list[tuple[str, object]], prefetch: int
) -> None:
    wall = [NOW]
    async with Emulator(seed=9, agents=1, activities_per_agent=backlog, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        expected = {a["id"] for a in emu.activities_for(agent)}
        store = MemoryCheckpointStore()
        delivered: list[int] = []
        crashes = 0
        async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:

            def new_watcher() -> ActivityWatcher:
                return zd.activities.watch(
                    checkpoint=store,
                    key="k",
                    page_size=page_size,
                    max_pages_per_poll=3,
                    prefetch=prefetch,  # pages read ahead change nothing
                    sleep=FakeTime().sleep,
                    clock=lambda: wall[0],
                )

            watcher = new_watcher()
            async with asyncio.timeout(20):
                for kind, arg in [*steps, ("stop", 0)]:
                    wall[0] += timedelta(seconds=30)
                    if kind == "take":
                        pending = len(expected - set(delivered))
                        for _ in range(min(int(arg), pending)):  # type: ignore[call-overload]
                            delivered.append((await watcher.__anext__()).id)
                    elif kind == "add":
                        for offset in arg:  # type: ignore[attr-defined]
                            when = wall[0] + timedelta(seconds=offset)
                            expected.add(emu.add_activity(agent, created_at=when)["id"])
                    elif kind == "crash":
                        crashes += 1  # no commit of the activity in hand
                        watcher = new_watcher()
                    else:
                        await watcher.aclose()
                        watcher = new_watcher()
                while not expected <= set(delivered):
                    delivered.append((await watcher.__anext__()).id)
                await watcher.aclose()
    assert set(delivered) == expected
    assert len(delivered) - len(set(delivered)) <= crashes


# --------------------------------------------------------------------------- WatchOptions


def test_watch_options_are_checked_once_with_the_protocols_page_size_limit() -> None:
    options = zdactivity.WatchOptions()
    assert options.page_size == zdactivity.protocol.MAX_PAGE_SIZE
    assert options.max_pages_per_poll == 100 and options.interval == 60.0
    for bad in (
        {"interval": 0},
        {"interval": float("nan")},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"lookback": timedelta(seconds=-1)},
        {"page_size": 0},
        {"page_size": zdactivity.protocol.MAX_PAGE_SIZE + 1},
        {"max_pages_per_poll": 0},
        {"max_pages_per_poll": True},
        {"since": "yesterday"},
        {"since": datetime(2026, 11, 1)},  # naive
    ):
        with pytest.raises(ValueError):
            zdactivity.WatchOptions(**bad)
    with pytest.raises(TypeError):
        zdactivity.WatchOptions(page_size="10")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        options.replace(interval=-1)
    with pytest.raises(AttributeError):
        options.interval = 5  # type: ignore[misc]


async def test_watch_takes_options_and_keywords_on_top(client: zdactivity.Client) -> None:
    options = zdactivity.WatchOptions(interval=5, page_size=10, lookback=timedelta(0))
    watcher = client.activities.watch(options)
    assert watcher.options is options
    tuned = client.activities.watch(options=options, page_size=20, jitter=0)
    assert tuned.options == options.replace(page_size=20, jitter=0)
    assert (tuned.interval, tuned.jitter, tuned.lookback) == (5, 0, timedelta(0))
    assert client.activities.watch(interval=7).options == zdactivity.WatchOptions(interval=7)
    # Bad values are refused when the watcher is made, before any request.
    with pytest.raises(ValueError, match="page_size"):
        client.activities.watch(page_size=101)
    with pytest.raises(ValueError, match="max_pages_per_poll"):
        client.activities.watch(options, max_pages_per_poll=0)
    with pytest.raises(TypeError):
        client.activities.watch({"interval": 5})  # type: ignore[arg-type]


async def test_the_page_size_of_the_options_is_the_one_sent(
    emu: Emulator, client: zdactivity.Client
) -> None:
    watcher = client.activities.watch(zdactivity.WatchOptions(page_size=7))
    await watcher.__anext__()
    assert emu.requests[-1].query["page[size]"] == "7"


def test_a_watcher_needs_only_a_page_fetcher() -> None:
    """watch.py depends on a callable that fetches one page, not on the client."""

    async def fetch(request: zdactivity.protocol.Request) -> zdactivity.ActivityPage:
        raise AssertionError("not called")

    watcher = ActivityWatcher(fetch, zdactivity.WatchOptions(interval=1))
    assert watcher.interval == 1


# --------------------------------------------------------------------------- import graph


def _module_imports() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports (TYPE_CHECKING ones too)."""
    import ast
    from pathlib import Path

    root = Path(zdactivity.__file__).parent
    names: dict[Path, str] = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[path] = ".".join(parts)
    modules = set(names.values())
    graph: dict[str, set[str]] = {}
    for path, name in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level:
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # ``from pkg import mod`` imports the module; ``from mod import name``, mod.
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    found.add(submodule if submodule in modules else target)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_the_package_has_no_import_cycles() -> None:
    graph = _module_imports()
    assert "zdactivity.watch" in graph and "zdactivity.client" in graph["zdactivity.fleet"]
    assert "zdactivity.watch" in graph["zdactivity.client"]
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                cycle = [*path[path.index(imported) :], imported]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
