"""The public surface: page one of the README at the top level, the rest in named submodules."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import zdactivity

SUBMODULES = [
    "auth",
    "checkpoint",
    "client",
    "errors",
    "fanout",
    "fleet",
    "models",
    "otel",
    "pagination",
    "protocol",
    "ratelimit",
    "redis",
    "retry",
    "sideloads",
    "transport",
    "watch",
    "testing",
]


def test_every_top_level_name_resolves_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in zdactivity.__all__:
            assert getattr(zdactivity, name) is not None


@pytest.mark.parametrize("module", SUBMODULES)
def test_every_submodule_exports_what_it_names(module: str) -> None:
    mod = importlib.import_module(f"zdactivity.{module}")
    for name in mod.__all__:
        assert hasattr(mod, name), f"zdactivity.{module}.{name}"


@pytest.mark.parametrize("name", sorted(zdactivity._MOVED))
def test_a_name_that_moved_still_works_and_says_where_it_lives(name: str) -> None:
    module = zdactivity._MOVED[name]
    with pytest.warns(DeprecationWarning, match=f"zdactivity.{module}.{name}"):
        old = getattr(zdactivity, name)
    assert old is getattr(importlib.import_module(f"zdactivity.{module}"), name)
    assert name not in zdactivity.__all__


def test_submodules_are_reachable_from_a_plain_import() -> None:
    code = (
        "import zdactivity; "
        "print(zdactivity.fleet.Fleet.__name__,"
        " zdactivity.checkpoint.SQLiteCheckpointStore.__name__,"
        " zdactivity.client.Client is zdactivity.Client)"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["Fleet", "SQLiteCheckpointStore", "True"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        zdactivity.Nope  # type: ignore[attr-defined]  # noqa: B018
