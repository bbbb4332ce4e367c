"""zdactivity's pytest plugin: a real Zendesk on loopback for your tests, no mocks.

Installing zdactivity registers it (the ``pytest11`` entry point ``zdactivity``; ``-p
no:zdactivity`` turns it off). It adds fixtures, for ``async def`` tests::

    @pytest.mark.zendesk_emulator(agents=5, activities_per_agent=20)
    async def test_sync(zendesk_emulator: Emulator, zendesk_client: zdactivity.Client) -> None:
        zendesk_emulator.inject(Fault.status(503, retry_after=1))
        listed = await zendesk_client.activities.list().collect()
        assert len(listed) == len(zendesk_emulator.activities_for(zendesk_emulator.agents[0]))

- ``zendesk_emulator``: a started :class:`~zdactivity.testing.Emulator` on 127.0.0.1, stopped
  after the test. ``@pytest.mark.zendesk_emulator(**kwargs)`` (on the test, its class or its
  module; the closest wins for each keyword) passes any ``Emulator`` keyword: ``agents``,
  ``activities_per_agent``, ``rate_limit``, ``seed``, ``clock``...
- ``zendesk_client``: a :class:`~zdactivity.Client` on it with the first agent's API token and
  ``RetryPolicy().testing()`` (the same retry decisions, never a real sleep), closed after.
- ``zendesk_client_factory``: ``make(agent=0, **client_kwargs)`` gives a client for another agent
  (an :class:`~zdactivity.testing.Agent` or its index in ``emu.agents``) or with other ``Client``
  keywords (``auth=``, ``retry=``, ``rate_limiter=``...); every client it made is closed after.

The event loop: whoever runs the test's loop runs these fixtures in it.

- pytest-asyncio active, either mode: it runs them. In strict mode a test using these fixtures
  counts as marked ``@pytest.mark.asyncio``.
- anyio's plugin (a test marked ``anyio``, asyncio backend): anyio runs them, unless
  pytest-asyncio's auto mode claims the test too.
- neither: the plugin runs the test, these fixtures and the test's other function-scoped
  ``async def`` fixtures in one new event loop per test, closed after.

Tests that use none of these fixtures are left alone. The fixtures serve ``async def`` tests
only: the emulator answers while the test's loop runs, which a plain ``def`` test never does.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    import zdactivity
    from zdactivity.testing import Agent, Emulator

    _fixture = pytest.fixture
else:
    try:  # pytest-asyncio (strict mode) runs async fixtures only when they say so
        from pytest_asyncio import fixture as _fixture
    except ImportError:  # pragma: no cover - where pytest-asyncio is not installed
        _fixture = pytest.fixture

__all__ = ["ClientFactory"]

# Nothing of zdactivity is imported until a fixture is used: pytest loads this plugin in every
# run where zdactivity is installed.
FIXTURES = frozenset({"zendesk_emulator", "zendesk_client", "zendesk_client_factory"})
MARKER = "zendesk_emulator"

_RUNNER = pytest.StashKey[asyncio.Runner]()


class ClientFactory(Protocol):
    """The ``zendesk_client_factory`` fixture: a client on the emulator, closed after the test."""

    def __call__(self, agent: Agent | int = 0, **client_kwargs: Any) -> zdactivity.Client:
        """A client for ``agent`` (its API token unless ``auth=`` is given); ``client_kwargs``
        go to :class:`~zdactivity.Client` (``retry`` defaults to ``RetryPolicy().testing()``)."""
        ...


# -- fixtures ----------------------------------------------------------------------------------


@_fixture
async def zendesk_emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    """A running emulator on loopback, configured by ``@pytest.mark.zendesk_emulator(...)``."""
    kwargs: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers(MARKER))):  # the closest wins
        if mark.args:
            pytest.fail(
                f"@pytest.mark.{MARKER} takes Emulator keywords only, not {mark.args!r}",
                pytrace=False,
            )
        kwargs.update(mark.kwargs)
    from zdactivity.testing import Emulator

    try:
        emulator = Emulator(**kwargs)
    except (TypeError, ValueError) as exc:
        pytest.fail(f"@pytest.mark.{MARKER}({_describe(kwargs)}): {exc}", pytrace=False)
    async with emulator:
        yield emulator


@_fixture
async def zendesk_client_factory(zendesk_emulator: Emulator) -> AsyncIterator[ClientFactory]:
    """Make clients on ``zendesk_emulator`` (closed after the test): see :class:`ClientFactory`."""
    import zdactivity
    from zdactivity.testing import Agent

    clients: list[zdactivity.Client] = []

    def make(agent: Agent | int = 0, **client_kwargs: Any) -> zdactivity.Client:
        if not isinstance(agent, Agent):
            agent = zendesk_emulator.agents[agent]
        client_kwargs.setdefault("auth", zdactivity.APIToken(agent.email, agent.api_token))
        client_kwargs.setdefault("retry", zdactivity.RetryPolicy().testing())
        client = zdactivity.Client(base_url=zendesk_emulator.url, **client_kwargs)
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await client.close()


@_fixture
async def zendesk_client(zendesk_client_factory: ClientFactory) -> zdactivity.Client:
    """A client on ``zendesk_emulator`` as its first agent (API token, no real retry sleeps)."""
    return zendesk_client_factory()


# -- hooks -------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**kwargs): Emulator keywords for zdactivity's zendesk_emulator fixture",
    )


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, object, object]:
    """In pytest-asyncio's strict mode, mark async tests that use our fixtures ``asyncio``.

    This wrapper runs inside pytest-asyncio's, which then makes such a test one of its own."""
    result = yield
    config = collector.config
    if not inspect.iscoroutinefunction(obj) or not config.pluginmanager.has_plugin("asyncio"):
        return result
    for item in result if isinstance(result, list) else [result]:
        if (
            isinstance(item, pytest.Function)
            and _uses_fixtures(item)
            and not _anyio_runs(item)
            and item.get_closest_marker("asyncio") is None
        ):
            item.add_marker("asyncio")
    return result


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Give an async test that uses our fixtures, and that no other plugin runs, a loop."""
    if (
        isinstance(item, pytest.Function)
        and inspect.iscoroutinefunction(item.obj)
        and _uses_fixtures(item)
        and not item.config.pluginmanager.has_plugin("asyncio")
        and not _anyio_runs(item)
    ):
        item.stash[_RUNNER] = asyncio.Runner()
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """Close the test's loop once every fixture of the test has been torn down."""
    try:
        return (yield)
    finally:
        runner = item.stash.get(_RUNNER, None)
        if runner is not None:
            del item.stash[_RUNNER]
            runner.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """In a test the plugin runs, run function-scoped async fixtures in the test's loop."""
    func = fixturedef.func
    is_async = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
    runner = request.node.stash.get(_RUNNER, None)
    if fixturedef.argname in FIXTURES and is_async and not _async_test(request):
        _swap(fixturedef, _refusal(request))
    elif (
        runner is None
        or not is_async
        or fixturedef.scope != "function"
        or (request.instance is not None and fixturedef.argname not in FIXTURES)
    ):
        return (yield)
    else:
        _swap(fixturedef, _in_loop(func, runner))
    try:
        return (yield)
    finally:
        _swap(fixturedef, func)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an async test that the plugin gave a loop to."""
    runner = pyfuncitem.stash.get(_RUNNER, None)
    if runner is None:
        return None
    test = pyfuncitem.obj
    funcargs = pyfuncitem.funcargs
    arguments = {
        name: funcargs[name] for name in inspect.signature(test).parameters if name in funcargs
    }
    runner.run(test(**arguments))
    return True


# -- helpers -----------------------------------------------------------------------------------


def _uses_fixtures(item: pytest.Function) -> bool:
    return not FIXTURES.isdisjoint(item.fixturenames)


def _anyio_runs(item: pytest.Function) -> bool:
    return "anyio_backend" in item.fixturenames or item.get_closest_marker("anyio") is not None


def _swap(fixturedef: pytest.FixtureDef[Any], func: Callable[..., Any]) -> None:
    """Run ``func`` for this setup of the fixture, as pytest-asyncio and anyio do too."""
    fixturedef.func = func  # type: ignore[misc]


def _async_test(request: pytest.FixtureRequest) -> bool:
    test = getattr(request, "function", None)
    inner = getattr(getattr(test, "hypothesis", None), "inner_test", test)  # @given(...) tests
    return test is None or inspect.iscoroutinefunction(inner)


def _refusal(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """A stand-in for a fixture a plain ``def`` test asked for: pytest records its failure."""
    message = (
        f"zdactivity's {request.fixturename} fixture serves `async def` tests only (the emulator "
        f"answers while the test's event loop runs): make {request.function.__name__} an "
        "`async def` test"
    )

    def refuse(**_: Any) -> None:
        pytest.fail(message, pytrace=False)

    return refuse


def _in_loop(func: Callable[..., Any], runner: asyncio.Runner) -> Callable[..., Any]:
    """A plain fixture function that runs the async fixture ``func`` in ``runner``'s loop."""
    if inspect.iscoroutinefunction(func):

        def call(**kwargs: Any) -> Any:
            return runner.run(func(**kwargs))

        return call

    def generate(**kwargs: Any) -> Iterator[Any]:
        steps = func(**kwargs)
        yield runner.run(steps.__anext__())
        try:
            runner.run(steps.__anext__())
        except StopAsyncIteration:
            return
        runner.run(steps.aclose())
        raise ValueError(f"fixture {func.__name__} yields more than once")

    return generate


def _describe(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
