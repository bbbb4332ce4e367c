"""The ``zdactivity`` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Sequence

from . import __version__
from .auth import APIToken
from .client import Client
from .errors import ZendeskError

__all__ = ["main"]


async def _demo(agents: int, activities: int, page_size: int) -> int:
    from .testing import Emulator

    async with Emulator(seed=7, agents=agents, activities_per_agent=activities) as emu:
        agent = emu.agents[0]
        auth = APIToken(agent.email, agent.api_token)
        started = time.perf_counter()
        async with Client(base_url=emu.url, auth=auth) as client:
            pages = 0
            listed = []
            async for page in client.activities.list(page_size=page_size).pages():
                pages += 1
                listed.extend(page.activities)
            count = await client.activities.count()
        elapsed = time.perf_counter() - started
        verbs = Counter(a.verb for a in listed)
        actors = {a.actor_id for a in listed}
        print(f"zdactivity {__version__} demo, against the built-in emulator at {emu.url}")
        print(f"agent:       {agent.name} (user {agent.user_id})")
        print(f"activities:  {len(listed)} in {pages} pages (count endpoint says {count.value})")
        print(f"actors:      {len(actors)} distinct")
        print("verbs:       " + ", ".join(f"{v} {n}" for v, n in verbs.most_common()))
        print(f"requests:    {len(emu.requests)} in {elapsed * 1000:.0f} ms")
        print("latest:")
        for activity in listed[:5]:
            actor = activity.actor
            who = actor.name if actor is not None else "?"
            print(f"  {activity.created_at:%Y-%m-%d %H:%M}  {who:<22} {activity.title}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zdactivity", description="Zendesk Ticket Activities API client."
    )
    parser.add_argument("--version", action="version", version=f"zdactivity {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run against the built-in emulator and print a summary")
    demo.add_argument("--agents", type=int, default=3)
    demo.add_argument("--activities", type=int, default=250, help="activities per agent")
    demo.add_argument("--page-size", type=int, default=100)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zdactivity`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return asyncio.run(_demo(args.agents, args.activities, args.page_size))
    except ZendeskError as exc:
        print(f"zdactivity: {exc}", file=sys.stderr)
        return 4
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
