"""What every command shares: exit codes, the usage error, and one-line messages on stderr."""

from __future__ import annotations

import logging
import sys
import unicodedata

__all__ = [
    "EXIT_API",
    "EXIT_AUTH",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_USAGE",
    "OneLineFormatter",
    "UsageError",
    "one_line",
    "say",
]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_API = 4
EXIT_NETWORK = 5
EXIT_INTERRUPTED = 130

# Line breaks become spaces; other control characters (terminal escapes, BEL, NUL...) and the
# bidirectional overrides that reorder what a terminal shows are printed as escapes.
_LINE_BREAKS = "\n\r\t\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class UsageError(Exception):
    """Bad arguments, credentials or input files: exit 2 with the message."""


def one_line(text: str) -> str:
    """``text`` made safe to print as one line on a terminal: no control characters.

    Error messages carry text the server chose (descriptions, bodies): a hostile one must not
    move the cursor, clear the screen, ring the bell or start a new line that looks like ours.
    """
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char in _LINE_BREAKS:
            out.append(" ")
        elif char in _BIDI or unicodedata.category(char) in ("Cc", "Cs"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


class OneLineFormatter(logging.Formatter):
    """``-v`` log lines, made safe like every other line on stderr."""

    def format(self, record: logging.LogRecord) -> str:
        return one_line(super().format(record))


def say(message: str) -> None:
    """One ``zdactivity: ...`` line on stderr."""
    print(f"zdactivity: {one_line(message)}", file=sys.stderr, flush=True)
