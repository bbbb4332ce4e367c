"""Signal plumbing shared by :class:`~zdactivity.fleet.Fleet` and the command line."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable, Iterator

__all__ = ["STOP_SIGNALS", "interruptible", "on_signals", "signal_handlers"]

#: The signals that ask a worker or a command to stop.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


def on_signals(
    loop: asyncio.AbstractEventLoop,
    signals: Iterable[signal.Signals],
    callback: Callable[[int], None],
    *,
    strict: bool = True,
) -> list[signal.Signals]:
    """Make each of ``signals`` call ``callback(signum)`` on ``loop``, whatever the signal's
    inherited disposition (an ignored SIGINT included); return the signals installed.

    Event loops without signal support (Windows) raise NotImplementedError, unless ``strict``
    is false: then the signals they cannot take are skipped."""
    installed = []
    for sig in signals:
        try:
            loop.add_signal_handler(sig, callback, int(sig))
        except (NotImplementedError, RuntimeError):
            if strict:
                raise
            continue
        installed.append(sig)
    return installed


@contextlib.contextmanager
def signal_handlers(
    loop: asyncio.AbstractEventLoop,
    callback: Callable[[int], None],
    signals: Iterable[signal.Signals] = STOP_SIGNALS,
) -> Iterator[list[signal.Signals]]:
    """:func:`on_signals` (not strict) for the time of a ``with`` block."""
    installed = on_signals(loop, signals, callback, strict=False)
    try:
        yield installed
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def interruptible() -> None:
    """Let SIGINT raise KeyboardInterrupt even if this process inherited it as ignored (a
    command started in the background by a non-interactive shell does)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
