"""Stream every agent's activities concurrently through one account-wide rate limiter.

With ZENDESK_* set it covers that one agent; without them, every agent of the emulator.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from _account import account

import zdactivity


async def main() -> None:
    async with account(emulated_agents=20) as acct:
        root = acct.client()
        async with root:
            # with_auth views share the root's session and rate limiter.
            clients = {key: root.with_auth(auth) for key, auth in acct.agents.items()}
            per_agent: Counter[str] = Counter()
            try:
                async for key, activity in zdactivity.fan_out(clients, concurrency=10):
                    per_agent[key] += 1
                    if per_agent.total() <= 5:
                        actor = activity.actor
                        print(
                            key, activity.created_at, actor.name if actor else "?", activity.title
                        )
            except* zdactivity.AgentError as failed:
                for error in failed.exceptions:  # one AgentError per failed agent
                    if isinstance(error, zdactivity.AgentError):  # (for the type checker)
                        print("agent", error.key, "failed:", error.error)
            print(
                f"{per_agent.total()} activities from {len(per_agent)} agents,",
                f"{root.stats.requests} requests",
            )


if __name__ == "__main__":
    asyncio.run(main())
