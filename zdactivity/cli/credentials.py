"""Which account and which credentials a command uses: flags first, else the environment.

Credentials are never printed: messages name where a value came from (``--oauth-token``,
``ZENDESK_API_TOKEN``...), never the value.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import urllib.parse
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from .. import protocol
from ..auth import APIToken, Auth, OAuthToken
from ..client import Client, RequestEvent
from ..errors import AuthenticationError
from ..ratelimit import RateLimitBackend
from ..retry import RetryPolicy
from ..transport import Timeout
from .arguments import Parser, positive_int, seconds
from .common import UsageError, say

__all__ = [
    "ENV_VARS",
    "RetryLines",
    "account_options",
    "allow_http",
    "auth_from",
    "client_from",
    "credential_options",
    "identity",
    "run_with_client",
    "timeout_of",
]

ENV_VARS = (
    "ZENDESK_SUBDOMAIN",
    "ZENDESK_URL",
    "ZENDESK_EMAIL",
    "ZENDESK_API_TOKEN",
    "ZENDESK_OAUTH_TOKEN",
    "ZENDESK_ALLOW_HTTP",
)


def account_options() -> Parser:
    """The parent parser of every command that talks to an account: where it is."""
    account = Parser(add_help=False)
    where = account.add_argument_group("account (default: $ZENDESK_SUBDOMAIN or $ZENDESK_URL)")
    where.add_argument("--subdomain", help="acme for https://acme.zendesk.com")
    where.add_argument("--url", help="base URL, e.g. the emulator's http://127.0.0.1:8765")
    where.add_argument(
        "--allow-http",
        action="store_true",
        help="allow plain http to a host that is not loopback (or ZENDESK_ALLOW_HTTP=1): "
        "credentials then cross the network unencrypted",
    )
    where.add_argument(
        "--max-tries", type=positive_int, default=5, help="attempts per request (default 5)"
    )
    where.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up an attempt after SECONDS without an answer (default {DEFAULT_TIMEOUT:g}); "
        f"connecting gets at most {CONNECT_TIMEOUT:g}, the whole answer twice SECONDS",
    )
    return account


#: ``--timeout``'s default: the library's :class:`~zdactivity.Timeout` read timeout.
DEFAULT_TIMEOUT = 30.0
#: The longest a connection may take to open (the library's default connect timeout).
CONNECT_TIMEOUT = 10.0


def timeout_of(seconds: float) -> Timeout:
    """``--timeout SECONDS`` as the client's timeout: SECONDS of silence, a connection within
    min(SECONDS, 10 s), the whole answer within 2 x SECONDS (the library's defaults for 30)."""
    return Timeout(connect=min(seconds, CONNECT_TIMEOUT), read=seconds, total=2 * seconds)


def allow_http(args: argparse.Namespace, env: Mapping[str, str]) -> bool:
    """``--allow-http``, or ``ZENDESK_ALLOW_HTTP`` set to 1, true or yes."""
    value = env.get("ZENDESK_ALLOW_HTTP", "").strip().lower()
    if value not in ("", "0", "1", "true", "false", "yes", "no"):
        raise UsageError("ZENDESK_ALLOW_HTTP must be 1 or 0")
    return bool(getattr(args, "allow_http", False)) or value in ("1", "true", "yes")


class RetryLines:
    """An ``on_request`` hook: one ``zdactivity: ...; retrying (2 of 5) in 1.2 s`` line on
    stderr for each retry, so that a slow or failing server is never a silent wait."""

    def __init__(self, max_tries: int) -> None:
        self.max_tries = max_tries

    def __call__(self, event: RequestEvent) -> None:
        error, delay = event.error, event.retry_in
        if error is None or delay is None or isinstance(error, AuthenticationError):
            return  # a success, the last failure (the error line says it), an OAuth refresh
        say(f"{error}; retrying ({event.attempt + 1} of {self.max_tries}) in {delay:.1f} s")


def credential_options() -> Parser:
    """The parent parser of the commands run as one agent: who."""
    creds = Parser(add_help=False)
    who = creds.add_argument_group(
        "credentials (default: $ZENDESK_EMAIL + $ZENDESK_API_TOKEN, or $ZENDESK_OAUTH_TOKEN; "
        "prefer the environment: flags show up in ps)"
    )
    who.add_argument("--email", help="the agent's email, with --api-token")
    who.add_argument("--api-token", help="an API token (Zendesk ends them on 2027-04-30)")
    who.add_argument("--oauth-token", help="an OAuth access token")
    return creds


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


def auth_from(args: argparse.Namespace, env: Mapping[str, str]) -> Auth:
    """The agent's credentials, from the flags or the environment."""
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


def client_from(
    args: argparse.Namespace,
    env: Mapping[str, str],
    auth: Auth | None = None,
    *,
    limiter_for: Callable[[str], RateLimitBackend] | None = None,
) -> Client:
    """The account's client, with ``auth`` or the agent's credentials (usage errors first).

    ``limiter_for``: makes the client's rate limiter from the account's name, the same in every
    process that names the account: its subdomain (``acme`` for ``--subdomain acme`` or
    ``--url https://acme.zendesk.com``), else the host and port of ``--url``."""
    where = _account(args, env)
    auth = auth if auth is not None else auth_from(args, env)
    try:
        insecure = allow_http(args, env)
        base_url = protocol.resolve_base_url(
            where.get("subdomain"), where.get("base_url"), allow_http=insecure
        )
        host = urllib.parse.urlsplit(base_url).netloc
        account = host.removesuffix(".zendesk.com") if host.endswith(".zendesk.com") else host
        limiter = limiter_for(account) if limiter_for else None
        return Client(
            base_url=base_url,
            auth=auth,
            retry=RetryPolicy(max_tries=args.max_tries),
            rate_limiter=limiter,
            timeout=timeout_of(args.timeout),
            allow_http=insecure,
            on_request=RetryLines(args.max_tries),
        )
    except (ValueError, TypeError) as exc:
        message = str(exc).replace(
            "pass allow_http=True", "pass --allow-http (or set ZENDESK_ALLOW_HTTP=1) if you mean it"
        )
        raise UsageError(message) from None


def identity(client: Client) -> str:
    """The checkpoint key of ``tail``: the account and the agent, never the secret itself."""
    auth = client.auth
    if isinstance(auth, APIToken):
        return f"{client.base_url} {auth.email}"
    digest = hashlib.sha256(auth.authorization().encode()).hexdigest()[:16]
    return f"{client.base_url} oauth:{digest}"


Body = Callable[[argparse.Namespace, Client], Coroutine[Any, Any, int]]


def run_with_client(body: Body) -> Callable[[argparse.Namespace, Mapping[str, str]], int]:
    """A command run as one agent: resolve the client (usage errors first), run ``body`` with
    it, close it."""

    def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
        client = client_from(args, env)

        async def go() -> int:
            async with client:
                return await body(args, client)

        return asyncio.run(go())

    return run
