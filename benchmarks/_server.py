"""Run the emulator in a child process, so that it does not share the client's interpreter."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from zdactivity.testing import Agent, Emulator


@dataclass(frozen=True)
class Remote:
    url: str
    agents: list[Agent]


def _serve(conn: Connection, options: dict[str, Any], latency: float) -> None:
    async def main() -> None:
        async with Emulator(**options) as emu:
            emu.latency = latency
            conn.send(Remote(emu.url, emu.agents))
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, conn.recv)  # until the parent says stop

    asyncio.run(main())


@contextmanager
def emulator_process(latency: float = 0.0, **options: Any) -> Iterator[Remote]:
    """An emulator in a child process; yields its URL and agents."""
    options.setdefault("rate_limit", 10_000_000)
    parent, child = mp.Pipe()
    process = mp.get_context("spawn").Process(
        target=_serve, args=(child, options, latency), daemon=True
    )
    process.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("the emulator process did not start")
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.kill()
