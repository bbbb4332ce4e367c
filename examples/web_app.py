"""An aiohttp web app that awaits zdactivity calls with ONE client shared by every request.

The client is created at startup and closed at shutdown (``cleanup_ctx``); handlers find it in
``request.app``. Run it with ZENDESK_* set to serve http://127.0.0.1:8080/activities until
Ctrl-C; without them it starts the emulator, answers a few requests of its own and exits.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

import aiohttp
from _account import account
from aiohttp import web

import zdactivity

ZENDESK = web.AppKey("zendesk", zdactivity.Client)


def make_app(new_client: Callable[[], zdactivity.Client]) -> web.Application:
    async def zendesk_client(app: web.Application) -> AsyncIterator[None]:
        async with new_client() as client:
            app[ZENDESK] = client
            yield  # the app serves requests here; the client closes at shutdown

    async def recent(request: web.Request) -> web.Response:
        zd = request.app[ZENDESK]
        limit = min(int(request.query.get("limit", "20")), 100)
        activities = await zd.activities.list(page_size=limit).collect(limit=limit)
        return web.json_response(
            [
                {"id": a.id, "title": a.title, "created_at": a.created_at.isoformat()}
                for a in activities
            ]
        )

    async def count(request: web.Request) -> web.Response:
        result = await request.app[ZENDESK].activities.count()
        return web.json_response({"value": result.value})

    app = web.Application()
    app.cleanup_ctx.append(zendesk_client)
    app.router.add_get("/activities", recent)
    app.router.add_get("/activities/count", count)
    return app


async def main() -> None:
    async with account() as acct:
        app = make_app(acct.client)
        runner = web.AppRunner(app)
        await runner.setup()
        port = 0 if acct.emulator else int(os.environ.get("PORT", "8080"))
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            if acct.emulator is None:
                print(f"serving {url}/activities until Ctrl-C")
                await asyncio.Event().wait()
            async with aiohttp.ClientSession() as http:
                for path in ("/activities?limit=3", "/activities/count"):
                    async with http.get(url + path) as response:
                        print("GET", path, "->", response.status, await response.json())
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
