"""Every shell block of the README works as written, after the README's two setup commands.

Each ```bash block is either run here, as written, from a directory laid out like the project
after its setup (``examples/`` and a ``.venv`` that is the environment running these tests), or
marked in the README just above it with ``<!-- not run by tests/test_docs_shell.py: REASON -->``,
where REASON is one of ``NOT_RUN_HERE``, each checked: the setup commands are run verbatim by
``.ci/run`` on a fresh clone; a block that needs a real Zendesk account names one; a block that
runs until stopped starts a command that does (``emulator``, ``tail``, ``worker``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"<!-- not run by tests/test_docs_shell\.py: (.+?) -->\n")
SETUP = "setup, run verbatim by .ci/run"
REAL_ACCOUNT = "needs a real Zendesk account"
UNTIL_STOPPED = "runs until stopped"
NOT_RUN_HERE = (SETUP, REAL_ACCOUNT, UNTIL_STOPPED)


def shell_blocks() -> list[tuple[str | None, str]]:
    """Each bash block of the README with the reason it is not run here, if it is marked."""
    readme = (ROOT / "README.md").read_text()
    return [
        (reason or None, block)
        for _, reason, block in re.findall(
            r"(<!-- not run by tests/test_docs_shell\.py: (.+?) -->\n\n?)?^```bash\n(.*?)^```",
            readme,
            re.S | re.M,
        )
    ]


def ci_commands() -> dict[str, str]:
    lines = (ROOT / ".ci" / "commands").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def test_every_mark_names_a_known_reason() -> None:
    readme = (ROOT / "README.md").read_text()
    reasons = MARK.findall(readme)
    assert set(reasons) <= set(NOT_RUN_HERE)
    # Every mark sits right above a block (a mark elsewhere would excuse nothing).
    assert len(reasons) == sum(reason is not None for reason, _ in shell_blocks())


def test_the_setup_commands_are_the_ones_ci_runs_verbatim() -> None:
    setup = [block.strip() for reason, block in shell_blocks() if reason == SETUP]
    commands = ci_commands()
    assert setup == [commands["DEMO_COMMAND"], commands["TEST_COMMAND"]]
    script = (ROOT / ".ci" / "run").read_text()
    for name in ("DEMO_COMMAND", "TEST_COMMAND"):
        variable = name.lower()
        assert f"{variable}=$(sed -n 's/^{name}: *//p' .ci/commands)" in script
        assert f'bash -c "${variable}"' in script


def test_blocks_that_need_a_real_account_name_one() -> None:
    for reason, block in shell_blocks():
        if reason == REAL_ACCOUNT:
            assert re.search(r"ZENDESK_SUBDOMAIN|--subdomain|\.zendesk\.com", block), block
            assert "127.0.0.1" not in block and "localhost" not in block, block


def test_blocks_that_run_until_stopped_start_a_command_that_does() -> None:
    for reason, block in shell_blocks():
        if reason == UNTIL_STOPPED:
            assert re.search(r"zdactivity (emulator|tail|worker)\b", block), block


def runnable_blocks() -> list[str]:
    return [block for reason, block in shell_blocks() if reason is None]


def test_the_readme_has_shell_blocks_to_run() -> None:
    assert any("examples/" in block for block in runnable_blocks())


@pytest.fixture
def project_layout(tmp_path: Path) -> Path:
    """A directory like the project after the README's setup: its ``.venv`` is the environment
    running these tests (with zdactivity installed), beside the project's files."""
    for name in ("examples", "README.md", "pyproject.toml"):
        (tmp_path / name).symlink_to(ROOT / name)
    venv = Path(sys.prefix)
    if venv != Path(sys.base_prefix):
        (tmp_path / ".venv").symlink_to(venv)
    else:  # not a virtual environment: the interpreter itself stands in
        (tmp_path / ".venv" / "bin").mkdir(parents=True)
        (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    return tmp_path


@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: b.splitlines()[0][:60])
def test_shell_block_runs_as_written(block: str, project_layout: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENDESK_", "PYTHON"))}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=project_layout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    # Every command of the block printed something (the examples each print a summary).
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(result.stdout.splitlines()) >= len(commands), result.stdout
