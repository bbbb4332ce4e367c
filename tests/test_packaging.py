"""The wheel a release ships: the package with py.typed, its three runtime dependencies, the
``zdactivity`` command, the supported Pythons, and nothing else (no tests, benchmarks, examples).

The wheel is built from this checkout with pip, as ``pip install .`` would (``.ci/run`` also
builds the sdist, checks both with twine, and runs the wheel in a clean environment).
"""

from __future__ import annotations

import email.parser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import zdactivity

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (path,) = out.glob("zdactivity-*.whl")
    return zipfile.ZipFile(path)


def metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.parser.Parser().parsestr(wheel.read(name).decode())


def test_the_wheel_holds_the_package_with_py_typed_and_nothing_else(
    wheel: zipfile.ZipFile,
) -> None:
    names = wheel.namelist()
    assert "zdactivity/py.typed" in names
    sources = {str(p.relative_to(ROOT)) for p in (ROOT / "zdactivity").rglob("*.py")}
    assert sources <= set(names)  # every module, the emulator and the CLI included
    strays = [n for n in names if not n.startswith("zdactivity/") and ".dist-info/" not in n]
    assert strays == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_wheel_declares_version_dependencies_and_pythons(wheel: zipfile.ZipFile) -> None:
    meta = metadata(wheel)
    assert meta["Version"] == zdactivity.__version__
    assert meta["Requires-Python"] == ">=3.11"
    unconditional = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert sorted(r.split(">")[0].split("=")[0] for r in unconditional) == [
        "aiohttp",
        "backoff",
        "msgspec",
    ]
    classifiers = meta.get_all("Classifier") or []
    for minor in (11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Typing :: Typed" in classifiers
    assert {"redis", "test", "lint", "bench"} <= set(meta.get_all("Provides-Extra") or [])


def test_the_wheel_installs_the_zdactivity_command(wheel: zipfile.ZipFile) -> None:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    entry_points = wheel.read(name).decode()
    assert "[console_scripts]\nzdactivity = zdactivity.cli:main" in entry_points
