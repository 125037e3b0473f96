"""The in-memory benchmark still runs (a smoke run; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def test_bench_inmemory_quick_prints_every_table() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_inmemory.py"), "--quick"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    out = result.stdout
    for heading in ("copyMode reference", "copyMode freeze", "Bulk verbs", "Eviction", "memory per dataset"):
        assert heading in out
    assert "Traceback" not in result.stderr


def test_bench_formats_quick_prints_every_format() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_formats.py"), "--quick"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    for row in ("JSON dict", "YAML dict", "npy array", "Parquet table", "FITS table"):
        assert row in result.stdout
    assert "Traceback" not in result.stderr


def test_bench_bulk_prints_every_row() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_bulk.py"), "--n", "200"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    for row in ("file system floor", "putMany", "put inside one transaction", "x floor"):
        assert row in result.stdout
    assert "Traceback" not in result.stderr


def test_bench_query_quick_prints_every_query() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_query.py"), "--quick"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    for row in (
        "range query, 1%",
        "findFirst through",
        "queryDataIds",
        "one run",
        "through the chain",
        "x floor",
    ):
        assert row in result.stdout
    assert "Traceback" not in result.stderr


def test_bench_map_quick_prints_every_row() -> None:
    import pytest

    pytest.importorskip("distributed")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_map.py"), "--quick"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    for row in (
        "function alone, 2 processes (floor)",
        "Butler.map serial",
        "ideal: serial map / 2-process speedup",
        "Butler.map Dask, 2 workers",
        "x serial map",
        "synthetic merge",
        "1 per 10,000",
        "datasets/s",
        "load average",
    ):
        assert row in result.stdout
    assert "Traceback" not in result.stderr


def test_bench_cli_quick_prints_both_targets() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_cli.py"), "--runs", "1"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    for row in ("databutler --help", "databutler query-datasets (100 datasets)", "floor:", "≤ 2x"):
        assert row in result.stdout
    assert "Traceback" not in result.stderr


def test_bench_ingest_quick_prints_every_mode() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_ingest.py"), "--n", "100"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    for row in (
        "copy ",
        "shutil.copyfile",
        "hardlink",
        "os.link",
        "symlink",
        "os.symlink",
        "x floor",
        "x work",
        "load average",
        "Where a link ingest's time goes",
        "link alone (the floor)",
        "+ stat, read and hash each file",
        "(the work floor)",
        "its schema, raw sqlite3",
        "target: 3x the floor",
        "(databutler's Python)",
    ):
        assert row in result.stdout
    assert len([line for line in result.stdout.splitlines() if line.endswith(("ok", "MISSED"))]) == 3
    pieces = result.stdout.split("Where a link ingest's time goes")[1].splitlines()[2:]
    assert len(pieces) == 7 and all(len(line.split()) >= 3 for line in pieces)
    assert "Traceback" not in result.stderr


def test_bench_export_quick_prints_every_row() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_export.py"), "--quick", "--n", "50"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    for row in (
        "shutil.copytree",
        "export to a folder",
        "import from a zip",
        "export + import, folder",
        "x copytree",
        "work floor",
        "x floor",
        "load average",
        "export + import, folder, hard links",
    ):
        assert row in result.stdout
    assert "Traceback" not in result.stderr


def test_bench_compare_databutler_worker_runs_every_workload() -> None:
    """The LSST side needs `make bench-compare`'s environment; databutler's runs here."""
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_compare.py"), "--worker", "databutler", "--quick", "--datasets", "600"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    figures = json.loads(result.stdout.splitlines()[-1])
    assert set(figures) == {"put", "puts in one transaction", "warm get", "cold get", "1 MiB array put",
                            "1 MiB array get (cold)", "range query (1%)", "in-memory datastore put",
                            "in-memory datastore get"}  # fmt: skip
    assert all(value > 0 for value in figures.values())
