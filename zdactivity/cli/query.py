"""``zdactivity list``, ``show`` and ``count``: one agent's activities as JSON lines."""

from __future__ import annotations

import argparse
from datetime import UTC

from ..client import Client
from .arguments import SINCE_HELP, Parser, Parsers, add_page_size, optional_since, positive_int
from .common import EXIT_OK
from .credentials import run_with_client
from .output import JSONLines, activity_record

__all__ = ["register"]


def register(sub: Parsers, parents: list[Parser]) -> None:
    listing = sub.add_parser("list", parents=parents, help="the agent's activities as JSON lines")
    listing.add_argument("--since", help=SINCE_HELP + " (default: all of them)")
    listing.add_argument("--limit", type=positive_int, help="stop after N activities")
    add_page_size(listing)
    listing.set_defaults(run=run_with_client(list_activities))

    show = sub.add_parser("show", parents=parents, help="one activity as JSON")
    show.add_argument("id", type=positive_int, help="the activity id")
    show.set_defaults(run=run_with_client(show_activity))

    count = sub.add_parser(
        "count", parents=parents, help="the approximate count of the last 30 days"
    )
    count.set_defaults(run=run_with_client(count_activities))


async def list_activities(args: argparse.Namespace, client: Client) -> int:
    since = optional_since(args.since)
    out = JSONLines()
    written = 0
    try:
        if args.limit is None or args.limit > 0:
            async for activity in client.activities.list(since=since, page_size=args.page_size):
                out.write(activity_record(activity))
                written += 1
                if args.limit is not None and written >= args.limit:
                    break
    finally:
        out.flush()
    return EXIT_OK


async def show_activity(args: argparse.Namespace, client: Client) -> int:
    activity = await client.activities.get(args.id)
    out = JSONLines()
    out.write(activity_record(activity))
    out.flush()
    return EXIT_OK


async def count_activities(args: argparse.Namespace, client: Client) -> int:
    count = await client.activities.count()
    out = JSONLines()
    refreshed = count.refreshed_at.astimezone(UTC) if count.refreshed_at is not None else None
    out.write({"value": count.value, "refreshed_at": refreshed})
    out.flush()
    return EXIT_OK
