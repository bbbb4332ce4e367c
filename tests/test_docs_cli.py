"""The README's commands, .ci/run, and the zdactivity command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ci_commands() -> dict[str, str]:
    lines = (ROOT / ".ci" / "commands").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def test_readme_opens_with_the_demo_and_test_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    commands = ci_commands()
    assert blocks[:2] == [commands["DEMO_COMMAND"], commands["TEST_COMMAND"]]
    assert "zdactivity demo" in blocks[0]
    assert "pytest" in blocks[1]


def test_ci_runs_the_readme_test_command_and_the_linters() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in script
    assert "TEST_COMMAND" in script
    for check in ("ruff check", "ruff format --check", "mypy --strict zdactivity"):
        assert check in script


def test_demo_prints_a_summary() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zdactivity", "demo", "--agents", "2", "--activities", "120"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "activities:" in out
    match = re.search(r"activities:\s+(\d+) in (\d+) pages", out)
    assert match is not None
    assert int(match.group(1)) > 100
    activities, pages = int(match.group(1)), int(match.group(2))
    # Two agents' streams, 100 per page: each agent's last page is partly filled (or empty).
    assert -(-activities // 100) <= pages <= activities // 100 + 2
    assert re.search(r"agents:\s+2 ", out)
    assert "latest:" in out
    assert "Traceback" not in result.stderr


def test_usage_error_exit_code() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zdactivity", "no-such-command"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2


_OPTION = re.compile(r"(?<![\w-])(--?[a-z][a-z-]*)")


def readme_cli_summary() -> dict[str, set[str]]:
    """Each subcommand's options as the README's command-line summary lists them: its own
    line(s), plus the groups of shared options whose heading names it (or every command)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The command line\n", 1)[1]
    block = re.search(r"^```\n(.*?)^```", section, re.S | re.M)
    assert block is not None
    own: dict[str, set[str]] = {}
    shared: list[tuple[str, set[str]]] = []  # (heading, its options)
    current: set[str] | None = None
    for line in block.group(1).splitlines():
        command = re.match(r"zdactivity ([a-z][a-z-]*)", line)
        if not line.strip() or line.startswith("zdactivity -"):  # the top level's own
            current = None
        elif command:
            current = own.setdefault(command.group(1), set())
            current.update(_OPTION.findall(line[command.end() :]))
        elif line.endswith(":"):
            current = set()
            shared.append((line, current))
        else:
            assert current is not None, f"a line the test cannot place: {line!r}"
            current.update(_OPTION.findall(line))
    documented = {}
    for name, options in own.items():
        documented[name] = set(options)
        for heading, group in shared:
            if "every command" in heading or re.search(rf"[(, ]{re.escape(name)}[,)]", heading):
                documented[name] |= group
    return documented


def test_the_readme_lists_every_option_of_every_command() -> None:
    # The README's summary is compared with the parser itself, so neither can drift.
    import argparse

    from zdactivity.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    documented = readme_cli_summary()
    assert set(documented) == set(sub.choices)
    for name, command in sub.choices.items():
        known = {option for action in command._actions for option in action.option_strings}
        for action in command._actions:
            if action.option_strings:  # listed, by one of its spellings (-v or --verbose)
                assert set(action.option_strings) & documented[name], (name, action.option_strings)
        assert documented[name] <= known, (name, documented[name] - known)  # nothing stale
    assert "--version" in {o for a in parser._actions for o in a.option_strings}
    assert "zdactivity --version" in (ROOT / "README.md").read_text()
