"""Shared helpers: medians of round-robin runs, the machine description, optional imports."""

from __future__ import annotations

import gc
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

BENCH_EXTRA = ("httpx", "pydantic", "zenpy", "matplotlib", "psutil")


def missing_extra() -> list[str]:
    """The packages of the ``bench`` extra that are not installed."""
    missing = []
    for name in BENCH_EXTRA:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def round_robin(
    cases: dict[str, Callable[[], Any]], runs: int
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Run each case ``runs`` times, interleaved so that drift hits all cases alike.

    Returns the wall seconds of every run per case, and each case's last result.
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    results: dict[str, Any] = {}
    for _ in range(runs):
        for name, fn in cases.items():
            gc.collect()
            started = time.perf_counter()
            results[name] = fn()
            samples[name].append(time.perf_counter() - started)
    return samples, results


def median(values: list[float]) -> float:
    return statistics.median(values)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    versions = {}
    for name in ("zdactivity", "aiohttp", "msgspec", *BENCH_EXTRA, "requests"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 0
    return {
        "cpu": _cpu_model(),
        "cores": str(cores),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }
