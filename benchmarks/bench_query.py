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

Each floor is the fastest SQL found for the query by hand: for findFirst, ``GROUP BY`` data
ID with ``min`` of the run's rank (SQLite takes the other columns from the row holding the
minimum), about twice as fast here as ``row_number() OVER (PARTITION BY data_id ...)``; for
queryDataIds, the visit records with the band, each kept if a dataset ``EXISTS`` for it
(a few hundred µs), rather than the distinct visits of every dataset joined with its record
(about 50 ms at 100,000 datasets).

Each query and its floor are timed in turn, best of several runs (see `interleaved`). For the
queries that return refs, the *objects* column adds to the floor the making of its rows into
the least a user needs, one slotted object per row (`MinimalRef`): what no query returning
Python objects can skip.

Prints a table, with the load average under each size; asserts nothing. Run: ``.venv/bin/python benchmarks/bench_query.py
[--quick] [--datasets N ...] [--load direct|registry]`` (default 100,000 and 1,000,000;
--quick: 3,000). How the registry is filled: see `fill`.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
import uuid
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
    return interleaved([work], repeat)[0]


def interleaved(works: list[Callable[[], Any]], repeat: int) -> list[float]:
    """Return the best of ``repeat`` runs of each of ``works``, in ms, run in turn.

    On a machine shared with other work, a query and its floor timed in turn meet the same
    load; timed one after the other, one may get a quiet minute and the other a busy one.
    """
    best = [float("inf")] * len(works)
    for _ in range(repeat):
        for index, work in enumerate(works):
            start = time.perf_counter()
            work()
            best[index] = min(best[index], time.perf_counter() - start)
    return [b * 1e3 for b in best]


class MinimalRef:
    """The least a query's user needs of one dataset: its type, data ID, UUID and run, in slots."""

    __slots__ = ("dataId", "datasetType", "id", "run")

    def __init__(self, datasetType: str, dataId: dict[str, Any], id: uuid.UUID, run: int) -> None:
        self.datasetType, self.dataId, self.id, self.run = datasetType, dataId, id, run


def minimalRefs(rows: list[tuple[Any, ...]]) -> list[MinimalRef]:
    """Build a `MinimalRef` per floor row (id, run id, data ID): UUID, data IDs by one ``json.loads``."""
    dataIds = json.loads("[" + ",".join(row[2] for row in rows) + "]")
    return [MinimalRef("raw", d, uuid.UUID(row[0]), row[1]) for row, d in zip(rows, dataIds, strict=True)]


def fill(registry: SqlRegistry, path: Path, n: int, load: str) -> tuple[int, float]:
    """Fill ``registry`` (the SQLite file ``path``) with about ``n`` datasets.

    Return the number of visits and µs per dataset loaded. ``load="registry"`` adds them
    through `SqlRegistry.addDatasets` in batches of 5,000 data IDs; ``load="direct"`` (the
    default: a million datasets in well under a minute) writes the same rows straight into
    ``dataset`` and ``dataset_dimension`` with ``sqlite3`` in one transaction: ids are
    consecutive UUIDs, data IDs the registry's canonical JSON, one dimension row per key. The
    dataset type, runs, chain and visit records go through the registry either way, and the
    benchmark checks that the registry counts every dataset loaded.
    """
    storageClass = registry.storageClassFactory.getStorageClass("StructuredDataDict")
    registry.registerDatasetType(DatasetType("raw", ("instrument", "visit", "detector"), storageClass))
    registry.insertDimensionData("instrument", {"instrument": "HSC"})
    visits = max(n // 2 // DETECTORS, 10)
    registry.insertDimensionData(
        "visit",
        [{"instrument": "HSC", "visit": v, "band": BANDS[v % 4], "physical_filter": "HSC-" + BANDS[v % 4]}
         for v in range(visits)],
    )  # fmt: skip
    shares = (("run1", 1.0), ("run2", 0.6), ("run3", 0.4))
    for run, _ in shares:
        registry.registerRun(run)
    registry.setCollectionChain("all", ["run3", "run2", "run1"])
    typeId = registry.datasetTypes.lookupDatasetType("raw")[0]  # type: ignore[index]
    start = time.perf_counter()
    count = 0
    if load == "registry":
        for run, share in shares:
            top = int(visits * share)
            for first in range(0, top, 50):
                ids = [
                    {"instrument": "HSC", "visit": v, "detector": d}
                    for v in range(first, min(first + 50, top))
                    for d in range(DETECTORS)
                ]
                registry.addDatasets("raw", ids, run)
                count += len(ids)
    else:
        base = uuid.uuid4().int & ~((1 << 64) - 1)
        connection = sqlite3.connect(path)
        with connection:
            for run, share in shares:
                runId = registry.datasetTypes.runId(run)
                pairs = [(v, d) for v in range(int(visits * share)) for d in range(DETECTORS)]
                ids = [f"{base + count + i:032x}" for i in range(len(pairs))]
                connection.executemany(
                    "INSERT INTO dataset (id, dataset_type_id, run_id, data_id) VALUES (?, ?, ?, ?)",
                    [
                        (i, typeId, runId, f'{{"detector":{d},"instrument":"HSC","visit":{v}}}')
                        for i, (v, d) in zip(ids, pairs, strict=True)
                    ],
                )
                connection.executemany(
                    "INSERT INTO dataset_dimension (dataset_id, dimension, int_value, str_value) "
                    "VALUES (?, ?, ?, ?)",
                    [
                        row
                        for i, (v, d) in zip(ids, pairs, strict=True)
                        for row in (
                            (i, "detector", d, None),
                            (i, "instrument", None, "HSC"),
                            (i, "visit", v, None),
                        )
                    ],
                )
                count += len(pairs)
        connection.close()
    return visits, (time.perf_counter() - start) / count * 1e6


FLOOR_RANGE = """
SELECT d.id, d.run_id, d.data_id FROM dataset d JOIN dataset_dimension v
  ON v.dataset_id = d.id AND v.dimension = 'visit'
WHERE d.dataset_type_id = 1 AND d.run_id IN (3, 2, 1) AND v.int_value >= ? AND v.int_value < ?
"""
FLOOR_FIRST = """
SELECT d.id, d.run_id, d.data_id, min(CASE d.run_id WHEN 3 THEN 0 WHEN 2 THEN 1 WHEN 1 THEN 2 END)
FROM dataset d JOIN dataset_dimension v ON v.dataset_id = d.id AND v.dimension = 'visit'
WHERE d.dataset_type_id = 1 AND d.run_id IN (3, 2, 1) AND v.int_value >= ? AND v.int_value < ?
GROUP BY d.data_id
"""
FLOOR_DATA_IDS = """
SELECT r.visit FROM dimension_visit r WHERE r.band = 'r' AND EXISTS (
  SELECT 1 FROM dataset_dimension v JOIN dataset d ON d.id = v.dataset_id
  JOIN dataset_dimension i ON i.dataset_id = d.id AND i.dimension = 'instrument'
  WHERE v.dimension = 'visit' AND v.int_value = r.visit AND i.str_value = r.instrument
    AND d.dataset_type_id = 1 AND d.run_id IN (3, 2, 1)
) ORDER BY r.visit
"""
FLOOR_LOOKUP = (
    "SELECT id, run_id FROM dataset WHERE dataset_type_id = 1 AND run_id IN (3, 2, 1) AND data_id = ?"
)


def bench(n: int, folder: Path, load: str) -> list[tuple[str, float, float, float | None, int]]:
    """Fill a SQLite registry to about ``n`` datasets; time each query and its floor."""
    path = folder / f"registry{n}.sqlite3"
    rows: list[tuple[str, float, float, float | None, int]] = []
    with SqlRegistry(f"sqlite:///{path}", create=True) as registry:
        visits, perDataset = fill(registry, path, n, load)
        total = registry.countDatasets("raw", "all")
        print(f"{total:,} datasets loaded at {perDataset:.1f} µs/dataset ({load})")
        floor = sqlite3.connect(path)
        span = max(total // 100 // DETECTORS, 1)
        a = visits - span  # only run1 holds these: span * 100 datasets, 1%
        firstA = 0  # all three runs hold these
        repeat = 15 if total <= 200_000 else 7

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

        def rangeObjects() -> int:
            return len(minimalRefs(floor.execute(FLOOR_RANGE, (a, a + span)).fetchall()))

        def firstObjects() -> int:
            return len(minimalRefs(floor.execute(FLOOR_FIRST, (firstA, firstA + span)).fetchall()))

        for name, query, floorQuery, objects in (
            ("range query, 1% (through the chain)", rangeQuery, rangeFloor, rangeObjects),
            ("findFirst through the 3-run chain", firstQuery, firstFloor, firstObjects),
            ("queryDataIds visit.band = 'r'", dataIdQuery, dataIdFloor, None),
        ):
            found, expected = query(), floorQuery()
            assert found == expected, (name, found, expected)
            works = [query, floorQuery] + ([objects] if objects else [])
            times = interleaved(works, repeat)
            rows.append((name, times[0], times[1], times[2] if objects else None, found))
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

        runMs, chainMs, floorMs = (
            ms / lookups for ms in interleaved([lookupRun, lookupChain, lookupFloor], 7)
        )
        rows.append(("findDataset by data ID, one run", runMs, floorMs, None, 1))
        rows.append(("findDataset by data ID, through the chain", chainMs, floorMs, None, 1))
        floor.close()
    return rows


def main() -> None:
    """Parse the arguments, run the benchmark at each size, print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 datasets only (a smoke run)")
    parser.add_argument("--datasets", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument(
        "--load", choices=("direct", "registry"), default="direct", help="how datasets are loaded (see fill)"
    )
    args = parser.parse_args()
    sizes = [3000] if args.quick else args.datasets
    table = Table(
        title="Registry queries (SQLite) against hand-written SQL through sqlite3",
        caption="objects: the floor's rows made into minimal Python objects (see minimalRefs)",
    )
    columns = ("N", "query", "rows", "databutler ms", "SQL floor ms", "x floor", "objects ms", "x objects")
    for column in columns:
        table.add_column(column, justify="left" if column == "query" else "right")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for name, ms, floorMs, objectsMs, found in bench(n, Path(tmp), args.load):
                table.add_row(
                    f"{n:,}",
                    name,
                    f"{found:,}",
                    f"{ms:.3f}",
                    f"{floorMs:.3f}",
                    f"{ms / floorMs:.1f}",
                    "" if objectsMs is None else f"{objectsMs:.3f}",
                    "" if objectsMs is None else f"{ms / objectsMs:.1f}",
                )
            table.add_row("", f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
