"""Benchmark the Butler, the SQL registry and ``import databutler``.

Measures, on the embedded default (SQLite registry in the repository, memory tier in front of
a file tier):

- Butler ``put`` µs/op while filling a repository with N datasets (default 10,000);
- Butler ``get`` by data ID µs/op over those N datasets: warm (the same Butler, so the memory
  tier answers) and cold (a newly opened Butler, so every read comes from the file tier);
- SqlRegistry ``addDataset`` and ``findDataset`` µs/op at M datasets (default 100,000);
- ``import databutler`` in a fresh interpreter (best and median of several runs, with the bare
  interpreter start-up shown beside it).

For context it also measures put and get on a memory-only repository (the registry's share)
and the file system's own cost of writing one small file atomically (the floor under any file
tier's put). Targets: put ≤ 300 µs, get by data ID ≤ 100 µs, import ≤ 0.3 s. The script prints
a table and asserts nothing. Usage: ``python benchmarks/bench_butler.py [--quick] [--datastore memory]
[--dir FOLDER]`` (file creation costs differ a lot between folders of one disk on some machines:
compare the floor rows).
"""

from __future__ import annotations

import argparse
import gc
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from databutler import Butler, DatasetType, SqlRegistry
from databutler.registry import schema

DIMS = ("visit", "detector")
MEMORY_ONLY = {"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore"}}
Row = tuple[str, float, str, str]  # what, value, unit, target


def timed(fn: Callable[[], Any], n: int, repeat: int = 1) -> float:
    """Best-of-``repeat`` µs per operation of ``fn``, which does ``n`` operations (GC paused)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            fn()
            best = min(best, (time.perf_counter() - start) / n * 1e6)
        finally:
            gc.enable()
    return best


def dataId(i: int) -> dict[str, int]:
    return {"visit": i // 100, "detector": i % 100}


def benchButler(root: Path, n: int, config: dict[str, Any] | None) -> list[Row]:
    Butler.makeRepo(root, config)
    rows: list[Row] = []
    with Butler(root, run="bench") as butler:
        butler.registerDatasetType("metrics", DIMS, "StructuredDataDict")
        payload = {"seeing": 0.71, "nSources": 1234, "zeroPoint": 27.1}
        butler.put(payload, "metrics", dataId(n))  # warm caches and connections

        def puts() -> None:
            for i in range(n):
                butler.put(payload, "metrics", dataId(i))

        def gets() -> None:
            for i in range(n):
                butler.get("metrics", dataId(i))

        rows.append((f"Butler.put ({n:,} datasets)", timed(puts, n), "µs/op", "≤ 300"))
        rows.append((f"Butler.get by data ID, warm ({n:,}, best of 3)", timed(gets, n, 3), "µs/op", "≤ 100"))
        if butler.datastore.isEphemeral:
            return rows  # nothing survives for a new Butler to read
    with Butler(root, collections=["bench"]) as cold:
        cold.get("metrics", dataId(n))

        def coldGets() -> None:
            for i in range(n):
                cold.get("metrics", dataId(i))

        rows.append((f"Butler.get by data ID, new Butler ({n:,})", timed(coldGets, n), "µs/op", "≤ 100"))
    return rows


def benchMemoryOnly(root: Path, n: int) -> list[Row]:
    """Put and get on a memory-only repository: the registry's share of the default's cost."""
    Butler.makeRepo(root, MEMORY_ONLY)
    with Butler(root, run="bench") as butler:
        butler.registerDatasetType("metrics", DIMS, "StructuredDataDict")
        payload = {"seeing": 0.71}
        butler.put(payload, "metrics", dataId(n))

        def puts() -> None:
            for i in range(n):
                butler.put(payload, "metrics", dataId(i))

        def gets() -> None:
            for i in range(n):
                butler.get("metrics", dataId(i))

        return [
            (f"  memory-only repository: put ({n:,})", timed(puts, n), "µs/op", ""),
            (f"  memory-only repository: get by data ID ({n:,}, best of 3)", timed(gets, n, 3), "µs/op", ""),
        ]


def benchFileFloor(folder: Path, n: int) -> list[Row]:
    """What one small file costs this file system: write a temporary file, rename it into place."""
    folder.mkdir(parents=True)

    def writes() -> None:
        for i in range(n):
            temp = folder / f"{i}.tmp"
            temp.write_bytes(b"{}")
            temp.replace(folder / f"{i}.json")

    return [(f"  file system floor: write + rename a small file ({n:,})", timed(writes, n), "µs/op", "")]


def benchSqliteFloor(root: Path, n: int) -> list[Row]:
    """What SQLite alone costs for the rows one put writes, in one transaction per dataset.

    A default-repository put writes a dataset row, one row per dimension, a location row and a
    file record, and commits. Here the same rows go into a repository's own registry database
    through the sqlite3 module directly (SQL text compiled from the registry's tables), so the
    difference to ``Butler.put`` is databutler's Python, not the database.
    """
    Butler.makeRepo(root)
    with Butler(root, run="bench") as butler:
        butler.registerDatasetType("metrics", DIMS, "StructuredDataDict")
        butler.put({"seeing": 0.71}, "metrics", dataId(n))  # creates every table
    dialect = sqlite.dialect()

    def sql(table: sa.Table) -> str:
        return str(sa.insert(table).compile(dialect=dialect))

    datasetSql, dimensionSql, locationSql = (
        sql(t) for t in (schema.datasetTable, schema.datasetDimensionTable, schema.datasetLocationTable)
    )
    connection = sqlite3.connect(root / "registry.sqlite3", isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA wal_autocheckpoint = 10000")
        typeId, runId = connection.execute("SELECT dataset_type_id, run_id FROM dataset").fetchone()
        recordColumns = [row[1] for row in connection.execute("PRAGMA table_info(fileDatastoreRecords)")]
        recordSql = (
            f"INSERT INTO fileDatastoreRecords ({', '.join(recordColumns)}) "
            f"VALUES ({', '.join('?' for _ in recordColumns)})"
        )

        def inserts() -> None:
            for i in range(n):
                ident = uuid.uuid4().hex
                ids = dataId(i)
                connection.execute("BEGIN IMMEDIATE")
                connection.execute(datasetSql, (ident, typeId, runId, json.dumps(ids, sort_keys=True)))
                connection.executemany(dimensionSql, [(ident, k, v, None) for k, v in ids.items()])
                connection.execute(locationSql, (ident, "chain"))
                record = {
                    "datastoreName": "file",
                    "datasetId": ident,
                    "component": "",
                    "datasetType": "metrics",
                    "path": f"bench/metrics/metrics_{i}_{ident}.json",
                    "formatter": "databutler.formatters.json.JsonFormatter",
                    "storageClass": "StructuredDataDict",
                    "fileSize": 60,
                    "checksum": "xxh3_128:" + "0" * 32,
                    "timestamp": time.time(),
                }
                connection.execute(recordSql, [record[c] for c in recordColumns])
                connection.execute("COMMIT")

        return [
            (
                f"  SQLite floor: a put's rows with sqlite3 itself + commit ({n:,})",
                timed(inserts, n),
                "µs/op",
                "",
            )
        ]
    finally:
        connection.close()


def benchRegistry(root: Path, m: int) -> list[Row]:
    rows: list[Row] = []
    url = f"sqlite:///{root / 'registry.sqlite3'}"
    with SqlRegistry(url, create=True) as registry:
        datasetType = DatasetType("metrics", DIMS, registry.storageClassFactory.getStorageClass("Object"))
        registry.registerDatasetType(datasetType)
        registry.registerRun("bench")
        batch = 1000
        bulk = m - m // 10
        start = time.perf_counter()
        for first in range(0, bulk, batch):
            registry.addDatasets(
                datasetType, [dataId(i) for i in range(first, min(first + batch, bulk))], "bench"
            )
        bulkUs = (time.perf_counter() - start) / bulk * 1e6
        rows.append((f"registry.addDatasets, batches of {batch} (to {bulk:,})", bulkUs, "µs/op", ""))

        def inserts() -> None:
            for i in range(bulk, m):
                registry.addDataset(datasetType, dataId(i), "bench")

        rows.append((f"registry.addDataset, one by one (to {m:,})", timed(inserts, m - bulk), "µs/op", ""))
        lookups = min(m, 20_000)
        step = max(1, m // lookups)

        def finds() -> None:
            for i in range(0, step * lookups, step):
                registry.findDataset(datasetType, dataId(i), "bench")

        rows.append((f"registry.findDataset (at {m:,}, best of 3)", timed(finds, lookups, 3), "µs/op", ""))
    return rows


def benchImport(runs: int) -> list[Row]:
    def seconds(code: str) -> list[float]:
        out = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            out.append(time.perf_counter() - start)
        return out

    bare = seconds("pass")
    full = seconds("import databutler")
    butler = seconds("import databutler; databutler.Butler")
    return [
        (f"python -c pass (best of {runs})", min(bare), "s", ""),
        (f"python -c 'import databutler' (best of {runs})", min(full), "s", "≤ 0.3"),
        (f"python -c 'import databutler' (median of {runs})", statistics.median(full), "s", "≤ 0.3"),
        (f"... and touch databutler.Butler (best of {runs})", min(butler), "s", ""),
    ]


def printTable(rows: list[Row]) -> None:
    print(f"\n  {'measurement':<62}{'value':>10}  {'unit':<6}{'target':>8}")
    for what, value, unit, target in rows:
        shown = f"{value:10.3f}" if unit == "s" else f"{value:10.1f}"
        print(f"  {what:<62}{shown}  {unit:<6}{target:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 / 10,000 datasets and 3 import runs")
    parser.add_argument("--datasets", type=int, default=10_000, help="Butler datasets (default 10,000)")
    parser.add_argument("--registry-datasets", type=int, default=100_000, help="registry datasets")
    parser.add_argument("--import-runs", type=int, default=7)
    parser.add_argument(
        "--datastore", choices=["default", "memory"], default="default", help="the repository's datastore"
    )
    parser.add_argument(
        "--dir",
        default=None,
        help="folder to make the repositories in (default: the system's temporary folder); the "
        "file-system floor is measured there too",
    )
    args = parser.parse_args()
    n, m, runs = args.datasets, args.registry_datasets, args.import_runs
    if args.quick:
        n, m, runs = 1_000, 10_000, 3
    config = MEMORY_ONLY if args.datastore == "memory" else None
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rows += benchButler(Path(tmp) / "repo", n, config)
        if config is None:
            rows += benchMemoryOnly(Path(tmp) / "memory-repo", n)
            rows += benchFileFloor(Path(tmp) / "floor", min(n, 2000))
            rows += benchSqliteFloor(Path(tmp) / "sqlite-floor", min(n, 2000))
        rows += benchRegistry(Path(tmp) / "registry", m)
    rows += benchImport(runs)
    label = "memory-only datastore" if config else "default repository: memory tier + file tier"
    print(f"databutler benchmark — SQLite registry, {label}, in {args.dir or tempfile.gettempdir()}")
    printTable(rows)


if __name__ == "__main__":
    main()
