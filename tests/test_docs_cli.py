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
