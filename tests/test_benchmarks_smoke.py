"""Smoke run of the benchmark suite (``python -m benchmarks --quick``) into a temp dir.

The ``test`` extra installs the ``bench`` extra (httpx, pydantic, zenpy, matplotlib, psutil), so
CI runs it; it is skipped only in an environment installed without them. The full run is not part
of the tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import missing_extra  # noqa: E402

MISSING = missing_extra()


@pytest.mark.skipif(
    bool(MISSING),
    reason=f"the bench extra is not installed (missing: {', '.join(MISSING)}); "
    "pip install -e '.[bench]'",
)
def test_quick_benchmark_run_writes_a_results_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "| # | Figure | zdactivity |" in results
    for figure in ("throughput", "CPU per", "fan-out", "rate-limit", "peak RSS", "Read-ahead"):
        assert figure in results
    # CPU cold and warm against the decode floor; fan-out against the aiohttp floor; both
    # pydantic peers; each figure says what bounds it; the read-ahead figures in the summary.
    for row in ("`.actor`), warm", "`.actor`), cold", "aiohttp floor", "users deferred"):
        assert row in results
    assert results.count("**Bounded by:**") >= 5
    assert "## R. Read-ahead" in results and "| R | read-ahead, 50 ms latency" in results
    assert "Quick (smoke) run" in results
    assert (tmp_path / "fanout.png").stat().st_size > 1000
