"""Benchmark `Butler.ingest` of many small files against plain file-system loops on the same disk.

N small JSON files (default 10,000) are ingested into a new repository of the default
configuration (SQLite registry, memory tier in front of a file tier) with ``copy``, ``hardlink``
and ``symlink``, each in one call (one registry commit). Each is compared with its floor measured
in the same run, in a folder of the same disk: a loop of `shutil.copyfile`, `os.link` or
`os.symlink` over the same files. Targets: ``copy`` within 2x of its floor, the links within 3x.

Ingest does more per file than the plain loop, so each link mode is also compared with the
floor of the work it cannot avoid ("work floor"), measured in the same run: the same link, a
``stat`` of the source and a read of it to hash it (xxh3-128, as ingest records a checksum), and
one transaction inserting with ``executemany`` the three rows a file needs (its dataset, its
location, its file record) into a SQLite database of the same settings (WAL, synchronous=NORMAL)
in the same folder. The script prints a table and asserts nothing. Usage:
``python benchmarks/bench_ingest.py [--quick] [--n N] [--dir FOLDER] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

from databutler import Butler, DatasetRef, FileDataset

FLOORS: dict[str, Callable[[str, str], Any]] = {
    "copy": shutil.copyfile,
    "hardlink": os.link,
    "symlink": os.symlink,
}
TARGETS = {"copy": 2.0, "hardlink": 3.0, "symlink": 3.0}


def timed(fn: Callable[[], Any]) -> float:
    """Seconds taken by ``fn`` (garbage collection paused).

    Dirty pages are written out first, so that no measurement pays for the writeback of the
    files an earlier one made.
    """
    os.sync()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def makeSources(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        path = folder / f"raw_{i:06d}.json"
        path.write_text(f'{{"visit": {i // 100}, "detector": {i % 100}, "value": {i * 0.5}}}')
        paths.append(path)
    return paths


def floor(mode: str, sources: list[Path], folder: Path) -> float:
    """The plain loop: ``shutil.copyfile`` / ``os.link`` / ``os.symlink`` of every file into ``folder``."""
    folder.mkdir(parents=True)
    func = FLOORS[mode]
    targets = [str(folder / path.name) for path in sources]
    names = [str(path) for path in sources]

    def loop() -> None:
        for source, target in zip(names, targets, strict=True):
            func(source, target)

    return timed(loop)


_ROWS_SCHEMA = (
    "CREATE TABLE dataset (id TEXT PRIMARY KEY, datasetTypeId INTEGER, runId INTEGER, dataId TEXT, "
    "UNIQUE (datasetTypeId, runId, dataId))",
    "CREATE TABLE location (datasetId TEXT, datastoreName TEXT, PRIMARY KEY (datasetId, datastoreName))",
    "CREATE TABLE record (datastoreName TEXT, datasetId TEXT, component TEXT, path TEXT, formatter TEXT, "
    "storageClass TEXT, fileSize INTEGER, checksum TEXT, timestamp REAL, "
    "PRIMARY KEY (datastoreName, datasetId, component), UNIQUE (datastoreName, path))",
)


def workFloor(mode: str, sources: list[Path], folder: Path) -> float:
    """The work a link ingest cannot avoid: link, stat and hash each file, then insert its rows at once."""
    folder.mkdir(parents=True)
    database = sqlite3.connect(folder / "rows.sqlite3", isolation_level=None)
    database.execute("PRAGMA journal_mode = WAL")
    database.execute("PRAGMA synchronous = NORMAL")
    for statement in _ROWS_SCHEMA:
        database.execute(statement)
    link = FLOORS[mode]
    names = [str(path) for path in sources]
    targets = [str(folder / path.name) for path in sources]

    def work() -> None:
        datasets, locations, records = [], [], []
        for i, (source, target) in enumerate(zip(names, targets, strict=True)):
            link(source, target)
            size = os.stat(source).st_size
            with open(source, "rb", buffering=0) as stream:
                checksum = xxhash.xxh3_128(stream.read()).hexdigest()
            datasetId = uuid.uuid4().hex
            datasets.append((datasetId, 1, 1, f"visit={i // 100},detector={i % 100}"))
            locations.append((datasetId, "FileDatastore"))
            records.append(
                (
                    "FileDatastore",
                    datasetId,
                    "",
                    target,
                    "JsonFormatter",
                    "StructuredDataDict",
                    size,
                    checksum,
                    0.0,
                )
            )
        database.execute("BEGIN")
        database.executemany("INSERT INTO dataset VALUES (?, ?, ?, ?)", datasets)
        database.executemany("INSERT INTO location VALUES (?, ?)", locations)
        database.executemany("INSERT INTO record VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", records)
        database.execute("COMMIT")

    try:
        return timed(work)
    finally:
        database.close()


def ingest(mode: str, sources: list[Path], root: Path) -> float:
    Butler.makeRepo(root)
    with Butler(root, run="bench") as butler:
        butler.registerDatasetType("raw", ("visit", "detector"), "StructuredDataDict")
        datasetType = butler.getDatasetType("raw")
        datasets = [
            FileDataset(path, DatasetRef(datasetType, {"visit": i // 100, "detector": i % 100}))
            for i, path in enumerate(sources)
        ]
        seconds = timed(lambda: butler.ingest(*datasets, transfer=mode))
        assert butler.queryDatasets("raw").count() == len(sources)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 files instead of 10,000")
    parser.add_argument("--n", type=int, default=None, help="files per row")
    parser.add_argument("--dir", default=None, help="folder to work in (default: a temporary one)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds (each measures all, in turn); the median is shown"
    )
    args = parser.parse_args()
    n = args.n or (500 if args.quick else 10_000)
    measured: dict[str, list[tuple[float, float | None, float]]] = {mode: [] for mode in FLOORS}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        sources = makeSources(Path(tmp) / "sources", n)
        for turn in range(args.rounds):
            for mode in FLOORS:
                base = floor(mode, sources, Path(tmp) / f"floor-{mode}-{turn}")
                work = workFloor(mode, sources, Path(tmp) / f"work-{mode}-{turn}") if mode != "copy" else None
                took = ingest(mode, sources, Path(tmp) / f"repo-{mode}-{turn}")
                measured[mode].append((base, work, took))
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"Ingest of {n:,} small files, one call each (default repository), against plain loops")
    print(f"(median of {args.rounds} round(s); load average {load})")
    print(
        f"{'transfer':<10} {'floor':<18} {'floor µs':>9} {'work µs':>8} {'ingest µs':>10} "
        f"{'x floor':>8} {'x work':>7}  target"
    )
    for mode, rounds in measured.items():
        base, work, took = (_median([row[k] for row in rounds]) for k in range(3))
        name = {"copy": "shutil.copyfile", "hardlink": "os.link", "symlink": "os.symlink"}[mode]
        ratio = took / base
        verdict = "ok" if ratio <= TARGETS[mode] else "MISSED"
        workText = f"{work / n * 1e6:>8.1f}" if work is not None else f"{'-':>8}"
        workRatio = f"{took / work:>7.2f}" if work is not None else f"{'-':>7}"
        print(
            f"{mode:<10} {name:<18} {base / n * 1e6:>9.1f} {workText} {took / n * 1e6:>10.1f} "
            f"{ratio:>8.2f} {workRatio}  ≤ {TARGETS[mode]:g}x {verdict}"
        )


def _median(values: list[Any]) -> Any:
    if values[0] is None:
        return None
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


if __name__ == "__main__":
    main()
