"""Parsing the command line: the parser, its value types, and the options commands share."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import NoReturn, TypeAlias

from ..protocol import MAX_PAGE_SIZE, format_since
from ..watch import MAX_INTERVAL
from .common import EXIT_USAGE, UsageError, one_line, say

__all__ = [
    "LOOKBACK",
    "SINCE_HELP",
    "Parser",
    "Parsers",
    "add_page_size",
    "interval",
    "optional_since",
    "page_size",
    "parse_since",
    "port",
    "positive_int",
    "seconds",
    "whole_number",
]

_RELATIVE = re.compile(r"(\d+)\s*([smhd])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SINCE_FORMS = "use e.g. 2026-11-01T00:00:00Z, 2026-11-01 (UTC midnight), 12h or 7d"
#: How far back Zendesk lists activities.
LOOKBACK = timedelta(days=30)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one ``zdactivity: ...`` line (exit 2) that never
    echoes an option's value (it may be a secret)."""

    def error(self, message: str) -> NoReturn:
        # "unrecognized arguments: --api-tokn SECRET" would print the secret: keep the options.
        if message.startswith("unrecognized arguments: "):
            words = message.removeprefix("unrecognized arguments: ").split()
            shown = [w.split("=", 1)[0] for w in words if w.startswith("-")]
            message = "unrecognized arguments" + (f": {' '.join(shown)}" if shown else "")
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"zdactivity: {one_line(message)}\n")


#: ``--since``'s help, the same on every command.
SINCE_HELP = (
    "ISO 8601 time with Z or an offset (2026-11-01T00:00:00Z), a date (2026-11-01: UTC "
    "midnight), or 30m, 12h, 7d ago; Zendesk lists the last 30 days"
)


#: What ``add_subparsers()`` returns: each command module adds its parser to it.
Parsers: TypeAlias = "argparse._SubParsersAction[Parser]"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high`` (sizes a machine can hold)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} must be between {low:,} and {high:,}")
        return value

    return parse


def page_size(text: str) -> int:
    value = positive_int(text)
    if value > MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(
            f"{text!r}: Zendesk pages hold at most {MAX_PAGE_SIZE} activities"
        )
    return value


def add_page_size(parser: argparse.ArgumentParser, help: str = f"1..{MAX_PAGE_SIZE}") -> None:
    """``--page-size``, 1..MAX_PAGE_SIZE, MAX_PAGE_SIZE by default."""
    parser.add_argument("--page-size", type=page_size, default=MAX_PAGE_SIZE, help=help)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def interval(text: str) -> float:
    """``--interval``: positive seconds, at most a day (:data:`zdactivity.watch.MAX_INTERVAL`)."""
    value = seconds(text)
    if value > MAX_INTERVAL:
        raise argparse.ArgumentTypeError(
            f"{text!r} is longer than a day ({MAX_INTERVAL:g} seconds), the longest interval"
        )
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0..65535)")
    return value


def parse_since(text: str, *, now: datetime | None = None) -> datetime | str:
    """``--since``: an ISO 8601 time with ``Z`` or an offset, a plain date (``2026-11-29``: UTC
    midnight), or ``30m``/``12h``/``7d`` ago. Anything else, the empty string and negative
    durations included, is a :class:`UsageError`."""
    stripped = text.strip()
    if not stripped:
        raise UsageError(f"--since is empty: {_SINCE_FORMS}")
    if stripped.startswith("-") and _RELATIVE.fullmatch(stripped[1:].strip()):
        raise UsageError(
            f"bad --since {text!r}: a duration counts back from now, so it is never negative "
            f"({stripped[1:].strip()} means that long ago)"
        )
    relative = _RELATIVE.fullmatch(stripped)
    if relative:
        try:
            delta = timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
            return (now or datetime.now(UTC)) - delta
        except OverflowError:
            raise UsageError(
                f"bad --since {text!r}: too far back (Zendesk keeps 30 days; use e.g. 12h or 7d)"
            ) from None
    if _DATE.fullmatch(stripped):
        try:
            return datetime.combine(date.fromisoformat(stripped), time(), UTC)
        except ValueError as exc:
            raise UsageError(f"bad --since {text!r}: {exc} ({_SINCE_FORMS})") from None
    try:
        format_since(text)
    except (ValueError, TypeError, OverflowError) as exc:
        raise UsageError(f"bad --since {text!r}: {exc} ({_SINCE_FORMS})") from None
    return text


def optional_since(text: str | None, *, now: datetime | None = None) -> datetime | str | None:
    """``--since`` if given (see :func:`parse_since`). A time before the 30 days Zendesk lists
    gets one warning on stderr: the listing starts 30 days back all the same."""
    if text is None:
        return None
    since = parse_since(text, now=now)
    moment = since if isinstance(since, datetime) else datetime.fromisoformat(since.strip())
    current = now or datetime.now(UTC)
    try:
        too_old = moment < current - LOOKBACK
    except OverflowError:
        too_old = True
    if too_old and text not in _warned:
        _warned.add(text)
        say(
            f"warning: --since {text} is more than 30 days ago; Zendesk lists the last 30 "
            "days only, so that is where the listing starts"
        )
    return since


_warned: set[str] = set()
