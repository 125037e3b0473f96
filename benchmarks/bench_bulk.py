"""Benchmark many puts in one commit: `Butler.putMany` and puts inside one `Butler.transaction`.

Each row is µs per dataset for N small dicts (default 10,000) written to a new repository of the
default configuration (SQLite registry, memory tier in front of a file tier), with its ratio to
the file-system floor measured in the same run in a folder of the same disk: create, write and
rename one small file per dataset. Single puts are shown for comparison. The target is a ratio
of at most 2 (the registry and the bookkeeping add less than the files do). The script prints a
table and asserts nothing. Usage: ``python benchmarks/bench_bulk.py [--quick] [--n N] [--dir FOLDER]``.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from databutler import Butler

DIMS = ("visit", "detector")


def timed(fn: Callable[[], Any], n: int) -> float:
    """µs per operation of ``fn``, which does ``n`` operations (garbage collection paused)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) / n * 1e6
    finally:
        gc.enable()


def dataId(i: int, offset: int) -> dict[str, int]:
    return {"visit": offset + i // 100, "detector": i % 100}


def payloads(n: int) -> list[dict[str, Any]]:
    return [{"seeing": 0.71, "nSources": i, "zeroPoint": 27.1} for i in range(n)]


def fileFloor(folder: Path, n: int) -> float:
    """Create, write and rename one small file per dataset, as an atomic put does."""
    folder.mkdir(parents=True)
    data = b'{"seeing": 0.71, "nSources": 1234, "zeroPoint": 27.1}'

    def writes() -> None:
        for i in range(n):
            temp = folder / f"{i}.tmp"
            temp.write_bytes(data)
            temp.replace(folder / f"{i}.json")

    return timed(writes, n)


def benchPuts(root: Path, n: int) -> dict[str, float]:
    Butler.makeRepo(root)
    out: dict[str, float] = {}
    with Butler(root, run="bench") as butler:
        butler.registerDatasetType("metrics", DIMS, "StructuredDataDict")
        butler.put({"warm": 1}, "metrics", visit=10**6, detector=0)
        objs = payloads(n)

        def many() -> None:
            butler.putMany([(obj, "metrics", dataId(i, 0)) for i, obj in enumerate(objs)])

        def inTransaction() -> None:
            with butler.transaction():
                for i, obj in enumerate(objs):
                    butler.put(obj, "metrics", dataId(i, 10**4))

        def single() -> None:
            for i, obj in enumerate(objs):
                butler.put(obj, "metrics", dataId(i, 2 * 10**4))

        out["putMany"] = timed(many, n)
        out["put inside one transaction"] = timed(inTransaction, n)
        out["put, one commit each"] = timed(single, n)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 datasets instead of 10,000")
    parser.add_argument("--n", type=int, default=None, help="datasets per row")
    parser.add_argument("--dir", default=None, help="folder to work in (default: a temporary one)")
    args = parser.parse_args()
    n = args.n or (1000 if args.quick else 10_000)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        floor = fileFloor(Path(tmp) / "floor", n)
        rows = benchPuts(Path(tmp) / "repo", n)
    print(f"Many puts, one commit: {n:,} small dicts (default repository)")
    print(f"{'what':<40} {'µs/dataset':>11} {'x floor':>8}  target")
    print(f"{'file system floor (create+write+rename)':<40} {floor:>11.1f} {1.0:>8.2f}")
    for what, value in rows.items():
        target = "≤ 2x" if what != "put, one commit each" else ""
        print(f"{what:<40} {value:>11.1f} {value / floor:>8.2f}  {target}")


if __name__ == "__main__":
    main()
