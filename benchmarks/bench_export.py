"""Benchmark export then import of N datasets (default 10,000) between two repositories.

A source repository of the default configuration gets N small dicts (one `putMany`); then
`Butler.export` writes them to a folder and `Butler.import_` reads that folder into a new
repository; the same through a zip file, through a folder with a YAML manifest, and with hard
links both ways (``transfer="hardlink"`` on export and on import; not the default). The
baseline, measured in the same run on the same disk, is `shutil.copytree` of the datastore's
files. The target is export + import (a folder, JSON manifest, the default ``copy``) within 2x
of one copytree.

An export then import makes every file twice (once in the export, once in the repository, where
it is written under a temporary name and renamed into place), so it also is compared with the
floor of the work it cannot avoid ("work floor"), measured in the same run: a copy of every file
into a folder (open, ``sendfile``), then for each a read, an xxh3-128 hash of the bytes read (the
check of its recorded checksum) and a write to a temporary file renamed into place, then one
transaction inserting with ``executemany`` the rows a dataset needs (its dataset row, one per
data ID value, its location, its file record) into a SQLite database of the registry's settings
(WAL, synchronous=NORMAL). Each timed step starts after an ``os.sync()``, so that none pays for
writing back the files of an earlier one. A shared disk can be several times slower from one
minute to the next, so each row is timed right after a copytree of its own, and a ratio is the
median over the rounds of the row's seconds over its paired copytree's (for ``x floor``, over
the work floor's of the same round); the seconds shown are the fastest of each row. The load
average is printed. The script prints a table and asserts nothing. Usage:
``python benchmarks/bench_export.py [--quick] [--n N] [--repeat R] [--dir FOLDER]``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

from databutler import Butler

DIMS = ("visit", "detector")


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn`` takes (after an ``os.sync()``, garbage collection paused)."""
    os.sync()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def makeSource(root: Path, n: int) -> None:
    Butler.makeRepo(root)
    with Butler(root, run="bench") as butler:
        butler.registerDatasetType("metrics", DIMS, "StructuredDataDict")
        items = [
            (
                {"seeing": 0.71, "nSources": i, "zeroPoint": 27.1},
                "metrics",
                {"visit": i // 100, "detector": i % 100},
            )
            for i in range(n)
        ]
        butler.putMany(items)


def roundTrip(
    tmp: Path, source: Path, name: str, format: str, manifestFormat: str, transfer: str, n: int
) -> tuple[float, float]:
    """Export ``source`` and import it into a new repository; return (export s, import s)."""
    exported = tmp / (f"{name}.zip" if format == "zip" else name)
    target = tmp / f"{name}-target"
    Butler.makeRepo(target)
    with Butler(source, writeable=False) as butler:
        exportSeconds = timed(
            lambda: butler.export(
                exported,
                collections=["bench"],
                format=format,
                manifestFormat=manifestFormat,
                transfer=transfer,
            )
        )
    with Butler(target) as butler:
        importSeconds = timed(lambda: butler.import_(exported, transfer=transfer))
        count = len(butler.queryDatasets("metrics", collections=["bench"]))
    if count != n:
        raise SystemExit(f"the import holds {count} datasets, not {n}")
    return exportSeconds, importSeconds


CASES = {
    "folder": ("directory", "json", "copy"),
    "zip": ("zip", "json", "copy"),
    "folder, YAML manifest": ("directory", "yaml", "copy"),
    "folder, hard links": ("directory", "json", "hardlink"),
}

_FLOOR_TABLES = (
    "CREATE TABLE dataset (id TEXT PRIMARY KEY, typeId INTEGER, runId INTEGER, dataId TEXT, "
    "UNIQUE (typeId, runId, dataId))",
    "CREATE TABLE dimension (datasetId TEXT, name TEXT, value INTEGER, PRIMARY KEY (datasetId, name))",
    "CREATE TABLE location (datasetId TEXT, store TEXT, PRIMARY KEY (datasetId, store))",
    "CREATE TABLE file (store TEXT, datasetId TEXT, component TEXT, path TEXT, formatter TEXT, "
    "storageClass TEXT, fileSize INTEGER, checksum TEXT, timestamp REAL, "
    "PRIMARY KEY (store, datasetId, component), UNIQUE (store, path))",
)


def workFloor(files: Path, work: Path) -> float:
    """Seconds of the work an export then import cannot avoid (see the module docstring)."""
    sources = sorted(str(path) for path in files.rglob("*") if path.is_file())
    relPaths = [os.path.relpath(path, files) for path in sources]
    exported = [str(work / "exported" / relPath) for relPath in relPaths]
    placed = [str(work / "placed" / relPath) for relPath in relPaths]
    for path in (*exported, *placed):
        os.makedirs(os.path.dirname(path), exist_ok=True)

    def copies() -> None:
        for source, target in zip(sources, exported, strict=True):
            inFd = os.open(source, os.O_RDONLY)
            outFd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            os.sendfile(outFd, inFd, None, os.fstat(inFd).st_size)
            os.close(outFd)
            os.close(inFd)

    database = sqlite3.connect(work / "rows.sqlite3", isolation_level=None)
    database.execute("PRAGMA journal_mode = WAL")
    database.execute("PRAGMA synchronous = NORMAL")
    for statement in _FLOOR_TABLES:
        database.execute(statement)

    def checkedCopiesAndRows() -> None:
        rows: dict[str, list[tuple[Any, ...]]] = {"dataset": [], "dimension": [], "location": [], "file": []}
        for index, (source, target) in enumerate(zip(exported, placed, strict=True)):
            with open(source, "rb", buffering=0) as stream:
                data = stream.read()
            checksum = xxhash.xxh3_128(data).hexdigest()
            temp = f"{target}.tmp"
            with open(temp, "xb", buffering=0) as stream:
                stream.write(data)
            os.rename(temp, target)
            datasetId = str(uuid.uuid4())
            rows["dataset"].append((datasetId, 1, 1, f"visit={index // 100},detector={index % 100}"))
            rows["dimension"] += [(datasetId, "visit", index // 100), (datasetId, "detector", index % 100)]
            rows["location"].append((datasetId, "FileDatastore"))
            rows["file"].append(
                ("FileDatastore", datasetId, "", target, "JsonFormatter", "Dict", len(data), checksum, 0.0)
            )
        database.execute("BEGIN")
        for table, values in rows.items():
            marks = ", ".join("?" * len(values[0]))
            database.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
        database.execute("COMMIT")

    try:
        return timed(copies) + timed(checkedCopiesAndRows)
    finally:
        database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 datasets instead of 10,000, one round")
    parser.add_argument("--n", type=int, default=None, help="datasets to move")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 5)")
    parser.add_argument("--dir", default=None, help="folder to work in (default: a temporary one)")
    args = parser.parse_args()
    n = args.n or (500 if args.quick else 10_000)
    repeat = args.repeat or (1 if args.quick else 5)
    # Each row is timed right after a copytree of its own (its pair), so that a ratio compares two
    # runs a few seconds apart; a shared disk can be several times slower from one minute to the next.
    seconds: dict[str, list[float]] = {row: [] for row in ("copytree", "floor", *CASES)}
    parts: dict[str, list[tuple[float, float]]] = {case: [] for case in CASES}
    ratios: dict[str, list[float]] = {row: [] for row in ("floor", *CASES)}
    floorRatios: dict[str, list[float]] = {case: [] for case in CASES}
    loadBefore = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.dir) as name:
        tmp = Path(name)
        source = tmp / "source"
        makeSource(source, n)
        for round in range(repeat):  # interleaved, so that a busy moment of the disk hits every row
            work = tmp / f"round{round}"
            work.mkdir()
            runs: dict[str, Callable[[Path, str], float]] = {
                "floor": lambda path, _: workFloor(source / "bench", path)
            }
            for case, (format, manifestFormat, transfer) in CASES.items():
                runs[case] = functools.partial(
                    _caseSeconds, source, format, manifestFormat, transfer, n, parts[case]
                )
            for index, (row, run) in enumerate(runs.items()):
                copytree = timed(
                    functools.partial(shutil.copytree, source / "bench", work / f"copytree{index}")
                )
                (work / f"row{index}").mkdir()
                rowSeconds = run(work / f"row{index}", f"case{index}")
                seconds["copytree"].append(copytree)
                seconds[row].append(rowSeconds)
                ratios[row].append(rowSeconds / copytree)
            for case in CASES:
                floorRatios[case].append(seconds[case][-1] / seconds["floor"][-1])
            shutil.rmtree(work)
    print(
        f"Export then import of {n:,} small dicts between two repositories (default configuration; {repeat} "
        f"round(s): fastest seconds, median ratios of paired runs; load average {loadBefore:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after)"
    )
    print(f"{'what':<40} {'seconds':>8} {'x copytree':>11} {'x floor':>8}  target")
    print(f"{'shutil.copytree of the files':<40} {min(seconds['copytree']):>8.3f} {1.0:>11.2f}")
    floorRow = f"{'work floor (see the docstring)':<40} {min(seconds['floor']):>8.3f}"
    print(f"{floorRow} {statistics.median(ratios['floor']):>11.2f} {1.0:>8.2f}")
    for case in CASES:
        exportSeconds = min(e for e, _ in parts[case])
        importSeconds = min(i for _, i in parts[case])
        target = "≤ 2x copytree" if case == "folder" else ""
        for what, value in (("export to a", exportSeconds), ("import from a", importSeconds)):
            print(f"{what + ' ' + case:<40} {value:>8.3f}")
        total = f"{'export + import, ' + case:<40} {min(seconds[case]):>8.3f}"
        print(
            f"{total} {statistics.median(ratios[case]):>11.2f} {statistics.median(floorRatios[case]):>8.2f}  {target}"
        )


def _caseSeconds(
    source: Path,
    format: str,
    manifestFormat: str,
    transfer: str,
    n: int,
    parts: list[tuple[float, float]],
    work: Path,
    name: str,
) -> float:
    """Export then import seconds of one case (noting both parts in ``parts``)."""
    exportSeconds, importSeconds = roundTrip(work, source, name, format, manifestFormat, transfer, n)
    parts.append((exportSeconds, importSeconds))
    return exportSeconds + importSeconds


if __name__ == "__main__":
    main()
