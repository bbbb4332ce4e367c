"""Single-stream throughput and CPU per page: zdactivity against floors and other clients.

Run: ``python -m benchmarks.bench_throughput`` (``--quick`` for a smoke run); ``python -m
benchmarks`` runs it as part of the suite.

Throughput: one agent's whole 30-day stream, pages of 100 in the emulator's default shape (full
inline ``actor``/``user`` records and sideloaded ``actors``/``users``), read by each client with
the name of every activity's actor. The emulator runs in a child process; every client runs in
this process, one after the other, round-robin, and each figure is the median of the runs.

- ``transport floor``: aiohttp GET of the same page URLs (captured beforehand) and reading the
  bytes (gzip decoded by aiohttp, as for every client), no JSON decoding at all.
- ``decode floor``: aiohttp + msgspec into minimal Structs holding only what a consumer reads
  (``id``, ``created_at``, ``actor_id``; the sideloaded actors' ``id`` and ``name``).
- ``aiohttp + json.loads``: dicts, names from the inline ``actor``.
- ``httpx + pydantic v2``: how generated SDKs do it: full models of activities and user records,
  ``Page.model_validate_json``.
- ``zenpy``: the most used Zendesk client (synchronous, requests). It builds its URLs as
  ``{protocol}://{subdomain}.{domain}/api/v2/...``, so it is pointed at the emulator with
  ``Zenpy(subdomain="127", domain="0.0.1:PORT", email=..., token=...)`` and
  ``zenpy.activities.protocol = "http"``; ``zenpy.activities()`` follows its cursor pages (100
  per page). Its ``Activity.actor`` is the inline record as a dict (``actor["name"]``).

Every client must return the same number of activities and the same checksum of actor names (the
system user, which has no record, counts as "Zendesk"), or the run fails.

CPU per page: one captured (uncompressed) 100-activity body decoded in-process, plus reading the
actor name of every activity, zdactivity against the decode floor, json.loads and pydantic.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec

import zdactivity
from zdactivity import protocol
from zdactivity.models import UserCache
from zdactivity.testing import Agent

from ._common import median, round_robin
from ._server import emulator_process

SYSTEM_NAME = "Zendesk"


# --- the decode floor: only what a consumer reads ---------------------------------------------


class MinUser(msgspec.Struct):
    id: int
    name: str


class MinActivity(msgspec.Struct):
    id: int
    created_at: datetime
    actor_id: int | None = None


class MinMeta(msgspec.Struct):
    has_more: bool
    after_cursor: str | None = None


class MinPage(msgspec.Struct):
    activities: list[MinActivity]
    actors: list[MinUser] = []
    meta: MinMeta | None = None


MIN_DECODER = msgspec.json.Decoder(MinPage)


def min_names(body: bytes) -> tuple[list[str], MinMeta | None]:
    page = MIN_DECODER.decode(body)
    names = {u.id: u.name for u in page.actors}
    out = []
    for a in page.activities:
        name = names.get(a.actor_id) if a.actor_id is not None else None
        out.append(name if name is not None else SYSTEM_NAME)
    return out, page.meta


# --- json.loads -----------------------------------------------------------------------------


def json_names(body: bytes) -> tuple[list[str], dict[str, Any] | None]:
    import json

    data = json.loads(body)
    out = []
    for a in data["activities"]:
        actor = a.get("actor")
        out.append(actor["name"] if actor else SYSTEM_NAME)
    return out, data.get("meta")


# --- pydantic v2: full models, as a generated SDK has them ------------------------------------


def pydantic_models() -> Any:
    from pydantic import BaseModel

    class PThumbnail(BaseModel):
        id: int | None = None
        url: str | None = None
        file_name: str | None = None
        content_url: str | None = None
        mapped_content_url: str | None = None
        content_type: str | None = None
        size: int | None = None
        width: int | None = None
        height: int | None = None
        inline: bool = False
        deleted: bool = False

    class PPhoto(PThumbnail):
        thumbnails: list[PThumbnail] = []  # noqa: RUF012 (pydantic copies defaults)

    class PUser(BaseModel):
        id: int
        url: str | None = None
        name: str = ""
        email: str | None = None
        created_at: datetime | None = None
        updated_at: datetime | None = None
        time_zone: str | None = None
        iana_time_zone: str | None = None
        phone: str | None = None
        shared_phone_number: bool | None = None
        photo: PPhoto | None = None
        locale_id: int | None = None
        locale: str | None = None
        organization_id: int | None = None
        role: str | None = None
        verified: bool | None = None
        external_id: str | None = None
        tags: list[str] = []
        alias: str | None = None
        active: bool | None = None
        shared: bool | None = None
        shared_agent: bool | None = None
        last_login_at: datetime | None = None
        two_factor_auth_enabled: bool | None = None
        signature: str | None = None
        details: str | None = None
        notes: str | None = None
        role_type: int | None = None
        custom_role_id: int | None = None
        moderator: bool | None = None
        ticket_restriction: str | None = None
        only_private_comments: bool | None = None
        restricted_agent: bool | None = None
        suspended: bool | None = None
        default_group_id: int | None = None
        report_csv: bool | None = None
        user_fields: dict[str, Any] = {}

    class PActivity(BaseModel):
        id: int
        url: str | None = None
        verb: str = ""
        title: str = ""
        actor_id: int | None = None
        user_id: int | None = None
        created_at: datetime
        updated_at: datetime | None = None
        object: dict[str, Any] = {}
        target: dict[str, Any] = {}
        actor: PUser | None = None
        user: PUser | None = None

    class PMeta(BaseModel):
        has_more: bool
        after_cursor: str | None = None
        before_cursor: str | None = None

    class PPage(BaseModel):
        activities: list[PActivity]
        actors: list[PUser] = []
        users: list[PUser] = []
        meta: PMeta | None = None

    return PPage


# --- the clients ----------------------------------------------------------------------------

Result = tuple[int, int]  # activities, checksum of actor names


def _checksum(names: list[str]) -> int:
    return sum(len(n) for n in names)


def _bearer(agent: Agent) -> dict[str, str]:
    return {"Authorization": f"Bearer {agent.oauth_token}", "Accept": "application/json"}


def _first_url(url: str) -> str:
    return f"{url}/api/v2/activities.json?page%5Bsize%5D=100"


def _next_url(url: str, cursor: str) -> str:
    from urllib.parse import quote

    return f"{url}/api/v2/activities.json?page%5Bafter%5D={quote(cursor)}&page%5Bsize%5D=100"


async def capture(url: str, agent: Agent) -> tuple[list[str], bytes]:
    """The URLs of every page of the agent's stream, and the first page's body."""
    urls, first = [], b""
    async with aiohttp.ClientSession() as session:
        page_url: str | None = _first_url(url)
        while page_url is not None:
            urls.append(page_url)
            async with session.get(page_url, headers=_bearer(agent)) as resp:
                body = await resp.read()
            first = first or body
            _, meta = min_names(body)
            page_url = _next_url(url, meta.after_cursor) if meta and meta.has_more else None
    return urls, first


async def transport_floor(urls: list[str], agent: Agent) -> Result:
    size = 0
    async with aiohttp.ClientSession() as session:
        headers = _bearer(agent)
        for page_url in urls:
            async with session.get(page_url, headers=headers) as resp:
                size += len(await resp.read())
    return 0, size


async def _aiohttp_loop(url: str, agent: Agent, decode: Callable[[bytes], Any]) -> Result:
    count = checksum = 0
    async with aiohttp.ClientSession() as session:
        headers = _bearer(agent)
        page_url: str | None = _first_url(url)
        while page_url is not None:
            async with session.get(page_url, headers=headers) as resp:
                body = await resp.read()
            names, meta = decode(body)
            count += len(names)
            checksum += _checksum(names)
            if isinstance(meta, dict):
                has_more, cursor = meta.get("has_more"), meta.get("after_cursor")
            else:
                has_more, cursor = meta.has_more, meta.after_cursor
            page_url = _next_url(url, cursor) if has_more else None
    return count, checksum


async def decode_floor(url: str, agent: Agent) -> Result:
    return await _aiohttp_loop(url, agent, min_names)


async def aiohttp_json(url: str, agent: Agent) -> Result:
    return await _aiohttp_loop(url, agent, json_names)


async def zdactivity_client(url: str, agent: Agent) -> Result:
    count = checksum = 0
    auth = zdactivity.OAuthToken(agent.oauth_token)
    async with zdactivity.Client(base_url=url, auth=auth) as zd:
        async for activity in zd.activities.list(page_size=100):
            actor = activity.actor
            count += 1
            checksum += len(actor.name if actor is not None else SYSTEM_NAME)
    return count, checksum


async def httpx_pydantic(url: str, agent: Agent, page_model: Any) -> Result:
    import httpx

    count = checksum = 0
    async with httpx.AsyncClient(headers=_bearer(agent)) as client:
        page_url: str | None = _first_url(url)
        while page_url is not None:
            resp = await client.get(page_url)
            page = page_model.model_validate_json(resp.content)
            for a in page.activities:
                count += 1
                checksum += len(a.actor.name if a.actor is not None else SYSTEM_NAME)
            meta = page.meta
            page_url = _next_url(url, meta.after_cursor) if meta and meta.has_more else None
    return count, checksum


def make_zenpy(url: str, agent: Agent) -> Any:
    """A Zenpy client talking to the emulator (see the module docstring)."""
    from zenpy import Zenpy

    parts = urlsplit(url)
    host = parts.hostname or ""
    subdomain, _, rest = host.partition(".")
    zenpy = Zenpy(
        subdomain=subdomain, domain=f"{rest}:{parts.port}", email=agent.email, token=agent.api_token
    )
    zenpy.activities.protocol = parts.scheme
    return zenpy


def zenpy_client(url: str, agent: Agent) -> Result:
    count = checksum = 0
    client = make_zenpy(url, agent)
    for activity in client.activities():
        actor = activity.actor
        count += 1
        checksum += len(actor["name"] if actor else SYSTEM_NAME)
    client.users.session.close()
    return count, checksum


# --- figure 1: single-stream throughput -------------------------------------------------------


def measure_throughput(activities: int, runs: int) -> dict[str, Any]:
    """Activities per second of each client over one agent's stream; medians of ``runs``."""
    page_model = pydantic_models()
    with emulator_process(agents=1, activities_per_agent=activities, seed=5) as remote:
        url, agent = remote.url, remote.agents[0]
        urls, body = asyncio.run(capture(url, agent))
        cases: dict[str, Callable[[], Result]] = {
            "transport floor (aiohttp, bytes only)": lambda: asyncio.run(
                transport_floor(urls, agent)
            ),
            "decode floor (aiohttp + msgspec minimal)": lambda: asyncio.run(
                decode_floor(url, agent)
            ),
            "zdactivity": lambda: asyncio.run(zdactivity_client(url, agent)),
            "aiohttp + json.loads": lambda: asyncio.run(aiohttp_json(url, agent)),
            "httpx + pydantic v2": lambda: asyncio.run(httpx_pydantic(url, agent, page_model)),
            "zenpy (requests, sync)": lambda: zenpy_client(url, agent),
        }
        # Warm up every client once (imports, first connections), untimed.
        for fn in cases.values():
            fn()
        samples, results = round_robin(cases, runs)
    expected = results["zdactivity"]
    for name, result in results.items():
        if name.startswith("transport"):
            continue
        if result != expected:
            raise AssertionError(f"{name} read {result}, zdactivity read {expected}")
    count = expected[0]
    rates = {name: count / median(walls) for name, walls in samples.items()}
    return {
        "activities": count,
        "pages": len(urls),
        "page_bytes": len(body),
        "runs": runs,
        "rates": rates,
        "walls": {name: median(walls) for name, walls in samples.items()},
        "body": body,
    }


# --- figure 2: CPU per page -------------------------------------------------------------------


def measure_cpu(body: bytes, runs: int, inner: int) -> dict[str, Any]:
    """Seconds of CPU per 100-activity page (decode + every actor's name), in-process."""
    page_model = pydantic_models()
    users = UserCache()  # as a client has: recurring actors are decoded once across pages

    def zd() -> int:
        total = 0
        for a in protocol.decode_page(body, cache=users):
            actor = a.actor
            total += len(actor.name if actor is not None else SYSTEM_NAME)
        return total

    def floor() -> int:
        return _checksum(min_names(body)[0])

    def loads() -> int:
        return _checksum(json_names(body)[0])

    def pyd() -> int:
        page = page_model.model_validate_json(body)
        return sum(
            len(a.actor.name if a.actor is not None else SYSTEM_NAME) for a in page.activities
        )

    cases = {
        "decode floor (msgspec minimal)": floor,
        "zdactivity": zd,
        "json.loads": loads,
        "pydantic v2 (full models)": pyd,
    }
    checks = {name: fn() for name, fn in cases.items()}
    if len(set(checks.values())) != 1:
        raise AssertionError(f"the decoders disagree: {checks}")

    def repeat(fn: Callable[[], int]) -> Callable[[], None]:
        def loop() -> None:
            for _ in range(inner):
                fn()

        return loop

    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            started = time.process_time()
            repeat(fn)()
            samples[name].append((time.process_time() - started) / inner)
    return {
        "bytes": len(body),
        "activities": len(protocol.decode_page(body).activities),
        "runs": runs,
        "inner": inner,
        "seconds": {name: median(values) for name, values in samples.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    activities, runs = (300, 1) if args.quick else (3000, 5)
    tp = measure_throughput(activities, runs)
    floor = tp["rates"]["transport floor (aiohttp, bytes only)"]
    print(f"{tp['activities']} activities in {tp['pages']} pages, median of {runs}")
    for name, rate in tp["rates"].items():
        print(f"{name:<45} {rate:>10,.0f}/s {rate / floor:>6.2f}x floor")
    cpu = measure_cpu(tp["body"], runs=3 if args.quick else 15, inner=5 if args.quick else 50)
    base = cpu["seconds"]["decode floor (msgspec minimal)"]
    for name, seconds in cpu["seconds"].items():
        print(f"{name:<45} {seconds * 1e6:>10.1f} us {seconds / base:>6.2f}x floor")


if __name__ == "__main__":
    main()
