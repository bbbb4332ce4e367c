"""Shared by the examples: a real account from the environment, or the built-in emulator.

With ``ZENDESK_URL`` or ``ZENDESK_SUBDOMAIN`` set, the examples use that account (and
``ZENDESK_OAUTH_TOKEN``, or ``ZENDESK_EMAIL`` with ``ZENDESK_API_TOKEN``). Without them they
start ``zdactivity.testing.Emulator`` and finish by themselves in a few seconds.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import zdactivity
from zdactivity.testing import Emulator


@dataclass
class Account:
    subdomain: str | None  # one of the two names the account
    base_url: str | None
    auth: zdactivity.Auth  # one agent's credentials
    agents: dict[str, zdactivity.Auth]  # every agent the example should cover
    emulator: Emulator | None = None

    def client(self) -> zdactivity.Client:
        """A new client of the account, with the first agent's credentials."""
        return zdactivity.Client(subdomain=self.subdomain, base_url=self.base_url, auth=self.auth)


def env_auth() -> zdactivity.Auth:
    if os.environ.get("ZENDESK_OAUTH_TOKEN"):
        return zdactivity.OAuthToken(os.environ["ZENDESK_OAUTH_TOKEN"])
    return zdactivity.APIToken(os.environ["ZENDESK_EMAIL"], os.environ["ZENDESK_API_TOKEN"])


@contextlib.asynccontextmanager
async def account(emulated_agents: int = 5) -> AsyncIterator[Account]:
    if os.environ.get("ZENDESK_SUBDOMAIN"):
        auth = env_auth()
        yield Account(os.environ["ZENDESK_SUBDOMAIN"], None, auth, {"me": auth})
    elif os.environ.get("ZENDESK_URL"):
        auth = env_auth()
        yield Account(None, os.environ["ZENDESK_URL"], auth, {"me": auth})
    else:
        async with Emulator(agents=emulated_agents, activities_per_agent=40) as emu:
            agents: dict[str, zdactivity.Auth] = {
                a.email: zdactivity.OAuthToken(a.oauth_token) for a in emu.agents
            }
            first = next(iter(agents.values()))
            yield Account(None, emu.url, first, agents, emu)
