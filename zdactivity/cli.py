"""The ``zdactivity`` command (also ``python -m zdactivity``).

Subcommands: ``demo``, ``list``, ``show``, ``count``, ``tail``, ``fan-out``, ``emulator``.
Data goes to stdout as JSON lines; summaries and errors to stderr, errors as one line
``zdactivity: ...``. Exit codes: 0 ok, 2 usage or bad input, 3 authentication, 4 other API
error, 5 network, 130 interrupted. Credentials are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import re
import signal
import sys
import time
import unicodedata
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import msgspec

from . import __version__
from ._cli_agents import AgentsFileError, read_agents
from .auth import APIToken, Auth, OAuthToken
from .checkpoint import (
    CheckpointError,
    CheckpointStore,
    MemoryCheckpointStore,
    SQLiteCheckpointStore,
)
from .client import Client
from .errors import (
    AuthenticationError,
    PermissionDeniedError,
    TransportError,
    ZendeskError,
)
from .fanout import AgentError, fan_out
from .models import Activity, Content
from .protocol import format_since
from .retry import RetryPolicy

__all__ = ["EXIT_API", "EXIT_AUTH", "EXIT_INTERRUPTED", "EXIT_NETWORK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_API = 4
EXIT_NETWORK = 5
EXIT_INTERRUPTED = 130

ENV_VARS = (
    "ZENDESK_SUBDOMAIN",
    "ZENDESK_URL",
    "ZENDESK_EMAIL",
    "ZENDESK_API_TOKEN",
    "ZENDESK_OAUTH_TOKEN",
)

_RELATIVE = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

# Line breaks become spaces; other control characters (terminal escapes, BEL, NUL...) and the
# bidirectional overrides that reorder what a terminal shows are printed as escapes.
_LINE_BREAKS = "\n\r\t\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


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


class _OneLineFormatter(logging.Formatter):
    """``-v`` log lines, made safe like every other line on stderr."""

    def format(self, record: logging.LogRecord) -> str:
        return one_line(super().format(record))


class UsageError(Exception):
    """Bad arguments, credentials or input files: exit 2 with the message."""


class _Stopped(Exception):
    """Raised out of ``tail``'s sleep when a signal asks it to stop."""


# --------------------------------------------------------------------------- arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # "unrecognized arguments: --api-tokn SECRET" would print the secret: keep the options.
        if message.startswith("unrecognized arguments: "):
            words = message.removeprefix("unrecognized arguments: ").split()
            shown = [w.split("=", 1)[0] for w in words if w.startswith("-")]
            message = "unrecognized arguments" + (f": {' '.join(shown)}" if shown else "")
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"zdactivity: {one_line(message)}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _page_size(text: str) -> int:
    value = _positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"{text!r}: Zendesk pages hold at most 100 activities")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0..65535)")
    return value


def parse_since(text: str, *, now: datetime | None = None) -> datetime | str:
    """``--since``: an ISO 8601 time with ``Z`` or an offset, or ``30m``/``12h``/``7d`` ago."""
    relative = _RELATIVE.fullmatch(text.strip())
    if relative:
        try:
            delta = timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
            return (now or datetime.now(UTC)) - delta
        except OverflowError:
            raise UsageError(
                f"bad --since {text!r}: too far back (Zendesk keeps 30 days; use e.g. 12h or 7d)"
            ) from None
    try:
        format_since(text)
    except (ValueError, TypeError, OverflowError) as exc:
        raise UsageError(
            f"bad --since {text!r}: {exc} (use e.g. 2026-11-01T00:00:00Z, 12h or 7d)"
        ) from None
    return text


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="zdactivity",
        description="Zendesk Support Ticket Activities from the command line.",
        epilog=(
            "Credentials: --subdomain or --url (or ZENDESK_SUBDOMAIN / ZENDESK_URL), then "
            "--email with --api-token (ZENDESK_EMAIL, ZENDESK_API_TOKEN) or --oauth-token "
            "(ZENDESK_OAUTH_TOKEN). Exit codes: 0 ok, 2 usage, 3 authentication, 4 API "
            "error, 5 network, 130 interrupted."
        ),
    )
    parser.add_argument("--version", action="version", version=f"zdactivity {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every request to stderr (no secrets)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    account = _Parser(add_help=False)
    where = account.add_argument_group("account (default: $ZENDESK_SUBDOMAIN or $ZENDESK_URL)")
    where.add_argument("--subdomain", help="acme for https://acme.zendesk.com")
    where.add_argument("--url", help="base URL, e.g. the emulator's http://127.0.0.1:8765")
    where.add_argument(
        "--max-tries", type=_positive_int, default=5, help="attempts per request (default 5)"
    )
    creds = _Parser(add_help=False)
    who = creds.add_argument_group(
        "credentials (default: $ZENDESK_EMAIL + $ZENDESK_API_TOKEN, or $ZENDESK_OAUTH_TOKEN; "
        "prefer the environment: flags show up in ps)"
    )
    who.add_argument("--email", help="the agent's email, with --api-token")
    who.add_argument("--api-token", help="an API token (Zendesk ends them on 2027-04-30)")
    who.add_argument("--oauth-token", help="an OAuth access token")

    demo = sub.add_parser(
        "demo",
        help="fan out over a built-in emulated account and print a summary",
        description="Start the built-in emulator with a realistic account (rate limit and "
        "faults included), fan out over every agent and print a summary.",
    )
    demo.add_argument("--agents", type=_positive_int, default=200, help="default 200")
    demo.add_argument(
        "--activities", type=int, default=50, help="activities per agent (default 50)"
    )
    demo.add_argument("--page-size", type=_page_size, default=100, help="1..100 (default 100)")
    demo.set_defaults(run=_run_demo)

    listing = sub.add_parser(
        "list", parents=[account, creds], help="the agent's activities as JSON lines"
    )
    listing.add_argument("--since", help="ISO 8601 time (2026-11-01T00:00:00Z) or 12h, 7d...")
    listing.add_argument("--limit", type=_positive_int, help="stop after N activities")
    listing.add_argument("--page-size", type=_page_size, default=100, help="1..100")
    listing.set_defaults(run=_command(_list))

    show = sub.add_parser("show", parents=[account, creds], help="one activity as JSON")
    show.add_argument("id", type=_positive_int, help="the activity id")
    show.set_defaults(run=_command(_show))

    count = sub.add_parser(
        "count", parents=[account, creds], help="the approximate count of the last 30 days"
    )
    count.set_defaults(run=_command(_count))

    tail = sub.add_parser(
        "tail",
        parents=[account, creds],
        help="follow the agent's stream, printing each new activity once",
        description="Poll the agent's stream and print each new activity as a JSON line. "
        "With --state, progress is saved after each printed activity, so a restart "
        "continues where the last run stopped. Ctrl-C stops it (exit 130).",
    )
    tail.add_argument("--interval", type=_seconds, default=60.0, help="seconds between polls")
    tail.add_argument("--state", metavar="FILE", help="SQLite checkpoint file to resume from")
    tail.add_argument("--since", help="where to start when FILE has no checkpoint yet")
    tail.add_argument("--key", help="the checkpoint's key in FILE (default: the agent)")
    tail.set_defaults(run=_command(_tail))

    fan = sub.add_parser(
        "fan-out",
        parents=[account],
        help="stream many agents' activities (credentials from a file) as JSON lines",
        description="FILE is CSV (header key,email,api_token or key,oauth_token) or TOML "
        "([[agent]] tables with the same keys). Each line of output carries the agent's "
        "key; failed agents are reported on stderr (exit 4).",
    )
    fan.add_argument("--agents", required=True, metavar="FILE", help="CSV or .toml file")
    fan.add_argument("--since", help="ISO 8601 time or 12h, 7d...")
    fan.add_argument(
        "--concurrency", type=_positive_int, default=20, help="requests in flight (default 20)"
    )
    fan.add_argument("--page-size", type=_page_size, default=100, help="1..100")
    fan.set_defaults(run=_command(_fan_out, needs_auth=False))

    emulator = sub.add_parser(
        "emulator",
        help="run the built-in Zendesk emulator until Ctrl-C",
        description="Serve an emulated Zendesk account over HTTP and print its URL and some "
        "agents' credentials (fake ones, made for this run).",
    )
    emulator.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    emulator.add_argument("--port", type=_port, default=8765, help="default 8765; 0: any free")
    emulator.add_argument("--agents", type=int, default=5, help="default 5")
    emulator.add_argument("--activities", type=int, default=200, help="per agent (default 200)")
    emulator.add_argument("--rate-limit", type=int, default=700, help="requests per minute")
    emulator.add_argument("--seed", type=int, default=0)
    emulator.set_defaults(run=_run_emulator)
    return parser


# --------------------------------------------------------------------------- credentials


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _pick(
    args: argparse.Namespace, env: Mapping[str, str], options: Sequence[tuple[str, str]]
) -> tuple[str, str, str] | None:
    """The one of ``options`` (flag dest, env var) that is set, a flag else the environment:
    ``(dest, value, where it came from)``."""
    flags = [(dest, getattr(args, dest)) for dest, _ in options if getattr(args, dest, None)]
    if len(flags) > 1:
        shown = " and ".join(_flag(dest) for dest, _ in flags)
        raise UsageError(f"{shown} are both given: give one")
    if flags:
        dest, value = flags[0]
        return dest, value, _flag(dest)
    found = [(dest, var) for dest, var in options if env.get(var, "").strip()]
    if len(found) > 1:
        raise UsageError(f"{' and '.join(var for _, var in found)} are both set: unset one")
    if found:
        dest, var = found[0]
        return dest, env[var], var
    return None


def _credential(value: str, source: str) -> str:
    """A credential without its surrounding blanks; one with a control character inside (a
    line break pasted along, a NUL) is refused, naming where it came from, never its value."""
    value = value.strip()
    if not value.isprintable():
        raise UsageError(f"{source} contains a control or invisible character (a line break?)")
    return value


def _account(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, str]:
    picked = _pick(args, env, [("subdomain", "ZENDESK_SUBDOMAIN"), ("url", "ZENDESK_URL")])
    if picked is None:
        raise UsageError(
            "no Zendesk account: pass --subdomain or --url, or set ZENDESK_SUBDOMAIN or "
            "ZENDESK_URL (try `zdactivity emulator` for a local one)"
        )
    dest, value, _ = picked
    return {"subdomain": value.strip()} if dest == "subdomain" else {"base_url": value.strip()}


def _auth(args: argparse.Namespace, env: Mapping[str, str]) -> Auth:
    picked = _pick(
        args, env, [("api_token", "ZENDESK_API_TOKEN"), ("oauth_token", "ZENDESK_OAUTH_TOKEN")]
    )
    if picked is None:
        raise UsageError(
            "no credentials: set ZENDESK_EMAIL and ZENDESK_API_TOKEN, or ZENDESK_OAUTH_TOKEN "
            "(or pass --email with --api-token, or --oauth-token)"
        )
    dest, secret, source = picked
    secret = _credential(secret, source)
    email = ""
    if dest == "api_token":
        given: str = args.email or env.get("ZENDESK_EMAIL") or ""
        if not given.strip():
            raise UsageError("an API token needs the agent's email: --email or ZENDESK_EMAIL")
        email_source = "--email" if args.email else "ZENDESK_EMAIL"
        email = _credential(given, email_source)
        source = f"{email_source} with {source}"
    try:
        return OAuthToken(secret) if dest == "oauth_token" else APIToken(email, secret)
    except (ValueError, TypeError) as exc:
        # The credential classes check their values too; their message may quote the value.
        raise UsageError(f"{source}: not a usable credential ({type(exc).__name__})") from None


def _client(args: argparse.Namespace, env: Mapping[str, str], auth: Auth | None = None) -> Client:
    where = _account(args, env)
    auth = auth if auth is not None else _auth(args, env)
    try:
        return Client(
            **where,  # type: ignore[arg-type]
            auth=auth,
            retry=RetryPolicy(max_tries=args.max_tries),
        )
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def _identity(client: Client) -> str:
    """The checkpoint key of ``tail``: the account and the agent, never the secret itself."""
    auth = client.auth
    if isinstance(auth, APIToken):
        return f"{client.base_url} {auth.email}"
    digest = hashlib.sha256(auth.authorization().encode()).hexdigest()[:16]
    return f"{client.base_url} oauth:{digest}"


# --------------------------------------------------------------------------- output


def _content(content: Content) -> dict[str, Any]:
    return {"kind": content.kind, "data": content.data}


def activity_record(activity: Activity, *, agent: str | None = None) -> dict[str, Any]:
    """What ``list``, ``show``, ``tail`` and ``fan-out`` print for an activity."""
    actor, user = activity.actor, activity.user
    record: dict[str, Any] = {} if agent is None else {"agent": agent}
    record.update(
        id=activity.id,
        verb=activity.verb,
        title=activity.title,
        created_at=activity.created_at.astimezone(UTC),
        actor_id=activity.actor_id,
        actor_name=actor.name if actor is not None else None,
        user_id=activity.user_id,
        user_name=user.name if user is not None else None,
        object=_content(activity.object),
        target=_content(activity.target),
    )
    return record


class _Out:
    """JSON lines on stdout (binary, one write per record)."""

    def __init__(self, *, flush_each: bool = False) -> None:
        self._stream = sys.stdout.buffer
        self._flush_each = flush_each
        self._encoder = msgspec.json.Encoder()

    def write(self, record: Mapping[str, Any]) -> None:
        self._stream.write(self._encoder.encode(record) + b"\n")
        if self._flush_each:
            self._stream.flush()

    def flush(self) -> None:
        self._stream.flush()


def _say(message: str) -> None:
    print(f"zdactivity: {one_line(message)}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- commands


def _command(
    body: Callable[[argparse.Namespace, Client], Coroutine[Any, Any, int]],
    *,
    needs_auth: bool = True,
) -> Callable[[argparse.Namespace, Mapping[str, str]], int]:
    """Wrap an account command: resolve the client (usage errors first), run it, close it."""

    def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
        if not needs_auth:
            return asyncio.run(body(args, _fan_out_root(args, env)))
        client = _client(args, env)

        async def go() -> int:
            async with client:
                return await body(args, client)

        return asyncio.run(go())

    return run


def _fan_out_root(args: argparse.Namespace, env: Mapping[str, str]) -> Client:
    # fan-out: the account comes from the flags/env, the credentials from the agents file.
    try:
        specs = read_agents(args.agents)
    except AgentsFileError as exc:
        raise UsageError(str(exc)) from None
    client = _client(args, env, specs[0].auth)
    args.agent_specs = specs
    return client


async def _list(args: argparse.Namespace, client: Client) -> int:
    since = parse_since(args.since) if args.since else None
    out = _Out()
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


async def _show(args: argparse.Namespace, client: Client) -> int:
    activity = await client.activities.get(args.id)
    out = _Out()
    out.write(activity_record(activity))
    out.flush()
    return EXIT_OK


async def _count(args: argparse.Namespace, client: Client) -> int:
    count = await client.activities.count()
    out = _Out()
    refreshed = count.refreshed_at.astimezone(UTC) if count.refreshed_at is not None else None
    out.write({"value": count.value, "refreshed_at": refreshed})
    out.flush()
    return EXIT_OK


async def _tail(args: argparse.Namespace, client: Client) -> int:
    since = parse_since(args.since) if args.since else None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signalled: list[int] = []
    main_task = asyncio.current_task()
    backstop: list[asyncio.TimerHandle] = []

    def on_signal(signum: int) -> None:
        if signalled and main_task is not None:
            main_task.cancel()  # a second signal: stop now
        signalled.append(signum)
        stop.set()
        if main_task is not None:
            # A poll in flight (a slow server, retries) is cancelled after a moment: the
            # checkpoint was committed before the poll began, so nothing is lost.
            backstop.append(loop.call_later(2.0, main_task.cancel))

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, int(sig))
            installed.append(sig)

    async def sleep(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        if stop.is_set():
            raise _Stopped

    store: CheckpointStore
    store = SQLiteCheckpointStore(args.state) if args.state else MemoryCheckpointStore()
    out = _Out(flush_each=True)
    try:
        try:
            watcher = client.activities.watch(
                since=since,
                interval=args.interval,
                checkpoint=store,
                key=args.key or _identity(client),
                sleep=sleep,
            )
            try:
                # A clean exit commits the activity printed last; one that failed to print
                # (a closed pipe) is not committed, so it comes again next time.
                async with watcher:
                    async for activity in watcher:
                        out.write(activity_record(activity))
                        if stop.is_set():
                            break
            except (_Stopped, asyncio.CancelledError):
                pass
            finally:
                if backstop:
                    backstop[0].cancel()
        finally:
            await store.close()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    if signalled and signalled[0] == signal.SIGTERM:
        return EXIT_OK
    return EXIT_INTERRUPTED if signalled else EXIT_OK


async def _fan_out(args: argparse.Namespace, root: Client) -> int:
    since = parse_since(args.since) if args.since else None
    specs = args.agent_specs
    out = _Out()
    started = time.perf_counter()
    delivered = 0
    failures: list[AgentError[str]] = []
    async with root:
        clients = {spec.key: root.with_auth(spec.auth) for spec in specs}
        try:
            async for key, activity in fan_out(
                clients, since=since, page_size=args.page_size, concurrency=args.concurrency
            ):
                out.write(activity_record(activity, agent=key))
                delivered += 1
        except* AgentError as group:
            failures.extend(e for e in group.exceptions if isinstance(e, AgentError))
        finally:
            out.flush()
    for failure in failures:
        _say(f"agent {failure.key} failed: {failure.error}")
    elapsed = time.perf_counter() - started
    _say(
        f"{delivered} activities from {len(specs) - len(failures)} of {len(specs)} agents "
        f"in {elapsed:.2f} s ({root.stats.requests} requests, {root.stats.retries} retries)"
    )
    return EXIT_API if failures else EXIT_OK


def _run_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ._cli_demo import run_demo

    if args.activities < 0:
        raise UsageError("--activities must not be negative")
    return asyncio.run(run_demo(args.agents, args.activities, args.page_size))


def _run_emulator(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if args.agents < 1 or args.activities < 0 or args.rate_limit < 1:
        raise UsageError("--agents and --rate-limit must be at least 1, --activities at least 0")
    return asyncio.run(_emulator(args))


async def _emulator(args: argparse.Namespace) -> int:
    from .testing import Emulator

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
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
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
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await emu.stop()
    return EXIT_OK


# --------------------------------------------------------------------------- entry point


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zdactivity`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_OneLineFormatter("%(asctime)s %(name)s %(message)s"))
        log = logging.getLogger("zdactivity")
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
    try:
        code: int = args.run(args, os.environ)
        return code
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining
        # about the unflushable stdout at exit.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (UsageError, ZendeskError, CheckpointError) as exc:
        code, message = _error_line(exc)
        _say(message)
        return code


if __name__ == "__main__":
    sys.exit(main())
