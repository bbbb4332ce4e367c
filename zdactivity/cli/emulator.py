"""``zdactivity emulator``: serve the built-in Zendesk emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping

from .._signals import signal_handlers
from .._version import __version__
from .arguments import Parsers, port, whole_number
from .common import EXIT_OK, UsageError

__all__ = ["register"]


def register(sub: Parsers) -> None:
    emulator = sub.add_parser(
        "emulator",
        help="run the built-in Zendesk emulator until Ctrl-C",
        description="Serve an emulated Zendesk account over HTTP and print its URL and some "
        "agents' credentials (fake ones, made for this run).",
    )
    emulator.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    emulator.add_argument("--port", type=port, default=8765, help="default 8765; 0: any free")
    emulator.add_argument(
        "--agents", type=whole_number(1, 10_000), default=5, help="1..10,000 (default 5)"
    )
    emulator.add_argument(
        "--activities",
        type=whole_number(0, 100_000),
        default=200,
        help="per agent, 0..100,000 (default 200)",
    )
    emulator.add_argument(
        "--rate-limit",
        type=whole_number(1, 1_000_000),
        default=700,
        help="requests per minute (default 700)",
    )
    emulator.add_argument("--seed", type=int, default=0)
    emulator.set_defaults(run=run)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if args.agents < 1 or args.activities < 0 or args.rate_limit < 1:
        raise UsageError("--agents and --rate-limit must be at least 1, --activities at least 0")
    return asyncio.run(serve(args))


async def serve(args: argparse.Namespace) -> int:
    from ..testing import Emulator  # only this command needs the emulator (and aiohttp.web)

    emu = Emulator(
        seed=args.seed,
        agents=args.agents,
        activities_per_agent=args.activities,
        host=args.host,
        port=args.port,
        rate_limit=args.rate_limit,
    )
    try:
        await emu.start()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None
    stop = asyncio.Event()
    try:
        with signal_handlers(asyncio.get_running_loop(), lambda _signum: stop.set()):
            agents = emu.agents
            print(f"zdactivity emulator {__version__} serving {emu.url}")
            print(
                f"{len(agents)} agents, {args.activities} activities each, "
                f"rate limit {args.rate_limit} requests / 60 s. Fake credentials of this run:"
            )
            for agent in agents[:3]:
                print(
                    f"  {agent.name}: email={agent.email} api_token={agent.api_token} "
                    f"oauth_token={agent.oauth_token}"
                )
            first = agents[0]
            print(
                f"export ZENDESK_URL={emu.url} ZENDESK_EMAIL={first.email} "
                f"ZENDESK_API_TOKEN={first.api_token}"
            )
            print("Ctrl-C to stop.", flush=True)
            await stop.wait()
    finally:
        await emu.stop()
    return EXIT_OK
