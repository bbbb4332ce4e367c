"""Shared fixtures and helpers of the test suite.

Fixtures (no import needed):

* ``emu``: a running ``Emulator`` with the wall clock frozen at ``NOW``. A module or test picks
  its account with ``@pytest.mark.emulator(seed=..., agents=..., ...)`` (any ``Emulator``
  keyword; without the mark: ``Emulator(seed=0, clock=lambda: NOW)``).
* ``client``: a ``zdactivity.Client`` on ``emu`` with the first agent's API token.
* ``redis_server``: a real ``redis-server`` on a free loopback port (``tests/redis_server.py``);
  skipped where none is installed, a failure under ``CI=true``.

Helpers (``from conftest import ...``): ``NOW``, ``token(agent)``, ``oauth_token(agent)``,
``wait_until(condition)``,
``start_script(path, *args)`` (a test script as a real process), and for the emulator's
wire-level tests ``EMULATOR_NOW``, ``Clock``, ``basic(agent)``, ``running_emulator(**kwargs)``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis_server import RedisServer

import zdactivity
from zdactivity.testing import Agent, Emulator

#: The frozen wall clock of client-level tests: every seeded activity is before it.
NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
#: The wall clock of the emulator's own wire-level tests (their expected dates use it).
EMULATOR_NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
#: The OAuth client the emulator accepts by default.
EMULATOR_CLIENT_ID = "zdactivity-emulator"
EMULATOR_CLIENT_SECRET = "emulator-secret"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator(**kwargs): Emulator keywords for the `emu` fixture"
    )


def token(agent: Agent) -> zdactivity.APIToken:
    """The agent's API-token credential."""
    return zdactivity.APIToken(agent.email, agent.api_token)


def oauth_token(
    agent: Agent,
    *,
    client_secret: str = EMULATOR_CLIENT_SECRET,
    on_refresh: Callable[[str, str], Awaitable[None]] | None = None,
) -> zdactivity.OAuthToken:
    """The agent's seeded OAuth pair, refreshable against the emulator's OAuth client."""
    return zdactivity.OAuthToken(
        agent.oauth_token,
        refresh_token=agent.refresh_token,
        client_id=EMULATOR_CLIENT_ID,
        client_secret=client_secret,
        on_refresh=on_refresh,
    )


async def wait_until(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    """Poll state that has no event to await (the emulator's log, a list a handler fills)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def client_tasks() -> list[asyncio.Task[object]]:
    """Tasks running client code (not the emulator's, not this test's)."""
    package = str(Path(zdactivity.__file__).parent)
    testing = str(Path(zdactivity.testing.__file__).parent)
    current = asyncio.current_task()
    return [
        task
        for task in asyncio.all_tasks()
        if task is not current
        and any(
            f.f_code.co_filename.startswith(package)
            and not f.f_code.co_filename.startswith(testing)
            for f in task.get_stack()
        )
    ]


@pytest.fixture
async def emu(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    kwargs: dict[str, Any] = {"clock": lambda: NOW}
    for mark in reversed(list(request.node.iter_markers("emulator"))):  # closest wins
        kwargs.update(mark.kwargs)
    async with Emulator(**kwargs) as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[zdactivity.Client]:
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as zd:
        yield zd


# -- the emulator's wire-level tests ------------------------------------------------------------


class Clock:
    """Settable wall clock and monotonic clock."""

    def __init__(self, now: datetime = EMULATOR_NOW) -> None:
        self.now = now
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono


def basic(agent: Agent) -> dict[str, str]:
    """Headers with the agent's Basic ``{email}/token:{api_token}`` credential."""
    credential = base64.b64encode(f"{agent.email}/token:{agent.api_token}".encode()).decode()
    return {"Authorization": f"Basic {credential}"}


@asynccontextmanager
async def running_emulator(**kwargs: Any) -> AsyncIterator[tuple[Emulator, aiohttp.ClientSession]]:
    """An emulator (on a settable ``Clock``) and a plain aiohttp session on its URL."""
    kwargs.setdefault("clock", Clock())
    async with Emulator(**kwargs) as emu, aiohttp.ClientSession(base_url=emu.url) as session:
        yield emu, session


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh ``redis-server`` on a free loopback port (skipped without one, except in CI)."""
    with RedisServer() as server:
        yield server


_ROOT = Path(__file__).resolve().parents[1]


async def start_script(script: Path, *args: str, **options: Any) -> asyncio.subprocess.Process:
    """Run a Python ``script`` of the tests as a real process on this checkout's zdactivity
    (``stdin`` closed; ``options`` go to ``asyncio.create_subprocess_exec``)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *args,
        cwd=_ROOT,
        env={**os.environ, "PYTHONPATH": str(_ROOT)},
        stdin=asyncio.subprocess.DEVNULL,
        **options,
    )
