"""The ``zdactivity`` command, run as a subprocess against an emulator served from a thread."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdactivity.testing import Agent, Emulator, Fault

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]


class LiveEmulator:
    """An Emulator running on its own event loop in a thread, so blocking tests can call it."""

    def __init__(self, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.emu = Emulator(**options)
        self.run(self.emu.start())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async def call() -> T:
            return fn(*args, **kwargs)

        result: T = self.run(call())
        return result

    def close(self) -> None:
        self.run(self.emu.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def live() -> Iterator[LiveEmulator]:
    live = LiveEmulator(seed=3, agents=4, activities_per_agent=60, rate_limit=5000)
    yield live
    live.close()


def secrets_of(live: LiveEmulator) -> list[str]:
    return [s for a in live.emu.agents for s in (a.api_token, a.oauth_token, a.refresh_token)]


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENDESK_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def agent_env(live: LiveEmulator, agent: Agent, *, oauth: bool = False) -> dict[str, str]:
    env = {"ZENDESK_URL": live.emu.url}
    if oauth:
        env["ZENDESK_OAUTH_TOKEN"] = agent.oauth_token
    else:
        env.update(ZENDESK_EMAIL=agent.email, ZENDESK_API_TOKEN=agent.api_token)
    return env


def zd(
    live: LiveEmulator | None, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "zdactivity", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base_env(), **(env or {})},
        cwd=ROOT,
        check=False,
    )
    check_output(live, result.stdout, result.stderr)
    return result


def check_output(live: LiveEmulator | None, stdout: str, stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    if live is not None:
        for secret in secrets_of(live):
            assert secret not in stdout
            assert secret not in stderr


def one_error_line(result: subprocess.CompletedProcess[str], code: int, pattern: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("zdactivity: ")]
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert result.stdout == ""


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------- demo


def test_demo_small_account() -> None:
    result = zd(None, "demo", "--agents", "5", "--activities", "25", "--page-size", "10")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"rate limit:\s+700 requests / 60 s .*scaled to \d+ requests / 1 s", out)
    match = re.search(r"activities:\s+(\d+) in (\d+) pages", out)
    assert match is not None
    activities, pages = int(match.group(1)), int(match.group(2))
    assert activities > 100
    assert -(-activities // 10) <= pages <= activities // 10 + 5
    assert re.search(r"requests:\s+\d+ seen by the emulator \(\d+ answered 200; .*429", out)
    assert re.search(r"\d+ sent by zdactivity, \d+ of them retries", out)
    assert re.search(r"throughput:\s+[\d,]+ activities/s", out)
    assert len(out.split("latest:")[1].strip().splitlines()) == 5
    assert result.stderr == ""  # no progress line: stderr is not a TTY


# --------------------------------------------------------------------------- list, show, count


def test_list_all_since_and_limit(live: LiveEmulator) -> None:
    agent = live.emu.agents[0]
    expected = live.call(live.emu.activities_for, agent)
    env = agent_env(live, agent)

    full = zd(live, "list", "--page-size", "25", env=env)
    assert full.returncode == 0, full.stderr
    records = json_lines(full.stdout)
    assert [r["id"] for r in records] == [a["id"] for a in expected]
    first, source = records[0], expected[0]
    assert first["created_at"] == source["created_at"]
    assert first["created_at"].endswith("Z")
    assert first["verb"] == source["verb"] and first["title"] == source["title"]
    assert first["user_id"] == agent.user_id and first["user_name"] == agent.name
    assert first["actor_id"] == source["actor_id"]
    assert first["actor_name"]
    assert first["target"]["kind"] == "ticket"
    assert set(first["object"]) == {"kind", "data"}

    limited = zd(live, "list", "--limit", "7", "--page-size", "5", env=env)
    assert limited.returncode == 0
    assert [r["id"] for r in json_lines(limited.stdout)] == [a["id"] for a in expected[:7]]

    since = expected[9]["created_at"]
    recent = zd(live, "list", "--since", since, env=env)
    assert recent.returncode == 0
    assert [r["id"] for r in json_lines(recent.stdout)] == [
        a["id"] for a in expected if a["created_at"] >= since
    ]

    relative = zd(live, "list", "--since", "40d", "--limit", "3", env=env)
    assert len(json_lines(relative.stdout)) == 3


def test_show_and_count_with_flags_and_oauth(live: LiveEmulator) -> None:
    agent = live.emu.agents[1]
    expected = live.call(live.emu.activities_for, agent)
    wanted = expected[3]
    shown = zd(live, "show", str(wanted["id"]), env=agent_env(live, agent, oauth=True))
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["id"] == wanted["id"] and record["title"] == wanted["title"]

    # Credentials as flags (and no environment) work as well.
    counted = zd(
        live,
        "count",
        "--url",
        live.emu.url,
        "--email",
        agent.email,
        "--api-token",
        agent.api_token,
    )
    assert counted.returncode == 0, counted.stderr
    count = json.loads(counted.stdout)
    assert count["value"] == len(expected)
    assert count["refreshed_at"].endswith("Z")


# --------------------------------------------------------------------------- exit codes


def test_unknown_activity_is_exit_4(live: LiveEmulator) -> None:
    agent = live.emu.agents[0]
    other = live.call(live.emu.activities_for, live.emu.agents[1])[0]["id"]
    one_error_line(zd(live, "show", "1", env=agent_env(live, agent)), 4, r"404.*Not ?found")
    # Another agent's activity is not found either.
    one_error_line(zd(live, "show", str(other), env=agent_env(live, agent)), 4, r"404")


def test_undecodable_response_is_exit_4(live: LiveEmulator) -> None:
    agent = live.emu.agents[2]
    live.call(live.emu.inject, Fault.malformed("not_json"), agent=agent)
    result = zd(live, "count", "--max-tries", "1", env=agent_env(live, agent))
    one_error_line(result, 4, r"zdactivity: ")


def test_bad_credentials_and_non_agents_are_exit_3(live: LiveEmulator) -> None:
    agent = live.emu.agents[0]
    env = {**agent_env(live, agent), "ZENDESK_API_TOKEN": "wrong-token-123"}
    one_error_line(zd(live, "count", env=env), 3, r"authentication failed: HTTP 401")
    env = {"ZENDESK_URL": live.emu.url, "ZENDESK_OAUTH_TOKEN": "not-a-token"}
    one_error_line(zd(live, "list", env=env), 3, r"401")
    end_user = live.call(live.emu.add_end_user, "Some Customer")
    result = zd(
        live,
        "count",
        env={"ZENDESK_URL": live.emu.url, "ZENDESK_OAUTH_TOKEN": end_user.oauth_token},
    )
    one_error_line(result, 3, r"forbidden: HTTP 403")
    assert end_user.oauth_token not in result.stderr


def test_network_failure_is_exit_5(live: LiveEmulator) -> None:
    agent = live.emu.agents[0]
    env = {**agent_env(live, agent), "ZENDESK_URL": f"http://127.0.0.1:{free_port()}"}
    one_error_line(zd(live, "count", "--max-tries", "1", env=env), 5, r"network error")


@pytest.mark.parametrize(
    ("args", "env", "pattern"),
    [
        ((), {"ZENDESK_URL": "http://127.0.0.1:9"}, r"no credentials"),
        ((), {"ZENDESK_EMAIL": "a@example.com", "ZENDESK_API_TOKEN": "t"}, r"no Zendesk account"),
        (("--subdomain", "bad_sub.domain"), {"ZENDESK_OAUTH_TOKEN": "t"}, r"not a valid DNS"),
        (("--subdomain", "acme", "--url", "https://acme.zendesk.com"), {}, r"both given"),
        ((), {"ZENDESK_SUBDOMAIN": "acme", "ZENDESK_URL": "https://a.zendesk.com"}, r"both set"),
        (
            ("--subdomain", "acme"),
            {"ZENDESK_API_TOKEN": "t", "ZENDESK_OAUTH_TOKEN": "u"},
            r"both set",
        ),
        (("--subdomain", "acme"), {"ZENDESK_API_TOKEN": "t"}, r"needs the agent's email"),
        (("--url", "http://example.com"), {"ZENDESK_OAUTH_TOKEN": "t"}, r"plain http"),
        (("--subdomain", "acme", "--since", "yesterday"), {"ZENDESK_OAUTH_TOKEN": "t"}, "since"),
        (
            ("--subdomain", "acme", "--since", "2026-11-01T00:00:00"),
            {"ZENDESK_OAUTH_TOKEN": "t"},
            "timezone",
        ),
    ],
)
def test_usage_errors_are_exit_2(args: tuple[str, ...], env: dict[str, str], pattern: str) -> None:
    result = zd(None, "list", *args, env=env)
    one_error_line(result, 2, pattern)


def test_argparse_errors_are_exit_2_and_do_not_echo_secrets() -> None:
    result = zd(None, "list", "--api-tokn", "SECRET-VALUE-42")
    assert result.returncode == 2
    assert "SECRET-VALUE-42" not in result.stderr
    assert "--api-tokn" in result.stderr
    assert zd(None, "show", "not-a-number").returncode == 2
    assert zd(None, "list", "--page-size", "500").returncode == 2
    assert zd(None).returncode == 2


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    "inherited",
    [
        pytest.param(signal.SIG_DFL, id="default"),
        # What a child of a background job (`pytest &` in a non-interactive shell) inherits.
        pytest.param(signal.SIG_IGN, id="ignored"),
    ],
)
def test_sigint_during_a_request_is_exit_130(
    live: LiveEmulator, inherited: signal.Handlers
) -> None:
    agent = live.emu.agents[3]
    live.call(live.emu.inject, Fault.stall(), path="/api/v2/activities/count", agent=agent)
    before = live.emu.in_flight  # a stalled request of an earlier test may still hang there
    proc = subprocess.Popen(
        [sys.executable, "-m", "zdactivity", "count"],
        env={**base_env(), **agent_env(live, agent)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # The child's SIGINT disposition is set here, not inherited from however pytest runs.
        preexec_fn=_ignore_sigint if inherited is signal.SIG_IGN else _default_sigint,
    )
    deadline = time.monotonic() + 20
    while live.emu.in_flight <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()  # never hang the suite if SIGINT did nothing
    assert proc.returncode == 130, stderr
    check_output(live, stdout, stderr)
    assert stderr.strip() == "zdactivity: interrupted"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# --------------------------------------------------------------------------- tail


class Lines:
    """A subprocess whose stdout lines are collected by a thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zdactivity", *args],
            env={**base_env(), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        self.reader = threading.Thread(
            target=lambda: [self.lines.put(line) for line in stdout], daemon=True
        )
        self.reader.start()

    def take(self, n: int, timeout: float = 15) -> list[dict[str, Any]]:
        got = []
        deadline = time.monotonic() + timeout
        for _ in range(n):
            got.append(json.loads(self.lines.get(timeout=max(0.01, deadline - time.monotonic()))))
        return got

    def stop(self, sig: signal.Signals) -> tuple[int, list[dict[str, Any]], str]:
        self.proc.send_signal(sig)
        assert self.proc.stderr is not None
        stderr = self.proc.stderr.read()
        code = self.proc.wait(timeout=20)
        self.reader.join(timeout=5)
        rest = []
        while not self.lines.empty():
            rest.append(json.loads(self.lines.get()))
        self.proc.stderr.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code, rest, stderr


def test_tail_resumes_from_its_state_file_without_repeats(
    live: LiveEmulator, tmp_path: Path
) -> None:
    emu = live.emu
    agent = live.call(emu.add_agent, "Tail Agent")
    now = datetime.now(UTC).replace(microsecond=0)
    added = [
        live.call(emu.add_activity, agent, created_at=now - timedelta(minutes=m))["id"]
        for m in (3, 2, 1)
    ]
    env = agent_env(live, agent)
    state = str(tmp_path / "tail.db")
    args = ["tail", "--interval", "0.3", "--state", state, "--since", "10m"]

    first = Lines(args, env)
    seen = [r["id"] for r in first.take(3)]
    assert seen == added  # oldest first
    more = [live.call(emu.add_activity, agent)["id"] for _ in range(2)]
    seen += [r["id"] for r in first.take(2)]
    code, rest, stderr = first.stop(signal.SIGINT)
    check_output(live, "", stderr)
    assert code == 130, stderr
    seen += [r["id"] for r in rest]
    assert sorted(seen) == sorted(added + more)

    while_down = [live.call(emu.add_activity, agent)["id"] for _ in range(3)]
    second = Lines(args, env)
    again = [r["id"] for r in second.take(3)]
    time.sleep(1.0)  # a few more polls: nothing else may come
    code, rest, stderr = second.stop(signal.SIGTERM)
    check_output(live, "", stderr)
    assert code == 0, stderr
    again += [r["id"] for r in rest]
    assert sorted(again) == sorted(while_down)
    assert not set(again) & set(seen)


# --------------------------------------------------------------------------- fan-out


def expected_pairs(live: LiveEmulator, keyed: dict[str, Agent]) -> set[tuple[str, int]]:
    return {
        (key, act["id"])
        for key, agent in keyed.items()
        for act in live.call(live.emu.activities_for, agent)
    }


def test_fan_out_csv_and_toml(live: LiveEmulator, tmp_path: Path) -> None:
    a, b, c = live.emu.agents[:3]
    csv_file = tmp_path / "agents.csv"
    csv_file.write_text(
        "key,email,api_token,oauth_token\n"
        f"alpha,{a.email},{a.api_token},\n"
        f"beta,,,{b.oauth_token}\n"
        f"gamma,{c.email},{c.api_token},\n"
    )
    env = {"ZENDESK_URL": live.emu.url}
    result = zd(live, "fan-out", "--agents", str(csv_file), "--concurrency", "2", env=env)
    assert result.returncode == 0, result.stderr
    got = [(r["agent"], r["id"]) for r in json_lines(result.stdout)]
    assert len(got) == len(set(got))
    assert set(got) == expected_pairs(live, {"alpha": a, "beta": b, "gamma": c})
    assert re.search(r"zdactivity: \d+ activities from 3 of 3 agents", result.stderr)

    toml_file = tmp_path / "agents.toml"
    toml_file.write_text(
        f'[[agent]]\nkey = "a"\nemail = "{a.email}"\napi_token = "{a.api_token}"\n\n'
        f'[[agent]]\nkey = "b"\noauth_token = "{b.oauth_token}"\n'
    )
    result = zd(live, "fan-out", "--agents", str(toml_file), "--url", live.emu.url)
    assert result.returncode == 0, result.stderr
    got = [(r["agent"], r["id"]) for r in json_lines(result.stdout)]
    assert set(got) == expected_pairs(live, {"a": a, "b": b}) and len(got) == len(set(got))


def test_fan_out_reports_failed_agents_and_exits_4(live: LiveEmulator, tmp_path: Path) -> None:
    a = live.emu.agents[0]
    path = tmp_path / "agents.csv"
    path.write_text(f"key,oauth_token\ngood,{a.oauth_token}\nbroken,not-a-valid-token\n")
    result = zd(live, "fan-out", "--agents", str(path), env={"ZENDESK_URL": live.emu.url})
    assert result.returncode == 4
    failures = [line for line in result.stderr.splitlines() if "failed" in line]
    assert len(failures) == 1 and "agent broken failed: HTTP 401" in failures[0]
    got = {(r["agent"], r["id"]) for r in json_lines(result.stdout)}
    assert got == expected_pairs(live, {"good": a})


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("missing.csv", None, r"cannot read agents file .*missing\.csv"),
        ("empty.csv", "", r"empty file"),
        ("header.csv", "name,token\nx,y\n", r"line 1: the header"),
        ("nocreds.csv", "key,email,api_token\nx,,\n", r"line 2: no credentials"),
        ("noemail.csv", "key,email,api_token\nx,,SECRET-TOK\n", r"line 2: email is missing"),
        ("dupe.csv", "key,oauth_token\nx,SECRET-A\nx,SECRET-B\n", r"line 3: key 'x' appears twice"),
        ("extra.csv", "key,oauth_token\nx,SECRET-A,more\n", r"line 2: more fields"),
        ("bad.toml", "[[agent]\nkey=", r"not valid TOML"),
        ("tables.toml", 'agent = "x"\n', r"expected \[\[agent\]\] tables"),
        ("none.toml", "[[agent]]\nkey = 'x'\n", r"#1: no credentials"),
        ("binary.csv", b"\xff\xfe\x00key", r"not UTF-8"),
    ],
)
def test_fan_out_bad_agents_files_are_exit_2(
    tmp_path: Path, name: str, content: str | bytes | None, pattern: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = zd(None, "fan-out", "--agents", str(path), env={"ZENDESK_URL": "http://127.0.0.1:9"})
    one_error_line(result, 2, pattern)
    assert "SECRET" not in result.stderr


def test_fan_out_unreadable_agents_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.csv"
    path.write_text("key,oauth_token\nx,y\n")
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: a directory is unreadable as a file
        path = tmp_path / "a-directory.csv"
        path.mkdir()
    result = zd(None, "fan-out", "--agents", str(path), env={"ZENDESK_URL": "http://127.0.0.1:9"})
    one_error_line(result, 2, r"cannot read agents file .*(Permission denied|Is a directory)")


# --------------------------------------------------------------------------- emulator


def test_emulator_command_serves_until_interrupted(live: LiveEmulator) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "zdactivity", "emulator", "--port", str(port), "--agents", "2"],
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = []
        for line in proc.stdout:
            banner.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(banner)
        assert f"http://127.0.0.1:{port}" in text
        assert re.search(r"email=\S+ api_token=\S+ oauth_token=\S+", text)
        export = next(line for line in banner if line.startswith("export "))
        env = dict(pair.split("=", 1) for pair in export.split()[1:])
        assert set(env) == {"ZENDESK_URL", "ZENDESK_EMAIL", "ZENDESK_API_TOKEN"}
        counted = zd(None, "count", env=env)
        assert counted.returncode == 0, counted.stderr
        assert json.loads(counted.stdout)["value"] > 0
        # The port is taken now: a second emulator says so.
        one_error_line(zd(None, "emulator", "--port", str(port)), 2, r"cannot listen")
    finally:
        proc.send_signal(signal.SIGINT)
        _out, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


def _banner(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Ctrl-C"):
            break
    return lines


def _exported(line: str) -> dict[str, str]:
    """The ZENDESK_* variables an ``export ...`` line of the emulator's banner sets."""
    return dict(word.split("=", 1) for word in line.split("export ", 1)[1].split() if "=" in word)


def test_emulator_on_every_interface_prints_lines_that_work(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "zdactivity", "emulator", "--host", "0.0.0.0", "--port", "0"],
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = _banner(proc)
        here = _exported(next(line for line in banner if line.startswith("export ")))
        assert here["ZENDESK_URL"].startswith("http://127.0.0.1:")  # not 0.0.0.0
        counted = zd(None, "count", env=here)
        assert counted.returncode == 0, counted.stderr
        elsewhere = [line for line in banner if line.startswith("From another machine:")]
        assert len(elsewhere) <= 1
        if elsewhere:  # this machine has an address besides loopback
            remote = _exported(elsewhere[0])
            assert remote.pop("ZENDESK_ALLOW_HTTP") == "1"
            # Without the opt-in, plain http off loopback is refused, and the message says how.
            one_error_line(zd(None, "count", env=remote), 2, r"plain http.*--allow-http")
            for opt_in in (["--allow-http"], []):
                env = remote if opt_in else {**remote, "ZENDESK_ALLOW_HTTP": "1"}
                counted = zd(None, "count", *opt_in, env=env)
                assert counted.returncode == 0, counted.stderr
                assert json.loads(counted.stdout)["value"] > 0
    finally:
        proc.send_signal(signal.SIGINT)
        _out, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr


def test_allow_http_is_needed_off_loopback_and_checked() -> None:
    env = {"ZENDESK_URL": "http://192.0.2.1:9", "ZENDESK_OAUTH_TOKEN": "t"}
    one_error_line(zd(None, "count", env=env), 2, r"plain http.*--allow-http")
    one_error_line(zd(None, "count", env={**env, "ZENDESK_ALLOW_HTTP": "maybe"}), 2, "ALLOW_HTTP")
    # Allowed: it gets as far as the network (nothing listens there: refused or timed out).
    result = zd(None, "count", "--allow-http", "--timeout", "0.2", "--max-tries", "1", env=env)
    one_error_line(
        result,
        5,
        r"network error: (could not connect to|cannot connect to|connection refused by|"
        r"the connection to) "
        r"192\.0\.2\.1:9",
    )


def test_global_options_go_before_or_after_the_subcommand(live: LiveEmulator) -> None:
    env = agent_env(live, live.emu.agents[0])
    for args in (["-v", "count"], ["count", "-v"], ["count", "--verbose"]):
        result = zd(live, *args, env=env)
        assert result.returncode == 0, result.stderr
        assert "GET /api/v2/activities/count -> 200" in result.stderr, args
    quiet = zd(live, "count", env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_since_takes_a_plain_date_as_utc_midnight(live: LiveEmulator) -> None:
    agent = live.emu.agents[1]
    expected = live.call(live.emu.activities_for, agent)
    day = expected[len(expected) // 2]["created_at"][:10]
    result = zd(live, "list", "--since", day, env=agent_env(live, agent))
    assert result.returncode == 0, result.stderr
    midnight = f"{day}T00:00:00Z"
    assert [r["id"] for r in json_lines(result.stdout)] == [
        a["id"] for a in expected if a["created_at"] >= midnight
    ]
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("since", "pattern"),
    [
        ("", r"--since is empty"),
        ("   ", r"--since is empty"),
        ("-5d", r"bad --since '-5d': .*never negative"),
        ("-12h", r"never negative"),
        ("2026-02-30", r"bad --since '2026-02-30'"),
    ],
)
def test_since_edges_are_one_clear_line(since: str, pattern: str) -> None:
    env = {"ZENDESK_URL": "http://127.0.0.1:9", "ZENDESK_OAUTH_TOKEN": "t"}
    for command in ("list", "tail"):
        result = zd(None, command, "--since", since, env=env)
        one_error_line(result, 2, pattern)
        assert "usage:" not in result.stderr


def test_since_before_the_30_day_window_warns_once(live: LiveEmulator) -> None:
    agent = live.emu.agents[2]
    env = agent_env(live, agent)
    result = zd(live, "list", "--since", "40d", env=env)
    assert result.returncode == 0, result.stderr
    assert len(json_lines(result.stdout)) == len(live.call(live.emu.activities_for, agent))
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1, result.stderr
    assert re.match(
        r"zdactivity: warning: --since 40d is more than 30 days ago; .*last 30", warnings[0]
    )
    inside = zd(live, "list", "--since", "29d", "--limit", "1", env=env)
    assert inside.returncode == 0 and inside.stderr == ""


def test_tail_help_says_where_it_starts_and_the_interval_default() -> None:
    result = zd(None, "tail", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "starts from NOW" in text
    assert "--since 30d" in text
    assert "(default 60)" in text


def test_tail_starts_from_now_without_since(live: LiveEmulator) -> None:
    emu = live.emu
    agent = live.call(emu.add_agent, "Tail From Now")
    old = [
        live.call(emu.add_activity, agent, created_at=datetime.now(UTC) - timedelta(hours=h))["id"]
        for h in (3, 2)
    ]
    polls = live.call(lambda: len(emu.requests))
    tail = Lines(["tail", "--interval", "0.2"], agent_env(live, agent))
    # Once it has polled, it has chosen where to start: what is added from then on is new.
    deadline = time.monotonic() + 30
    while live.call(lambda: len(emu.requests)) == polls and time.monotonic() < deadline:
        time.sleep(0.05)
    new = [live.call(emu.add_activity, agent)["id"] for _ in range(2)]
    got = [r["id"] for r in tail.take(2)]
    code, rest, stderr = tail.stop(signal.SIGTERM)
    check_output(live, "", stderr)
    assert code == 0, stderr
    assert got + [r["id"] for r in rest] == new
    assert not set(old) & set(got)


async def test_the_demos_figures_are_the_emulators_own_counts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from collections import Counter

    from zdactivity.cli.demo import run_demo

    counts: dict[str, Any] = {}

    def done(emu: Emulator) -> None:
        counts["requests"] = emu.requests
        counts["listable"] = sum(len(emu.activities_for(a)) for a in emu.agents)
        counts["seeded"] = sum(len(emu.activities_for(a, window=False)) for a in emu.agents)

    assert await run_demo(12, 40, 10, on_done=done) == 0
    out = capsys.readouterr().out
    requests = counts["requests"]

    account = re.search(
        r"account:\s+12 agents, 40 activities each over the last 31 days "
        r"\(Zendesk lists 30\); (\d+) faults injected",
        out,
    )
    assert account is not None, out
    injected = int(account.group(1))
    assert counts["seeded"] == 12 * 40
    assert injected == sum(1 for r in requests if r.fault is not None)  # every one fired

    listed = re.search(
        r"activities:\s+(\d+) in (\d+) pages: all of the last 30 days "
        r"\((\d+) older are outside the window\)",
        out,
    )
    assert listed is not None, out
    assert int(listed.group(1)) == counts["listable"]
    assert int(listed.group(2)) == sum(1 for r in requests if r.status == 200)
    assert int(listed.group(3)) == counts["seeded"] - counts["listable"]

    seen = re.search(r"requests:\s+(\d+) seen by the emulator \((\d+) answered 200; (.*)\)", out)
    assert seen is not None, out
    assert int(seen.group(1)) == len(requests)
    statuses = Counter(r.status for r in requests)
    assert int(seen.group(2)) == statuses[200]
    shown, natural = {}, 0
    for part in seen.group(3).split(", "):
        match = re.fullmatch(
            r"(\d+) (\d{3}|resets?)(?: \((\d+) (?:from the rate limit "
            r"itself|not injected)\))?",
            part,
        )
        assert match is not None, part
        shown[match.group(2)] = int(match.group(1))
        natural += int(match.group(3) or 0)
    assert shown == {
        ("resets" if s == 0 and n > 1 else "reset" if s == 0 else str(s)): n
        for s, n in statuses.items()
        if s != 200
    }
    assert natural == sum(1 for r in requests if r.status != 200 and r.fault is None)

    sent = re.search(
        r"(\d+) sent by zdactivity, (\d+) of them retries(?:; aiohttp resent "
        r"(\d+) itself after a reset)?\n",
        out,
    )
    assert sent is not None, out
    by_us, retries, by_aiohttp = int(sent.group(1)), int(sent.group(2)), int(sent.group(3) or 0)
    assert by_us + by_aiohttp == len(requests)  # the two counts add up to what the server saw
    failed = sum(n for s, n in statuses.items() if s != 200)
    # Each failure (an injected fault, or a 429 of the rate limit) was retried once by
    # zdactivity or resent once by aiohttp.
    assert retries + by_aiohttp == failed == injected + natural
    assert re.search(
        r"rate limit:\s+700 requests / 60 s \(Enterprise plan\), scaled to \d+ "
        r"requests / 1 s \(",
        out,
    )


# --------------------------------------------------------------------------- --since, purely

NOW_FIXED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@settings(deadline=None)  # the first example imports the CLI
@given(st.integers(min_value=0, max_value=10**6), st.sampled_from("smhd"), st.booleans())
def test_a_duration_counts_back_and_a_negative_one_is_refused(
    amount: int, unit: str, spaced: bool
) -> None:
    from zdactivity.cli import UsageError, parse_since

    text = f"{amount}{' ' if spaced else ''}{unit}"
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    try:
        expected: datetime | None = NOW_FIXED - timedelta(**{units[unit]: amount})
    except OverflowError:
        expected = None
    if expected is None:
        with pytest.raises(UsageError, match="too far back"):
            parse_since(text, now=NOW_FIXED)
    else:
        assert parse_since(text, now=NOW_FIXED) == expected
    with pytest.raises(UsageError, match="never negative"):
        parse_since(f"-{text}", now=NOW_FIXED)


@settings(deadline=None)  # the first example imports the CLI
@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_a_plain_date_is_utc_midnight(day: date) -> None:
    from zdactivity.cli import parse_since

    assert parse_since(day.isoformat(), now=NOW_FIXED) == datetime.combine(day, dt_time(), UTC)


@settings(deadline=None)  # the first example imports the CLI
@given(st.text(alphabet=" \t", max_size=3))
def test_an_empty_since_is_refused(blank: str) -> None:
    from zdactivity.cli import UsageError, parse_since

    with pytest.raises(UsageError, match="--since is empty"):
        parse_since(blank)
