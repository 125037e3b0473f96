"""Benchmark registry queries against the same query hand-written in SQL (the floor).

N datasets of ``raw`` over (instrument, visit, detector), 100 detectors per visit, in three
runs searched through the chain ``all`` = [run3, run2, run1]: run1 holds every data ID
(half of N), run2 the first 60% of the visits again, run3 the first 40%. Visit records carry
a band (g, r, i, z in turn). Timed, each as ms per query and as a ratio to its floor, the
same query run through ``sqlite3`` on the same SQLite file (rows fetched, nothing built):

- a range query (``visit >= a AND visit < b`` through the chain) returning 1% of N;
- a findFirst query through the chain over visits all three runs hold;
- queryDataIds("visit") with a record-field condition (``visit.band = 'r'``);
- one findDataset by data ID, in one run and through the chain.

Prints a table; asserts nothing. Run: ``.venv/bin/python benchmarks/bench_query.py
[--quick] [--datasets N ...]`` (default 100,000 and 1,000,000; --quick: 3,000).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from databutler import DatasetType, SqlRegistry

DETECTORS = 100
BANDS = "griz"


def timed(work: Callable[[], Any], repeat: int) -> float:
    """Return the best of ``repeat`` runs of ``work``, in ms."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def fill(registry: SqlRegistry, n: int) -> tuple[int, float]:
    """Fill ``registry`` with about ``n`` datasets; return the number of visits and µs/dataset."""
    storageClass = registry.storageClassFactory.getStorageClass("StructuredDataDict")
    registry.registerDatasetType(DatasetType("raw", ("instrument", "visit", "detector"), storageClass))
    registry.insertDimensionData("instrument", {"instrument": "HSC"})
    visits = max(n // 2 // DETECTORS, 10)
    registry.insertDimensionData(
        "visit",
        [{"instrument": "HSC", "visit": v, "band": BANDS[v % 4], "physical_filter": "HSC-" + BANDS[v % 4]}
         for v in range(visits)],
    )  # fmt: skip
    start = time.perf_counter()
    count = 0
    for run, share in (("run1", 1.0), ("run2", 0.6), ("run3", 0.4)):
        registry.registerRun(run)
        top = int(visits * share)
        for first in range(0, top, 50):
            ids = [
                {"instrument": "HSC", "visit": v, "detector": d}
                for v in range(first, min(first + 50, top))
                for d in range(DETECTORS)
            ]
            registry.addDatasets("raw", ids, run)
            count += len(ids)
    registry.setCollectionChain("all", ["run3", "run2", "run1"])
    return visits, (time.perf_counter() - start) / count * 1e6


FLOOR_RANGE = """
SELECT d.id, d.run_id, d.data_id FROM dataset d JOIN dataset_dimension v
  ON v.dataset_id = d.id AND v.dimension = 'visit'
WHERE d.dataset_type_id = 1 AND d.run_id IN (3, 2, 1) AND v.int_value >= ? AND v.int_value < ?
"""
FLOOR_FIRST = """
SELECT id, run_id, data_id FROM (
  SELECT d.id, d.run_id, d.data_id,
         row_number() OVER (PARTITION BY d.data_id ORDER BY d.run_id DESC) AS k
  FROM dataset d JOIN dataset_dimension v ON v.dataset_id = d.id AND v.dimension = 'visit'
  WHERE d.dataset_type_id = 1 AND d.run_id IN (3, 2, 1) AND v.int_value >= ? AND v.int_value < ?
) WHERE k = 1
"""
FLOOR_DATA_IDS = """
SELECT DISTINCT v.int_value FROM dataset d
  JOIN dataset_dimension v ON v.dataset_id = d.id AND v.dimension = 'visit'
  JOIN dimension_visit r ON r.instrument = 'HSC' AND r.visit = v.int_value
WHERE d.dataset_type_id = 1 AND d.run_id IN (3, 2, 1) AND r.band = 'r' ORDER BY v.int_value
"""
FLOOR_LOOKUP = (
    "SELECT id, run_id FROM dataset WHERE dataset_type_id = 1 AND run_id IN (3, 2, 1) AND data_id = ?"
)


def bench(n: int, folder: Path) -> list[tuple[str, float, float, int]]:
    """Fill a SQLite registry to about ``n`` datasets; time each query and its floor."""
    path = folder / f"registry{n}.sqlite3"
    rows: list[tuple[str, float, float, int]] = []
    with SqlRegistry(f"sqlite:///{path}", create=True) as registry:
        visits, load = fill(registry, n)
        total = registry.countDatasets("raw", "all")
        print(f"{total:,} datasets loaded at {load:.1f} µs/dataset through addDatasets")
        floor = sqlite3.connect(path)
        span = max(total // 100 // DETECTORS, 1)
        a = visits - span  # only run1 holds these: span * 100 datasets, 1%
        firstA = 0  # all three runs hold these
        repeat = 5

        def rangeQuery() -> int:
            return len(registry.queryDatasets("raw", "all", f"visit >= {a} AND visit < {a + span}"))

        def rangeFloor() -> int:
            return len(floor.execute(FLOOR_RANGE, (a, a + span)).fetchall())

        def firstQuery() -> int:
            where = f"visit >= {firstA} AND visit < {firstA + span}"
            return len(registry.queryDatasets("raw", "all", where, findFirst=True))

        def firstFloor() -> int:
            return len(floor.execute(FLOOR_FIRST, (firstA, firstA + span)).fetchall())

        def dataIdQuery() -> int:
            return len(
                list(registry.queryDataIds("visit", "visit.band = 'r'", datasets="raw", collections="all"))
            )

        def dataIdFloor() -> int:
            return len(floor.execute(FLOOR_DATA_IDS).fetchall())

        for name, query, floorQuery in (
            ("range query, 1% (through the chain)", rangeQuery, rangeFloor),
            ("findFirst through the 3-run chain", firstQuery, firstFloor),
            ("queryDataIds visit.band = 'r'", dataIdQuery, dataIdFloor),
        ):
            found, expected = query(), floorQuery()
            assert found == expected, (name, found, expected)
            rows.append((name, timed(query, repeat), timed(floorQuery, repeat), found))
        lookups = 2000
        picks = [((i * 7919) % visits, i % DETECTORS) for i in range(lookups)]
        texts = [f'{{"detector":{d},"instrument":"HSC","visit":{v}}}' for v, d in picks]

        def lookupRun() -> None:
            for v, d in picks:
                registry.findDataset("raw", {"instrument": "HSC", "visit": v, "detector": d}, "run1")

        def lookupChain() -> None:
            for v, d in picks:
                registry.findDataset("raw", {"instrument": "HSC", "visit": v, "detector": d}, "all")

        def lookupFloor() -> None:
            for text in texts:
                floor.execute(FLOOR_LOOKUP, (text,)).fetchall()

        floorMs = timed(lookupFloor, 3) / lookups
        rows.append(("findDataset by data ID, one run", timed(lookupRun, 3) / lookups, floorMs, 1))
        rows.append(
            ("findDataset by data ID, through the chain", timed(lookupChain, 3) / lookups, floorMs, 1)
        )
        floor.close()
    return rows


def main() -> None:
    """Parse the arguments, run the benchmark at each size, print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 datasets only (a smoke run)")
    parser.add_argument("--datasets", type=int, nargs="*", default=[100_000, 1_000_000])
    args = parser.parse_args()
    sizes = [3000] if args.quick else args.datasets
    table = Table(title="Registry queries (SQLite) against hand-written SQL through sqlite3")
    for column in ("N", "query", "rows", "databutler ms", "SQL floor ms", "x floor"):
        table.add_column(column, justify="left" if column == "query" else "right")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for name, ms, floorMs, found in bench(n, Path(tmp)):
                table.add_row(
                    f"{n:,}", name, f"{found:,}", f"{ms:.3f}", f"{floorMs:.3f}", f"{ms / floorMs:.1f}"
                )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
