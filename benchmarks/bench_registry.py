"""Benchmark SqlRegistry: insert and find µs per operation at N datasets (default 100,000).

Fills a fresh registry to N datasets (most in batches through ``addDatasets``, the last
``--single`` one by one through ``addDataset``), then times ``findDataset``, ``getDataset``,
``queryDatasets`` with a ``where`` and, for comparison, the same inserts inside one
``transaction()``. SQLite (a temporary file) always; PostgreSQL too when
``DATABUTLER_TEST_POSTGRES_URL`` is set (``scripts/postgres.sh run -- python
benchmarks/bench_registry.py`` starts a throwaway server). Prints a table; asserts nothing.

Run: ``.venv/bin/python benchmarks/bench_registry.py [--datasets N] [--single K]``
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from databutler import DatasetType, SqlRegistry
from databutler.testing.registry_support import POSTGRES_URL_ENV, dropNamespace

DETECTORS = 100
Row = tuple[str, str, float, str]


def dataId(i: int) -> dict[str, Any]:
    """The i-th data ID: 100 detectors per visit, and a band."""
    return {"visit": i // DETECTORS, "detector": i % DETECTORS, "band": "griz"[i % 4]}


def perOp(work: Callable[[], Any], count: int) -> float:
    """Run ``work`` once and return its time in µs per one of ``count`` operations."""
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) / count * 1e6


@contextmanager
def openRegistry(backend: str, folder: Path) -> Iterator[SqlRegistry]:
    """Yield a fresh registry on ``backend`` ("sqlite" or "postgresql"); remove it afterwards."""
    if backend == "sqlite":
        with SqlRegistry(f"sqlite:///{folder}/registry.sqlite3", create=True) as registry:
            yield registry
        return
    url = os.environ[POSTGRES_URL_ENV]
    namespace = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        with SqlRegistry(url, namespace=namespace, create=True) as registry:
            yield registry
    finally:
        dropNamespace(url, namespace)


def bench(backend: str, n: int, single: int, folder: Path) -> list[Row]:
    """Fill a registry to ``n`` datasets and time its verbs."""
    rows: list[Row] = []
    with openRegistry(backend, folder) as registry:
        storageClass = registry.storageClassFactory.getStorageClass("StructuredDataDict")
        datasetType = DatasetType("metrics", ("visit", "detector", "band"), storageClass)
        registry.registerDatasetType(datasetType)
        registry.registerRun("bench")
        registry.registerRun("other")
        bulk, batch = n - single, 1000

        def fill() -> None:
            for first in range(0, bulk, batch):
                ids = [dataId(i) for i in range(first, min(first + batch, bulk))]
                registry.addDatasets(datasetType, ids, "bench")

        rows.append(
            (backend, f"addDatasets, batches of {batch} (0 → {bulk:,})", perOp(fill, bulk), "µs/dataset")
        )

        def insertOneByOne() -> None:
            for i in range(bulk, n):
                registry.addDataset(datasetType, dataId(i), "bench")

        rows.append(
            (backend, f"addDataset, one by one ({bulk:,} → {n:,})", perOp(insertOneByOne, single), "µs/op")
        )

        def insertInTransaction() -> None:
            with registry.transaction():
                for i in range(single):
                    registry.addDataset(datasetType, dataId(i), "other")

        rows.append(
            (
                backend,
                f"addDataset x {single:,} in one transaction()",
                perOp(insertInTransaction, single),
                "µs/op",
            )
        )
        lookups = min(single, 5000)
        picks = random.Random(1).sample(range(n), lookups)
        refs: list[Any] = []

        def find() -> None:
            for i in picks:
                refs.append(registry.findDataset(datasetType, dataId(i), "bench"))

        rows.append((backend, f"findDataset, one run (at {n:,})", perOp(find, lookups), "µs/op"))

        def findTwoRuns() -> None:
            for i in picks:
                registry.findDataset(datasetType, dataId(i), ["other", "bench"])

        rows.append(
            (backend, f"findDataset, two runs (at {n + single:,})", perOp(findTwoRuns, lookups), "µs/op")
        )

        def get() -> None:
            for ref in refs:
                registry.getDataset(ref.id)

        rows.append((backend, "getDataset by id", perOp(get, lookups), "µs/op"))
        visits = n // DETECTORS
        queries = 200

        def query() -> None:
            for k in range(queries):
                found = registry.queryDatasets(
                    datasetType, "bench", where={"visit": k * 7 % visits, "band": "g"}
                )
                assert len(found) == DETECTORS // 4

        rows.append(
            (backend, "queryDatasets where visit & band (25 hits)", perOp(query, queries), "µs/query")
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", type=int, default=100_000, help="datasets in the registry (default 100,000)"
    )
    parser.add_argument(
        "--single", type=int, default=10_000, help="of which added one by one (default 10,000)"
    )
    args = parser.parse_args()
    backends = ["sqlite"] + (["postgresql"] if os.environ.get(POSTGRES_URL_ENV) else [])
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            rows.extend(bench(backend, args.datasets, min(args.single, args.datasets), Path(tmp)))
    table = Table(title=f"SqlRegistry at {args.datasets:,} datasets")
    for column in ("back end", "operation", "time", "unit"):
        table.add_column(column, justify="right" if column == "time" else "left")
    for backend, name, value, unit in rows:
        table.add_row(backend, name, f"{value:,.1f}", unit)
    Console().print(table)
    if len(backends) == 1:
        print(f"(PostgreSQL skipped: set {POSTGRES_URL_ENV}, or run through scripts/postgres.sh run --)")


if __name__ == "__main__":
    main()
