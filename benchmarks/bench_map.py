"""Benchmark `Butler.map`: serial in one process against Dask with 2 workers, and the merge.

Each of N units (default 2,000) reads one input (``raw``), runs a CPU-bound function of its
data ID (`databutler.testing.map_support.calibrate`: ``--rounds`` steps of an integer hash)
and writes two outputs (``calexp``, ``src``) to a file datastore under a SQLite registry. Rows:

- the function alone, in one process and split over 2 processes (``multiprocessing``): the
  second is the floor a 2-worker map can reach on this machine now (on a shared machine the
  "2-process speedup" shows how much of a second core there was to have);
- `Butler.map` with no executor (serial, in this process) and on a Dask ``LocalCluster`` of
  2 single-thread worker processes, each timed from planning to the end of the merge (the
  cluster is started before, and its start is shown apart); target: Dask ≥ 1.7x serial;
- an "ideal" row: the serial map divided by the 2-process speedup of the function alone, what a
  2-worker map with no cost of its own would take now; Dask's ratio to it is the mechanism's
  own cost (scheduling, serialisation, the driver's loop);
- the registry transactions (commits counted by a SQLAlchemy event listener on the registry's
  engines) of each map and of a merge of ``--merge`` synthetic datasets; target: at most one
  per 10,000 datasets; and the merge throughput in datasets per second.

The load average is printed beside the figures: ratios measured on a busy machine are low.
The script prints tables and asserts nothing.
Usage: ``python benchmarks/bench_map.py [--quick] [--units N] [--rounds R] [--merge M] [--repeat K] [--dir FOLDER]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from databutler import Butler, workers
from databutler.dataset_ref import DatasetRef
from databutler.testing.map_support import calibrate
from databutler.workers import MapResult, UnitManifest

DIMS = ("visit", "detector")


def dataIds(n: int) -> list[dict[str, int]]:
    return [{"visit": i // 100, "detector": i % 100} for i in range(n)]


def makeRepo(root: Path, units: list[dict[str, int]], rounds: int) -> None:
    Butler.makeRepo(root)
    with Butler(root, run="raw") as butler:
        for name in ("raw", "calexp", "src"):
            butler.registerDatasetType(name, DIMS, "StructuredDataDict")
        butler.putMany(
            [({"value": d["visit"] * 100 + d["detector"], "rounds": rounds}, "raw", d) for d in units]
        )


def pureChunk(args: tuple[list[dict[str, int]], int]) -> int:
    """The unit function alone (no reads, no writes) over a list of data IDs."""
    chunk, rounds = args
    for d in chunk:
        calibrate(d, {"raw": {"value": d["visit"] * 100 + d["detector"], "rounds": rounds}})
    return len(chunk)


def pureSerial(units: list[dict[str, int]], rounds: int) -> float:
    start = time.perf_counter()
    pureChunk((units, rounds))
    return time.perf_counter() - start


def pureTwoProcesses(units: list[dict[str, int]], rounds: int) -> float:
    """The function over the units split in two halves, one per process (pool start excluded)."""
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(pureChunk, [([], 0), ([], 0)])  # both processes up and importing done
        start = time.perf_counter()
        pool.map(pureChunk, [(units[0::2], rounds), (units[1::2], rounds)], chunksize=1)
        return time.perf_counter() - start


class Commits:
    """Commits on the registry's engines: all of them, and those made inside the merge."""

    def __init__(self) -> None:
        self.total = 0
        self.inMerge = 0
        self.merging = False

    def onCommit(self, connection: Any) -> None:
        self.total += 1
        self.inMerge += self.merging


@contextmanager
def countCommits(butler: Butler) -> Iterator[Commits]:
    """Count the commits on every engine of ``butler``'s registry while the block runs.

    `mergeManifests` is wrapped (in `databutler.workers`, where `Butler.map` calls it) to tell
    the merge's commits from the others (registering the run).
    """
    db = butler.registry._db
    targets = [e for e in (db.baseEngine, db.readerEngine) if e is not None]  # db.engine: a view of base
    commits = Commits()
    original = workers.mergeManifests

    def merging(*args: Any, **kwargs: Any) -> None:
        commits.merging = True
        try:
            original(*args, **kwargs)
        finally:
            commits.merging = False

    for target in targets:
        sa.event.listen(target, "commit", commits.onCommit)
    workers.mergeManifests = merging
    try:
        yield commits
    finally:
        workers.mergeManifests = original
        for target in targets:
            sa.event.remove(target, "commit", commits.onCommit)


def timeMap(
    root: Path, units: list[dict[str, int]], run: str, executor: Any
) -> tuple[float, MapResult, Commits]:
    with Butler(root, collections=["raw"]) as butler, countCommits(butler) as commits:
        start = time.perf_counter()
        result = butler.map(
            calibrate,
            units,
            inputs=["raw"],
            outputs=["calexp", "src"],
            run=run,
            executor=executor,
            progress=False,
        )
        elapsed = time.perf_counter() - start
    return elapsed, result, commits


def syntheticMerge(root: Path, n: int) -> tuple[float, MapResult, Commits]:
    """Merge ``n`` datasets of made-up manifests (the merge reads no file) into a new run."""
    with Butler(root) as butler:
        butler.registry.registerRun("synthetic")
        calexp = butler.getDatasetType("calexp")
        manifests = []
        for i in range(n):
            d = {"visit": 10_000 + i // 1000, "detector": i % 1000}
            ref = DatasetRef(calexp, d, butler.predictDatasetId(calexp, d, "synthetic"), "synthetic")
            record = {
                "path": f"synthetic/calexp/{d['visit']}/{d['detector']}.json",
                "formatter": "databutler.formatters.json.JsonFormatter",
                "component": None,
                "fileSize": 64,
                "checksum": f"xxh3_128:{i:032x}",
                "timestamp": 0.0,
                "storageClass": "StructuredDataDict",
                "parentID": None,
            }
            manifests.append(UnitManifest(d, [(ref, [record])]))
        result = MapResult()
        with countCommits(butler) as commits:
            start = time.perf_counter()
            workers.mergeManifests(butler, manifests, result)
            elapsed = time.perf_counter() - start
    return elapsed, result, commits


def startCluster(workers: int, profiler: bool = False) -> tuple[Any, Any, float]:
    """A LocalCluster of single-thread worker processes; Dask's statistical profiler off unless asked.

    The profiler samples each worker's running thread every 10 ms, taking the GIL from a
    pure-Python unit each time: measured 15-20% of a CPU-bound map on this machine.
    """
    import dask
    import distributed

    start = time.perf_counter()
    with dask.config.set({"distributed.worker.profile.enabled": profiler}):  # read as workers start
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            silence_logs=50,
        )
    client = distributed.Client(cluster)
    client.run(__import__, "databutler.workers")  # imports done before the clock starts
    return cluster, client, time.perf_counter() - start


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 units, a light function")
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=60_000, help="hash steps per unit (CPU per unit)")
    parser.add_argument("--merge", type=int, default=20_000, help="datasets of the synthetic merge")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--dask-profiler", dest="daskProfiler", action="store_true", help="keep Dask's worker profiler on"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run every row this many times, interleaved; keep the best"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the repositories go (default: a temp dir)"
    )
    args = parser.parse_args()
    if args.quick:
        args.units, args.rounds, args.merge = 100, 2_000, 1_000
    units = dataIds(args.units)
    console = Console(width=150)
    loadBefore = load()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp) / "repo"
        makeRepo(root, units, args.rounds)
        cluster, client, clusterStart = startCluster(args.workers, args.daskProfiler)
        try:
            # Interleaved: on a shared machine the load changes during the run; each row keeps
            # its best of --repeat, measured next to the others.
            pure1s, pure2s, serials, dasks = [], [], [], []
            for i in range(max(1, args.repeat)):
                pure1s.append(pureSerial(units, args.rounds))
                pure2s.append(pureTwoProcesses(units, args.rounds))
                serials.append(timeMap(root, units, f"serial{i}", None))
                dasks.append(timeMap(root, units, f"dask{i}", client))
        finally:
            client.close()
            cluster.close()
        pure1, pure2 = min(pure1s), min(pure2s)
        serial, serialResult, serialCommits = min(serials, key=lambda t: t[0])
        dask, daskResult, daskCommits = min(dasks, key=lambda t: t[0])
        mergeTime, mergeResult, mergeCommits = syntheticMerge(root, args.merge)
    loadAfter = load()

    n = args.units
    table = Table(
        title=f"Butler.map: {n} units, 1 input and 2 outputs each, {args.rounds} hash rounds per unit"
        f" (best of {max(1, args.repeat)})"
    )
    ideal = serial * pure2 / pure1  # the serial map sped up as much as 2 processes can be now
    for column in ("run", "s", "ms per unit", "x serial map", "x 2-process floor", "x ideal"):
        table.add_column(column, justify="left" if column == "run" else "right")
    table.add_row("function alone, 1 process", f"{pure1:.2f}", f"{pure1 / n * 1e3:.2f}", "", "", "")
    table.add_row(
        "function alone, 2 processes (floor)",
        f"{pure2:.2f}",
        f"{pure2 / n * 1e3:.2f}",
        "",
        f"1.00 (2-process speedup {pure1 / pure2:.2f}x)",
        "",
    )
    table.add_row(
        "Butler.map serial (no executor)", f"{serial:.2f}", f"{serial / n * 1e3:.2f}", "1.00", "", ""
    )
    table.add_row(
        "ideal: serial map / 2-process speedup",
        f"{ideal:.2f}",
        f"{ideal / n * 1e3:.2f}",
        f"{serial / ideal:.2f}",
        f"{ideal / pure2:.2f}",
        "1.00",
    )
    table.add_row(
        f"Butler.map Dask, {args.workers} workers",
        f"{dask:.2f}",
        f"{dask / n * 1e3:.2f}",
        f"{serial / dask:.2f} faster (target >= 1.7)",
        f"{dask / pure2:.2f}",
        f"{dask / ideal:.2f}",
    )
    console.print(table)
    console.print(
        f"LocalCluster start (not counted): {clusterStart:.2f} s; Dask worker profiler "
        f"{'on' if args.daskProfiler else 'off (distributed.worker.profile.enabled: false; --dask-profiler keeps it)'}"
    )

    merges = Table(title="Merge: registry transactions (commits counted on the registry's engines)")
    columns = (
        "merge",
        "datasets",
        "commits in merge",
        "target (1 per 10,000, rounded up)",
        "all commits",
        "merge s",
        "datasets/s",
    )
    for column in columns:
        merges.add_column(column, justify="left" if column == "merge" else "right")
    for label, result, commits, seconds in (
        ("serial map", serialResult, serialCommits, serialResult.mergeSeconds),
        ("Dask map", daskResult, daskCommits, daskResult.mergeSeconds),
        ("synthetic merge", mergeResult, mergeCommits, mergeTime),
    ):
        merged = result.merged
        merges.add_row(
            label,
            f"{merged}",
            f"{commits.inMerge}",
            f"<= {-(-merged // 10_000)}: {'met' if commits.inMerge <= -(-merged // 10_000) else 'MISSED'}",
            f"{commits.total}",
            f"{seconds:.3f}",
            f"{merged / seconds:,.0f}" if seconds else "-",
        )
    console.print(merges)
    console.print(
        "target: at most 1 transaction per 10,000 datasets (a merge commits once per chunk of "
        f"{workers.MERGE_CHUNK:,} datasets; 'all commits' adds registering the run)"
    )
    console.print(f"load average before: {loadBefore}; after: {loadAfter}")


if __name__ == "__main__":
    main()
