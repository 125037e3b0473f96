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
in the same folder.

A second table shows where a link ingest's time goes, each piece of that work measured alone in
the same run and each adding to the one before: the link alone (the floor), + the stat and the
hashing read, + the three rows (the work floor), and instead of the minimal schema the five rows
a repository really holds (its dataset, two dimension rows, its file record, its location) in a
new repository's own tables, with their indexes, foreign keys and the registry's pragmas, written
with raw sqlite3 in the order of the tables' keys ("repository rows floor"). What ingest takes beyond that last piece is
databutler's own Python; what the last piece takes beyond 3x the floor is the part of the target
no Python can win back on that file system. The script prints tables and asserts nothing. Usage:
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
FLOOR_NAMES = {"copy": "shutil.copyfile", "hardlink": "os.link", "symlink": "os.symlink"}
LINKS = ("hardlink", "symlink")


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

_REPOSITORY_INSERTS = (
    "INSERT INTO dataset (id, dataset_type_id, run_id, data_id) VALUES (?, ?, ?, ?)",
    "INSERT INTO dataset_dimension (dataset_id, dimension, int_value, str_value) VALUES (?, ?, ?, NULL)",
    'INSERT INTO "fileDatastoreRecords" ("datastoreName", "datasetId", component, "datasetType", path, '
    'formatter, "storageClass", "fileSize", checksum, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    "INSERT INTO dataset_location (dataset_id, datastore_name) VALUES (?, ?)",
)
"""The rows an ingest of one file writes into a repository's own tables, in the order it writes them."""

PIECES = ("link", "hash", "bench", "repository")
"""The pieces of a link ingest's work measured for the second table, each adding to the one before:
the link alone (the floor), + stat and hash, + the three rows in a minimal schema (the work
floor), + the rows a repository really holds (its schema, with raw sqlite3)."""


def _benchDatabase(folder: Path) -> sqlite3.Connection:
    """A database of the work floor's minimal schema, with the registry's settings."""
    database = sqlite3.connect(folder / "rows.sqlite3", isolation_level=None)
    database.execute("PRAGMA journal_mode = WAL")
    database.execute("PRAGMA synchronous = NORMAL")
    for statement in _ROWS_SCHEMA:
        database.execute(statement)
    return database


def _repositoryDatabase(folder: Path) -> tuple[sqlite3.Connection, int, int]:
    """A new repository's own database, as its registry opens it; the ids of dataset type ``raw`` and run ``bench``."""
    root = folder / "repo"
    Butler.makeRepo(root)
    with Butler(root, run="bench") as butler:
        butler.registerDatasetType("raw", ("visit", "detector"), "StructuredDataDict")
        butler.registry.registerRun("bench")
    database = sqlite3.connect(root / "registry.sqlite3", isolation_level=None)
    for pragma in (
        "journal_mode = WAL",
        "synchronous = NORMAL",
        "wal_autocheckpoint = 10000",
        "foreign_keys = ON",
    ):
        database.execute(f"PRAGMA {pragma}")
    (typeId,) = database.execute("SELECT id FROM dataset_type WHERE name = 'raw'").fetchone()
    (runId,) = database.execute("SELECT id FROM run WHERE name = 'bench'").fetchone()
    return database, typeId, runId


def workFloor(mode: str, sources: list[Path], folder: Path, rows: str = "bench") -> float:
    """The work a link ingest cannot avoid: link, stat and hash each file, then insert its rows at once.

    ``rows`` says which: ``bench`` the three rows of each file in a minimal schema (the work
    floor), ``repository`` the five a repository holds (its dataset, two dimension rows, its
    file record, its location) in a new repository's own tables, ``none`` no rows at all.
    """
    folder.mkdir(parents=True)
    database: sqlite3.Connection | None = None
    typeId = runId = 1
    if rows == "bench":
        database = _benchDatabase(folder)
    elif rows == "repository":
        database, typeId, runId = _repositoryDatabase(folder)
    link = FLOORS[mode]
    names = [str(path) for path in sources]
    targets = [str(folder / path.name) for path in sources]

    def work() -> None:
        hashed = []
        for source, target in zip(names, targets, strict=True):
            link(source, target)
            size = os.stat(source).st_size
            with open(source, "rb", buffering=0) as stream:
                checksum = xxhash.xxh3_128(stream.read()).hexdigest()
            hashed.append((target, size, checksum))
        if database is None:
            return
        if rows == "bench":
            _insertBenchRows(database, hashed)
        else:
            _insertRepositoryRows(database, hashed, typeId, runId)

    try:
        return timed(work)
    finally:
        if database is not None:
            database.close()


def _insertBenchRows(database: sqlite3.Connection, hashed: list[tuple[str, int, str]]) -> None:
    datasets, locations, records = [], [], []
    for i, (target, size, checksum) in enumerate(hashed):
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


def _insertRepositoryRows(
    database: sqlite3.Connection, hashed: list[tuple[str, int, str]], typeId: int, runId: int
) -> None:
    datasets, dimensions, records, locations = [], [], [], []
    now = time.time()
    idents = sorted((uuid.uuid4() for _ in hashed), key=lambda ident: ident.int)  # in the tables' key order
    for i, ((_, size, checksum), ident) in enumerate(zip(hashed, idents, strict=True)):
        visit, detector = i // 100, i % 100
        datasets.append((ident.hex, typeId, runId, f'{{"detector":{detector},"visit":{visit}}}'))
        dimensions.append((ident.hex, "detector", detector))
        dimensions.append((ident.hex, "visit", visit))
        path = f"bench/raw/raw_detector-{detector}_visit-{visit}_{ident}.json"
        records.append(
            (
                "file",
                str(ident),
                "",
                "raw",
                path,
                "databutler.formatters.json.JsonFormatter",
                "StructuredDataDict",
                size,
                f"xxh3_128:{checksum}",
                now,
            )
        )
        locations.append((ident.hex, "chain"))
    database.execute("BEGIN IMMEDIATE")
    for statement, values in zip(
        _REPOSITORY_INSERTS, (datasets, dimensions, records, locations), strict=True
    ):
        database.executemany(statement, values)
    database.execute("COMMIT")


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
    pieces: dict[str, dict[str, list[float]]] = {mode: {piece: [] for piece in PIECES} for mode in LINKS}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        sources = makeSources(Path(tmp) / "sources", n)
        for turn in range(args.rounds):
            for mode in FLOORS:
                here = Path(tmp)
                base = floor(mode, sources, here / f"floor-{mode}-{turn}")
                work = workFloor(mode, sources, here / f"work-{mode}-{turn}") if mode in LINKS else None
                took = ingest(mode, sources, here / f"repo-{mode}-{turn}")
                measured[mode].append((base, work, took))
                if mode in LINKS:
                    assert work is not None
                    pieces[mode]["link"].append(base)
                    pieces[mode]["bench"].append(work)
                    for piece, rows in (("hash", "none"), ("repository", "repository")):
                        pieces[mode][piece].append(
                            workFloor(mode, sources, here / f"{piece}-{mode}-{turn}", rows)
                        )
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"Ingest of {n:,} small files, one call each (default repository), against plain loops")
    print(f"(median of {args.rounds} round(s); load average {load})")
    print(
        f"{'transfer':<10} {'floor':<18} {'floor µs':>9} {'work µs':>8} {'ingest µs':>10} "
        f"{'x floor':>8} {'x work':>7}  target"
    )
    ingested: dict[str, float] = {}
    for mode, rounds in measured.items():
        base, work, took = (_median([row[k] for row in rounds]) for k in range(3))
        ingested[mode] = took
        ratio = took / base
        verdict = "ok" if ratio <= TARGETS[mode] else "MISSED"
        workText = f"{work / n * 1e6:>8.1f}" if work is not None else f"{'-':>8}"
        workRatio = f"{took / work:>7.2f}" if work is not None else f"{'-':>7}"
        print(
            f"{mode:<10} {FLOOR_NAMES[mode]:<18} {base / n * 1e6:>9.1f} {workText} {took / n * 1e6:>10.1f} "
            f"{ratio:>8.2f} {workRatio}  ≤ {TARGETS[mode]:g}x {verdict}"
        )
    printPieces(pieces, ingested, n)


def printPieces(pieces: dict[str, dict[str, list[float]]], ingested: dict[str, float], n: int) -> None:
    """Print where a link ingest's time goes: each piece of the work floor, measured in the same run."""
    print()
    print("Where a link ingest's time goes, µs per file (medians; each piece adds to the one above)")
    print(f"{'piece':<58}" + "".join(f"{mode:>10}" for mode in LINKS))
    median = {
        mode: {piece: _median(values) / n * 1e6 for piece, values in pieces[mode].items()} for mode in LINKS
    }
    took = {mode: ingested[mode] / n * 1e6 for mode in LINKS}
    rows = [
        ("link alone (the floor)", {mode: median[mode]["link"] for mode in LINKS}),
        ("+ stat, read and hash each file", {mode: median[mode]["hash"] for mode in LINKS}),
        ("+ 3 rows a file, minimal schema (the work floor)", {mode: median[mode]["bench"] for mode in LINKS}),
        (
            "+ the 5 rows a repository holds, its schema, raw sqlite3",
            {m: median[m]["repository"] for m in LINKS},
        ),
        ("ingest", took),
        ("target: 3x the floor", {mode: TARGETS[mode] * median[mode]["link"] for mode in LINKS}),
        (
            "ingest - repository rows floor (databutler's Python)",
            {m: took[m] - median[m]["repository"] for m in LINKS},
        ),
    ]
    for label, values in rows:
        print(f"{label:<58}" + "".join(f"{values[mode]:>10.1f}" for mode in LINKS))


def _median(values: list[Any]) -> Any:
    if values[0] is None:
        return None
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


if __name__ == "__main__":
    main()
