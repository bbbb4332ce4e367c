"""``.ci/pythons``: the CPythons ``.ci/run`` runs the suite on, found the way a machine has them.

Run for real, then on a machine made of a directory: a ``PATH`` holding only the tools the script
uses plus pyenv-like shims that say "not found", and a ``PYENV_ROOT`` whose version directories
hold real interpreters (and a broken one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "pythons"


def run(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(SCRIPT)],
        env=env if env is not None else dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def found(result: subprocess.CompletedProcess[str]) -> list[tuple[str, str]]:
    assert result.returncode == 0, result.stderr
    return [(line.split(" ", 1)[0], line.split(" ", 1)[1]) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def on_this_machine() -> list[tuple[str, str]]:
    return found(run())


@pytest.fixture(scope="module")
def real(on_this_machine: list[tuple[str, str]]) -> str:
    """The real executable (not a shim) of this machine's CPython 3.11."""
    (path,) = [p for version, p in on_this_machine if version == "3.11"]
    return subprocess.run(
        [path, "-c", "import sys; print(sys.executable)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_on_this_machine_every_python_found_runs_as_the_version_it_is_listed_as(
    on_this_machine: list[tuple[str, str]],
) -> None:
    pythons = on_this_machine
    versions = [version for version, _ in pythons]
    assert versions[0] == "3.11"
    assert versions == sorted(versions, key=lambda v: int(v.split(".")[1]))
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in versions  # this one, at least
    for version, path in pythons:
        reported = subprocess.run(
            [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert reported == version


@pytest.fixture
def machine(tmp_path: Path) -> dict[str, str]:
    """A bare PATH (bash, seq, ls, sort) and an empty PYENV_ROOT."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "seq", "ls", "sort"):
        where = shutil.which(tool)
        assert where is not None
        (bin_dir / tool).symlink_to(where)
    (tmp_path / "pyenv" / "versions").mkdir(parents=True)
    return {"PATH": str(bin_dir), "PYENV_ROOT": str(tmp_path / "pyenv"), "HOME": str(tmp_path)}


def shim(path: Path, message: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 127\n")
    path.chmod(0o755)


def test_a_shim_that_says_not_found_is_passed_over_for_pyenvs_newest_working_version(
    machine: dict[str, str], real: str
) -> None:
    bin_dir = Path(machine["PATH"])
    versions = Path(machine["PYENV_ROOT"]) / "versions"
    shim(bin_dir / "python3.11", "pyenv: python3.11: command not found")
    shim(bin_dir / "python3.12", "pyenv: python3.12: command not found")
    for name in ("3.11.2", "3.11.10"):  # 3.11.10 is the newer one, though it sorts first as text
        (versions / name / "bin").mkdir(parents=True)
        (versions / name / "bin" / "python3.11").symlink_to(real)
    shim(versions / "3.11.99" / "bin" / "python3.11", "broken")  # newest, but does not run

    assert found(run(machine)) == [("3.11", str(versions / "3.11.10" / "bin" / "python3.11"))]


def test_a_python_on_path_that_runs_comes_first(machine: dict[str, str], real: str) -> None:
    (Path(machine["PATH"]) / "python3.11").symlink_to(real)
    (Path(machine["PYENV_ROOT"]) / "versions" / "3.11.9" / "bin").mkdir(parents=True)
    (Path(machine["PYENV_ROOT"]) / "versions" / "3.11.9" / "bin" / "python3.11").symlink_to(real)

    assert found(run(machine)) == [("3.11", str(Path(machine["PATH"]) / "python3.11"))]


def test_a_python_listed_under_another_version_is_not_taken(
    machine: dict[str, str], real: str
) -> None:
    # A python3.12 that is really 3.11 (a stray symlink) is no 3.12.
    (Path(machine["PATH"]) / "python3.11").symlink_to(real)
    (Path(machine["PATH"]) / "python3.12").symlink_to(real)

    assert [version for version, _ in found(run(machine))] == ["3.11"]


def test_without_python_311_it_fails_and_says_why(machine: dict[str, str]) -> None:
    shim(Path(machine["PATH"]) / "python3.11", "pyenv: python3.11: command not found")

    result = run(machine)

    assert result.returncode == 1
    assert result.stdout == ""
    assert "CPython 3.11 (the oldest supported) was not found" in result.stderr
