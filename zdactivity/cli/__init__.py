"""The ``zdactivity`` command (also ``python -m zdactivity``).

Subcommands: ``demo``, ``list``, ``show``, ``count``, ``tail``, ``fan-out``, ``worker``,
``emulator``. ``--redis URL`` (:mod:`.redis_options`) shares the account's budget, ``tail``'s
checkpoint and ``worker``'s fleet through Redis.
Data goes to stdout as JSON lines; summaries and errors to stderr, errors as one line
``zdactivity: ...``; network errors in words, and each retry as one line when it happens.
``-v`` (before or after the subcommand) logs every attempt. Exit codes: 0 ok, 2 usage or bad
input, 3 authentication, 4 other API error, 5 network, 130 interrupted. Credentials are never
printed.

One module per job: :mod:`.arguments` (the parser and its value types), :mod:`.credentials`
(account and credentials from flags or the environment), :mod:`.output` (JSON lines),
:mod:`.common` (exit codes, one-line messages); one per command or command group:
:mod:`.query` (list, show, count), :mod:`.tail`, :mod:`.fan_out` (with :mod:`.agents_file`),
:mod:`.demo`, :mod:`.emulator`. Signal handling is :mod:`zdactivity._signals`, shared with
:class:`~zdactivity.fleet.Fleet`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from .._signals import interruptible
from .._version import __version__
from ..checkpoint import CheckpointError
from ..errors import AuthenticationError, PermissionDeniedError, TransportError, ZendeskError
from . import demo, emulator, fan_out, query, tail, worker
from .arguments import Parser, parse_since
from .common import (
    EXIT_API,
    EXIT_AUTH,
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_USAGE,
    OneLineFormatter,
    UsageError,
    one_line,
    say,
)
from .credentials import ENV_VARS, account_options, credential_options
from .output import activity_record
from .redis_options import RedisFailure

__all__ = [
    "ENV_VARS",
    "EXIT_API",
    "EXIT_AUTH",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "activity_record",
    "build_parser",
    "main",
    "one_line",
    "parse_since",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``zdactivity`` parser: each command's module adds its subcommand."""
    parser = Parser(
        prog="zdactivity",
        description="Zendesk Support Ticket Activities from the command line.",
        epilog=(
            "Credentials: --subdomain or --url (or ZENDESK_SUBDOMAIN / ZENDESK_URL), then "
            "--email with --api-token (ZENDESK_EMAIL, ZENDESK_API_TOKEN) or --oauth-token "
            "(ZENDESK_OAUTH_TOKEN); plain http off loopback needs --allow-http "
            "(ZENDESK_ALLOW_HTTP=1). -v goes before or after the command. Exit codes: 0 ok, "
            "2 usage, 3 authentication, 4 API error, 5 network, 130 interrupted."
        ),
    )
    parser.add_argument("--version", action="version", version=f"zdactivity {__version__}")
    _add_global_options(parser, default=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    account = account_options()
    as_agent = [account, credential_options()]
    demo.register(sub)
    query.register(sub, as_agent)
    tail.register(sub, as_agent)
    fan_out.register(sub, [account])
    worker.register(sub, [account])
    emulator.register(sub)
    for command in sub.choices.values():
        # Also after the subcommand (`zdactivity list -v`). SUPPRESS: a subcommand that was
        # not given -v leaves the value set before it alone.
        _add_global_options(command, default=argparse.SUPPRESS)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, default: object) -> None:
    """The options every command takes, before or after the subcommand's name."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="log every request to stderr (no secrets)",
    )


#: Options whose value may start with "-" (``--since -5d``): argparse would take it for an
#: option and print its usage; glued to the option, the value reaches our own check.
_DASHED_VALUES = ("--since",)


def _dashed(value: str) -> bool:
    return value.startswith("-") and value[1:2].isdigit()


def _glue_dashed_values(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    words = list(argv)
    i = 0
    while i < len(words):
        word = words[i]
        following = words[i + 1] if i + 1 < len(words) else None
        if word in _DASHED_VALUES and following is not None and _dashed(following):
            out.append(f"{word}={following}")
            i += 2
            continue
        out.append(word)
        i += 1
    return out


def _error_line(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, UsageError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        what = "authentication failed" if isinstance(exc, AuthenticationError) else "forbidden"
        return EXIT_AUTH, f"{what}: {exc} (check the credentials and that the user is an agent)"
    if isinstance(exc, TransportError):
        return EXIT_NETWORK, f"network error: {exc}"
    if isinstance(exc, CheckpointError):  # before ZendeskError: it is one
        return EXIT_USAGE, f"state file: {exc}"
    if isinstance(exc, ZendeskError):
        return EXIT_API, str(exc)
    raise exc


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(name)s %(message)s"))
    log = logging.getLogger("zdactivity")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zdactivity`` console script; returns the exit code."""
    words = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(_glue_dashed_values(words))
    if args.verbose:
        _log_to_stderr()
    interruptible()  # Ctrl-C works even when started with SIGINT ignored (a background job)
    try:
        code: int = args.run(args, os.environ)
        return code
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining
        # about the unflushable stdout at exit.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except RedisFailure as exc:
        say(str(exc))
        return exc.code
    except (UsageError, ZendeskError, CheckpointError) as exc:
        code, message = _error_line(exc)
        say(message)
        return code
