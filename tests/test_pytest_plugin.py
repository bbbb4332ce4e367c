"""The pytest plugin (``zdactivity.testing.pytest_plugin``), run as a user's suite runs it.

Each test writes a user's test files and runs pytest on them (``pytester``, in a new process),
in the event loop setups a user may have: no pytest-asyncio (not installed, or ``-p
no:asyncio``: the plugin runs the loop), and pytest-asyncio in strict and in auto mode. The
plugin comes from the installed ``pytest11`` entry point, as it does for users.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

SCOPE = ["-o", "asyncio_default_fixture_loop_scope=function"]
LOOP_SETUPS = {
    "not-installed": ["-p", "no:asyncio"],  # and pytest_asyncio cannot be imported
    "plugin-loop": ["-p", "no:asyncio"],
    "asyncio-strict": ["-o", "asyncio_mode=strict", *SCOPE],
    "asyncio-auto": ["-o", "asyncio_mode=auto", *SCOPE],
}

INI = """
[pytest]
filterwarnings =
    error
    error::ResourceWarning
    error::pytest.PytestUnraisableExceptionWarning
"""


@pytest.fixture(params=list(LOOP_SETUPS))
def loop_setup(request: pytest.FixtureRequest, pytester: pytest.Pytester) -> str:
    pytester.makeini(INI)
    name: str = request.param
    if name == "not-installed":  # the subprocess imports from pytester.path first
        pytester.makepyfile(pytest_asyncio="raise ModuleNotFoundError('pytest_asyncio')")
    return name


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in a new process, as a user runs it (in-process runs would re-import zdactivity)."""
    return pytester.runpytest_subprocess(*args, timeout=120)


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_installing_zdactivity_registers_the_plugin() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("zdactivity") == "zdactivity.testing.pytest_plugin", (
        "the pytest11 entry point is missing: reinstall (pip install -e .)"
    )


def imported_after(statement: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with ``prefixes`` that a new interpreter has after ``statement``."""
    listing = f"sorted(m for m in sys.modules if m.startswith({prefixes!r}))"
    code = f"import sys; {statement}; print({listing})"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return eval(result.stdout)  # type: ignore[no-any-return]


def test_importing_zdactivity_does_not_import_pytest() -> None:
    statement = (
        "import zdactivity, zdactivity.client, zdactivity.testing; zdactivity.testing.Emulator"
    )
    assert imported_after(statement, ("pytest", "_pytest")) == []


def test_loading_the_plugin_imports_no_aiohttp_nor_the_emulator() -> None:
    # pytest loads it in every run where zdactivity is installed: it costs little until used.
    loaded = imported_after("import zdactivity.testing.pytest_plugin", ("aiohttp", "zdactivity"))
    assert not [m for m in loaded if m.startswith("aiohttp")]
    assert "zdactivity.testing._emulator" not in loaded and "zdactivity.client" not in loaded


USER_TESTS = """
import asyncio
from pathlib import Path

import pytest

import zdactivity
from zdactivity.testing import Emulator, Fault

pytestmark = pytest.mark.zendesk_emulator(agents=4, activities_per_agent=12, seed=3)
URLS = Path(__file__).with_name("urls.txt")


def record(url: str) -> None:
    with URLS.open("a") as urls:
        urls.write(url + "\\n")


async def test_a_listing_through_retries(
    zendesk_emulator: Emulator, zendesk_client: zdactivity.Client
) -> None:
    record(zendesk_emulator.url)
    zendesk_emulator.inject(Fault.status(503, retry_after=30), Fault.status(500))
    listed = await zendesk_client.activities.list(page_size=5).collect()
    first = zendesk_emulator.agents[0]
    assert [a.id for a in listed] == [a["id"] for a in zendesk_emulator.activities_for(first)]
    assert [r.status for r in zendesk_emulator.requests][:2] == [503, 500]
    assert zendesk_client.stats.retries == 2


@pytest.mark.zendesk_emulator(agents=2)
async def test_the_closest_marker_wins_per_keyword(zendesk_emulator: Emulator) -> None:
    record(zendesk_emulator.url)
    assert len(zendesk_emulator.agents) == 2  # the test's mark
    total = len(zendesk_emulator.activities_for(zendesk_emulator.agents[1], window=False))
    assert total == 12  # the module's mark


async def test_clients_for_other_agents(zendesk_emulator: Emulator, zendesk_client_factory) -> None:
    record(zendesk_emulator.url)
    third = zendesk_emulator.agents[2]
    zd = zendesk_client_factory(2)
    oauth = zendesk_client_factory(third, auth=zdactivity.OAuthToken(third.oauth_token))
    expected = len(zendesk_emulator.activities_for(third))
    assert (await zd.activities.count()).value == expected
    assert (await oauth.activities.count()).value == expected
    assert zd.auth.email == third.email


async def test_it_runs_in_the_loop_of_the_emulator(zendesk_emulator: Emulator) -> None:
    record(zendesk_emulator.url)
    # A server task of this loop answers: the test and the emulator share the loop.
    await asyncio.sleep(0)
    assert zendesk_emulator.in_flight == 0
"""


FAILING_TEST = """
from pathlib import Path


async def test_wrong_count(zendesk_emulator, zendesk_client):
    Path(__file__).with_name("failing-url.txt").write_text(zendesk_emulator.url)
    count = await zendesk_client.activities.count()
    assert count.value == -1
"""

WRONG_MARKER = """
import pytest


@pytest.mark.zendesk_emulator(agents=2, activities=5)
async def test_wrong_marker(zendesk_emulator):
    pass
"""

SYNC_TEST = """
def test_sync_with_a_client(zendesk_client):
    pass
"""

# Tests that use none of the fixtures: the plugin leaves them to whatever else runs them.
OTHER_TESTS = """
def test_plain():
    pass


async def test_async_without_the_fixtures():
    pass
"""

# The test's own async fixture on top of the plugin's (pytest-asyncio's strict mode would
# want @pytest_asyncio.fixture for it: not run there).
OWN_ASYNC_FIXTURE = """
import asyncio

import pytest


@pytest.fixture
async def app(zendesk_client):
    app = {"zd": zendesk_client, "loop": asyncio.get_running_loop()}
    yield app
    assert not app["zd"].closed  # torn down before the client


async def test_app(app):
    assert app["loop"] is asyncio.get_running_loop()
    assert (await app["zd"].activities.count()).value > 0
"""

# anyio's plugin with its asyncio backend (not with pytest-asyncio's auto mode, which claims
# every async test too).
ANYIO_TEST = """
import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_anyio(zendesk_emulator, zendesk_client):
    listed = await zendesk_client.activities.list().collect()
    assert len(listed) == len(zendesk_emulator.activities_for(zendesk_emulator.agents[0]))
"""


PYTEST_ASYNCIO_ABSENT = """
import sys


def test_absent():
    assert "pytest_asyncio" not in sys.modules
"""


def readme_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Testing your code with the emulator", 1)[1].split("\n## ", 1)[0]
    snippets: list[str] = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    return snippets[0]


#: What each loop setup runs, and the outcomes (passed, failed, errors) of those files.
EXPECTED = {
    # the async test without the fixtures: pytest's "not natively supported"
    "plugin-loop": ({"own": OWN_ASYNC_FIXTURE, "anyio": ANYIO_TEST}, (8, 2, 2)),
    "not-installed": (
        {"own": OWN_ASYNC_FIXTURE, "anyio": ANYIO_TEST, "absent": PYTEST_ASYNCIO_ABSENT},
        (9, 2, 2),
    ),
    # the same, pytest-asyncio leaves unmarked tests in strict mode
    "asyncio-strict": ({"anyio": ANYIO_TEST}, (7, 2, 2)),
    # pytest-asyncio runs every async test
    "asyncio-auto": ({"own": OWN_ASYNC_FIXTURE}, (8, 1, 2)),
}


def test_a_users_suite_runs_with_the_fixtures(pytester: pytest.Pytester, loop_setup: str) -> None:
    extra, (passed, failed, errors) = EXPECTED[loop_setup]
    pytester.makepyfile(
        test_user=USER_TESTS,
        test_readme_snippet=readme_snippet(),
        test_failing=FAILING_TEST,
        test_wrong_marker=WRONG_MARKER,
        test_sync=SYNC_TEST,
        test_other=OTHER_TESTS,
        **{f"test_{name}": source for name, source in extra.items()},
    )
    result = run(pytester, "-p", "no:cacheprovider", "-rA", *LOOP_SETUPS[loop_setup])
    result.assert_outcomes(passed=passed, failed=failed, errors=errors)
    result.stdout.fnmatch_lines_random(
        [
            "PASSED test_readme_snippet.py::test_my_sync_survives_a_flaky_zendesk",
            "PASSED test_user.py::test_a_listing_through_retries",
            "PASSED test_user.py::test_the_closest_marker_wins_per_keyword",
            "PASSED test_user.py::test_clients_for_other_agents",
            "PASSED test_user.py::test_it_runs_in_the_loop_of_the_emulator",
            "PASSED test_other.py::test_plain",
            # a failing assertion is a failure of the test, not an error of the fixtures
            "FAILED test_failing.py::test_wrong_count - assert * == -1",
            "ERROR test_wrong_marker.py::test_wrong_marker - Failed: *",
            "@pytest.mark.zendesk_emulator(agents=2, activities=5): Emulator.__init__() got an "
            "unexpected keyword argument 'activities'",
            "ERROR test_sync.py::test_sync_with_a_client - Failed: *",
            "zdactivity's zendesk_emulator fixture serves `async def` tests only (*): make "
            "test_sync_with_a_client an `async def` test",
            *[f"PASSED test_{name}.py::test_*" for name in extra],
        ]
    )
    if loop_setup == "asyncio-auto":
        result.stdout.fnmatch_lines(["PASSED test_other.py::test_async_without_the_fixtures"])
    else:
        result.stdout.fnmatch_lines_random(
            [
                "FAILED test_other.py::test_async_without_the_fixtures - *",
                "*async def functions are not natively supported*",
            ]
        )
    urls = (pytester.path / "urls.txt").read_text().split()
    urls.append((pytester.path / "failing-url.txt").read_text())
    assert len(set(urls)) == 5  # one emulator per test
    assert all(refused(url) for url in urls)  # each stopped with its test, failed or not
