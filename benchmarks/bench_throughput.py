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
- ``httpx + pydantic v2, users deferred``: the fair peer of zdactivity's lazy users (see
  :class:`DeferredPage`): each user record validated only when an activity's actor is read, once
  per page.
- ``zenpy``: the most used Zendesk client (synchronous, requests). It builds its URLs as
  ``{protocol}://{subdomain}.{domain}/api/v2/...``, so it is pointed at the emulator with
  ``Zenpy(subdomain="127", domain="0.0.1:PORT", email=..., token=...)`` and
  ``zenpy.activities.protocol = "http"``; ``zenpy.activities()`` follows its cursor pages (100
  per page). Its ``Activity.actor`` is the inline record as a dict (``actor["name"]``).

Every client must return the same number of activities and the same checksum of actor names (the
system user, which has no record, counts as "Zendesk"), or the run fails.

CPU per page: the stream's captured (uncompressed) 100-activity bodies decoded in-process, plus
reading the actor name of every activity, zdactivity cold and warm (see :func:`measure_cpu`)
against the decode floor, json.loads and both pydantic peers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, get_args
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
DEFERRED = "httpx + pydantic v2, users deferred"


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


class DeferredPage:
    """httpx + pydantic with user validation deferred the way zdactivity defers it.

    The page model validates the activities' documented scalars at once (as zdactivity decodes
    them) and takes the user records it may need, the sideloaded ones and each activity's inline
    ``actor``, unvalidated (``Any``: pydantic has no raw-JSON type, so they are parsed into
    dicts, not validated); ``user``, ``object`` and ``target`` are not declared, so pydantic
    skips them. Reading an activity's actor validates that user's record into the full ``PUser``
    model on first need, once per page: the sideloaded record first, else the inline one. The
    same work zdactivity does, minus its cross-page cache.
    """

    def __init__(self, page: Any, user_model: Any) -> None:
        self.page = page
        self._user_model = user_model
        self._records: dict[int, Any] | None = None
        self._users: dict[int, Any] = {}

    def actor(self, activity: Any) -> Any:
        actor_id = activity.actor_id
        user = self._users.get(actor_id)
        if user is not None:
            return user
        if self._records is None:
            self._records = {}
            for record in (*self.page.actors, *self.page.users):
                if isinstance(record, dict) and "id" in record:
                    self._records.setdefault(record["id"], record)
        record = self._records.get(actor_id, activity.actor)
        if record is None:
            return None
        user = self._user_model.model_validate(record)
        if actor_id is not None:
            self._users[actor_id] = user
        return user


def pydantic_deferred_models() -> tuple[Any, Any]:
    """The page model of :class:`DeferredPage` and the full user model."""
    from pydantic import BaseModel

    user_model = get_args(pydantic_models().model_fields["actors"].annotation)[0]

    class DActivity(BaseModel):
        id: int
        url: str | None = None
        verb: str = ""
        title: str = ""
        actor_id: int | None = None
        user_id: int | None = None
        created_at: datetime
        updated_at: datetime | None = None
        actor: Any = None

    class DMeta(BaseModel):
        has_more: bool
        after_cursor: str | None = None
        before_cursor: str | None = None

    class DPage(BaseModel):
        activities: list[DActivity]
        actors: list[Any] = []
        users: list[Any] = []
        meta: DMeta | None = None

    return DPage, user_model


def deferred_names(body: bytes, models: tuple[Any, Any]) -> tuple[list[str], Any]:
    page_model, user_model = models
    page = DeferredPage(page_model.model_validate_json(body), user_model)
    out = []
    for a in page.page.activities:
        actor = page.actor(a)
        out.append(actor.name if actor is not None else SYSTEM_NAME)
    return out, page.page.meta


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


async def capture(url: str, agent: Agent) -> tuple[list[str], list[bytes]]:
    """The URLs and bodies of every page of the agent's stream."""
    urls: list[str] = []
    bodies: list[bytes] = []
    async with aiohttp.ClientSession() as session:
        page_url: str | None = _first_url(url)
        while page_url is not None:
            urls.append(page_url)
            async with session.get(page_url, headers=_bearer(agent)) as resp:
                body = await resp.read()
            bodies.append(body)
            _, meta = min_names(body)
            page_url = _next_url(url, meta.after_cursor) if meta and meta.has_more else None
    return urls, bodies


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


async def httpx_pydantic_deferred(url: str, agent: Agent, models: tuple[Any, Any]) -> Result:
    import httpx

    count = checksum = 0
    async with httpx.AsyncClient(headers=_bearer(agent)) as client:
        page_url: str | None = _first_url(url)
        while page_url is not None:
            resp = await client.get(page_url)
            names, meta = deferred_names(resp.content, models)
            count += len(names)
            checksum += _checksum(names)
            page_url = _next_url(url, meta.after_cursor) if meta and meta.has_more else None
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
    deferred = pydantic_deferred_models()
    with emulator_process(agents=1, activities_per_agent=activities, seed=5) as remote:
        url, agent = remote.url, remote.agents[0]
        urls, bodies = asyncio.run(capture(url, agent))
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
            DEFERRED: lambda: asyncio.run(httpx_pydantic_deferred(url, agent, deferred)),
            "zenpy (requests, sync)": lambda: zenpy_client(url, agent),
        }
        # Warm up every client once (imports, first connections), untimed. Nothing carries
        # over into the timed runs but the imports: each run makes its own client (so
        # zdactivity's user cache starts empty in every run).
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
        "page_bytes": len(bodies[0]),
        "runs": runs,
        "rates": rates,
        "walls": {name: median(walls) for name, walls in samples.items()},
        "bodies": bodies,
    }


# --- figure 2: CPU per page -------------------------------------------------------------------


FLOOR_CPU = "decode floor (msgspec minimal)"


def measure_cpu(bodies: list[bytes], runs: int) -> dict[str, Any]:
    """CPU seconds per 100-activity page (decode + every actor's name), in-process, cold and warm.

    Each run decodes every page of ``bodies`` (one stream, in order) once per case; the figure is
    the median over ``runs`` of the run's CPU time divided by the pages. zdactivity runs twice:

    - **warm**: one :class:`UserCache` for the stream, new and empty at the start of each run
      (a client's steady stream: the actors recur page after page, so after the first page their
      records come from the cache; the first page's decodes are inside the timed run);
    - **cold**: a new, empty cache for every page (a fresh client on a page never seen).

    Nothing is warmed outside the timed region; the other decoders keep nothing across pages.
    """
    page_model = pydantic_models()
    deferred = pydantic_deferred_models()

    def names_of(page: Any) -> int:
        total = 0
        for a in page:
            actor = a.actor
            total += len(actor.name if actor is not None else SYSTEM_NAME)
        return total

    def zd_warm() -> int:
        users = UserCache()
        return sum(names_of(protocol.decode_page(body, cache=users)) for body in bodies)

    def zd_cold() -> int:
        return sum(names_of(protocol.decode_page(body, cache=UserCache())) for body in bodies)

    def floor() -> int:
        return sum(_checksum(min_names(body)[0]) for body in bodies)

    def loads() -> int:
        return sum(_checksum(json_names(body)[0]) for body in bodies)

    def pyd() -> int:
        total = 0
        for body in bodies:
            page = page_model.model_validate_json(body)
            total += sum(
                len(a.actor.name if a.actor is not None else SYSTEM_NAME) for a in page.activities
            )
        return total

    def pyd_deferred() -> int:
        return sum(_checksum(deferred_names(body, deferred)[0]) for body in bodies)

    cases = {
        FLOOR_CPU: floor,
        "zdactivity, warm (steady stream)": zd_warm,
        "zdactivity, cold (fresh client per page)": zd_cold,
        "json.loads": loads,
        "pydantic v2 (full models)": pyd,
        "pydantic v2, users deferred": pyd_deferred,
    }
    checks = {name: fn() for name, fn in cases.items()}
    if len(set(checks.values())) != 1:
        raise AssertionError(f"the decoders disagree: {checks}")
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            gc.collect()
            started = time.process_time()
            fn()
            samples[name].append((time.process_time() - started) / len(bodies))
    return {
        "bytes": sum(map(len, bodies)) // len(bodies),
        "pages": len(bodies),
        "activities": sum(len(protocol.decode_page(body).activities) for body in bodies),
        "runs": runs,
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
    cpu = measure_cpu(tp["bodies"], runs=3 if args.quick else 15)
    base = cpu["seconds"][FLOOR_CPU]
    for name, seconds in cpu["seconds"].items():
        print(f"{name:<45} {seconds * 1e6:>10.1f} us {seconds / base:>6.2f}x floor")


if __name__ == "__main__":
    main()
