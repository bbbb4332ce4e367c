"""``zdactivity emulator``: serve the built-in Zendesk emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import socket
import urllib.parse
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
    emulator.add_argument(
        "--host",
        default="127.0.0.1",
        help="default 127.0.0.1; 0.0.0.0: every interface (clients elsewhere need --allow-http)",
    )
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


_WILDCARDS = ("0.0.0.0", "::", "")


def urls_of(host: str, port: int) -> tuple[str, str | None]:
    """The URL to use on this machine, and for a wildcard host (every interface) the one other
    machines may reach it at (None otherwise): a client cannot connect to ``0.0.0.0``."""
    if host not in _WILDCARDS:
        return _url(host, port), None
    loopback = "::1" if host == "::" else "127.0.0.1"
    address = _this_machines_address(ipv6=host == "::")
    remote = _url(address, port) if address is not None else None
    return _url(loopback, port), remote


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _this_machines_address(*, ipv6: bool) -> str | None:
    """The address this machine's outgoing traffic leaves from (a UDP "connect" sends nothing),
    or None when it has only loopback."""
    family, probe = (
        (socket.AF_INET6, ("2001:db8::1", 9)) if ipv6 else (socket.AF_INET, ("192.0.2.1", 9))
    )
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(probe)
            address = str(sock.getsockname()[0])
    except OSError:
        return None
    return None if _is_loopback(address) else address


def _is_loopback(url_or_host: str) -> bool:
    host = urllib.parse.urlsplit(url_or_host).hostname if "//" in url_or_host else url_or_host
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return host == "localhost"


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
            local, remote = urls_of(args.host, urllib.parse.urlsplit(emu.url).port or args.port)
            where = emu.url if remote is None and local == emu.url else f"{emu.url} ({local})"
            print(f"zdactivity emulator {__version__} serving {where}")
            print(
                f"{len(agents)} agents, {args.activities} activities each over the last 31 days "
                "(Zendesk lists 30), "
                f"rate limit {args.rate_limit} requests / 60 s. Fake credentials of this run:"
            )
            for agent in agents[:3]:
                print(
                    f"  {agent.name}: email={agent.email} api_token={agent.api_token} "
                    f"oauth_token={agent.oauth_token}"
                )
            first = agents[0]
            credentials = f"ZENDESK_EMAIL={first.email} ZENDESK_API_TOKEN={first.api_token}"
            opt_in = "" if _is_loopback(local) else " ZENDESK_ALLOW_HTTP=1"
            print(f"export ZENDESK_URL={local}{opt_in} {credentials}")
            if remote is not None:
                # Plain http off loopback carries the credentials in the clear: the CLI and
                # the Client refuse it unless asked (--allow-http, allow_http=True).
                print(
                    f"From another machine: export ZENDESK_URL={remote} ZENDESK_ALLOW_HTTP=1 "
                    f"{credentials} (plain http: fake credentials only)"
                )
            print("Ctrl-C to stop.", flush=True)
            await stop.wait()
    finally:
        await emu.stop()
    return EXIT_OK
