"""Benchmark FileDatastore against plain numpy / json / pyarrow calls on the same disk, same run.

Prints tables of milliseconds (or µs) per operation and the ratio to the plain call:

- put/get of 1 MB and 100 MB float64 arrays vs `np.save` / `np.load` of the same array to the
  same folder (target: within 1.2x for 100 MB with checksums on), with the default checksum
  (xxh3_128), with blake2b and with checksums off, for comparison;
- µs per op for small JSON datasets (put, get, exists, remove) vs `json.dump` / `json.load`;
- Parquet: reading 1 of 20 columns vs the whole table, with checksums on and off, vs pyarrow.

Usage: ``python benchmarks/bench_file.py [--quick] [--dir DIR]`` (``--quick`` shrinks sizes;
``--dir`` picks the disk, default a temporary folder).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from databutler import DatasetRef, DatasetType, FileDatastore
from databutler.datastores.file._io import DEFAULT_CHECKSUM_ALGORITHM, newHasher

Row = tuple[str, float, float | None, float | None]  # operation, value, baseline, target ratio


def makeStore(root: Path, **options: Any) -> FileDatastore:
    return FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(root), **options}})


def best(fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None) -> float:
    """Best-of-``repeat`` seconds for one call of ``fn``."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def printTable(title: str, unit: str, baseName: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    print(f"  {'operation':<44}{unit:>11}{baseName:>14}{'ratio':>8}  target")
    for name, value, base, target in rows:
        ratio = f"{value / base:7.2f}x" if base else " " * 8
        baseText = f"{base:14.3f}" if base else " " * 14
        verdict = ""
        if target is not None and base:
            verdict = f"≤ {target:g}x  {'ok' if value / base <= target else 'MISSED'}"
        print(f"  {name:<44}{value:11.3f}{baseText}{ratio}  {verdict}")


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def arrays(work: Path, sizes: list[int], repeat: int) -> None:
    """Time puts and gets alternately with np.save / np.load, so that both see the same disk state."""
    imageType = DatasetType("image", ("visit",), "NumpyArray")
    rows: list[Row] = []
    modes: list[tuple[str | bool, str]] = [
        (True, f"{DEFAULT_CHECKSUM_ALGORITHM}, the default"),
        ("blake2b", "blake2b"),
        (False, "checksum off"),
    ]
    for size in sizes:
        array = np.random.default_rng(0).random(size // 8)
        label = f"{size / 1e6:g} MB"
        for checksum, mode in modes:
            root = work / f"store-{size}-{checksum}"
            store = makeStore(root, checksum=checksum)
            readRef = DatasetRef(imageType, {"visit": 0}, run="bench")
            store.put(array, readRef)
            assert np.array_equal(store.get(readRef), array)
            plain = work / "plain-read.npy"
            np.save(plain, array)
            saves, puts, loads, gets = [], [], [], []
            for i in range(1, repeat + 1):  # every put and every save makes a new file...
                saves.append(timed(lambda i=i, a=array: np.save(work / f"plain-{i}.npy", a)))
                ref = DatasetRef(imageType, {"visit": i}, run="bench")
                puts.append(timed(lambda s=store, r=ref, a=array: s.put(a, r)))
                (work / f"plain-{i}.npy").unlink()  # ...which is deleted again, so that unwritten
                store.remove(ref)  # pages do not pile up and throttle later writes
                loads.append(timed(lambda p=plain: np.load(p)))
                gets.append(timed(lambda s=store, r=readRef: s.get(r)))
            target = 1.2 if size >= 100_000_000 and checksum is True else None
            rows.append((f"put {label} ({mode})", min(puts) * 1e3, min(saves) * 1e3, target))
            rows.append((f"get {label} ({mode})", min(gets) * 1e3, min(loads) * 1e3, target))
            store.close()
            shutil.rmtree(root)
            for path in work.glob("plain-*.npy"):
                path.unlink()
    printTable(
        "NumPy arrays: FileDatastore vs np.save / np.load (best of runs)", "ms/op", "numpy ms/op", rows
    )
    blob = memoryview(np.random.default_rng(1).random(100_000_000 // 8)).cast("B")
    for algorithm in (DEFAULT_CHECKSUM_ALGORITHM, "blake2b"):
        hashTime = min(timed(lambda a=algorithm: newHasher(a).update(blob)) for _ in range(repeat))
        print(
            f"  ({algorithm} of 100 MB alone, one thread: {hashTime * 1e3:.1f} ms, "
            f"{100 / hashTime:.0f} MB/s on this machine)"
        )


def smallJson(work: Path, n: int) -> None:
    metricsType = DatasetType("metrics", ("visit",), "StructuredDataDict")
    payload = {"seeing": 0.71, "nSources": 1234, "band": "r", "flags": [1, 2, 3]}
    rows: list[Row] = []
    plainDir = work / "plain-json"
    plainDir.mkdir()

    def plainDump() -> None:  # new files each time, as every put makes a new file
        run = uuid.uuid4().hex
        for i in range(n):
            with open(plainDir / f"{run}-{i}.json", "w") as fh:
                json.dump(payload, fh)

    def plainLoad() -> None:
        for path in paths:
            with open(path) as fh:
                json.load(fh)

    dump = best(plainDump, 3) / n * 1e6
    paths = sorted(plainDir.iterdir())[:n]
    load = best(plainLoad, 3) / n * 1e6
    for checksum in (True, False):  # True: the default algorithm
        refs = [DatasetRef(metricsType, {"visit": i}, run="bench") for i in range(n)]
        mode = DEFAULT_CHECKSUM_ALGORITHM if checksum else "checksum off"
        putTimes, getTimes, existsTimes, removeTimes = [], [], [], []
        for _ in range(3):
            root = work / f"json-{uuid.uuid4().hex}"
            store = makeStore(root, checksum=checksum)
            putTimes.append(best(lambda s=store, rs=refs: [s.put(payload, r) for r in rs], 1))
            getTimes.append(best(lambda s=store, rs=refs: [s.get(r) for r in rs], 1))
            existsTimes.append(best(lambda s=store, rs=refs: [s.exists(r) for r in rs], 1))
            removeTimes.append(best(lambda s=store, rs=refs: [s.remove(r) for r in rs], 1))
            store.close()
            shutil.rmtree(root)
        rows.append((f"put ({mode})", min(putTimes) / n * 1e6, dump, None))
        rows.append((f"get ({mode})", min(getTimes) / n * 1e6, load, None))
        rows.append((f"exists ({mode})", min(existsTimes) / n * 1e6, None, None))
        rows.append((f"remove ({mode})", min(removeTimes) / n * 1e6, None, None))
    printTable(
        f"Small JSON datasets ({n} each): µs per op vs json.dump / json.load", "µs/op", "json µs/op", rows
    )


def parquet(work: Path, nRows: int, repeat: int) -> None:
    rng = np.random.default_rng(2)
    table = pa.table({f"c{i:02d}": rng.random(nRows) for i in range(20)})
    sourcesType = DatasetType("sources", ("visit",), "ArrowTable")
    ref = DatasetRef(sourcesType, {"visit": 1}, run="bench")
    plain = work / "plain.parquet"
    pq.write_table(table, plain)
    fullPlain = best(lambda: pq.read_table(plain), repeat)
    colPlain = best(lambda: pq.read_table(plain, columns=["c07"]), repeat)
    rows: list[Row] = []
    for checksum in (True, False):
        store = makeStore(work / f"parquet-{checksum}", checksum=checksum)
        store.put(table, ref)
        mode = DEFAULT_CHECKSUM_ALGORITHM if checksum else "checksum off"
        full = best(lambda s=store: s.get(ref), repeat)
        cols = best(lambda s=store: s.get(ref, parameters={"columns": ["c07"]}), repeat)
        rows.append((f"full read, 20 columns ({mode})", full * 1e3, fullPlain * 1e3, None))
        rows.append((f"columns=['c07'] ({mode})", cols * 1e3, colPlain * 1e3, None))
        rows.append((f"  columns read / full read ({mode})", cols / full, None, None))
        store.close()
    size = plain.stat().st_size / 1e6
    printTable(
        f"Parquet ({nRows} rows x 20 float64 columns, {size:.0f} MB): ms per read",
        "ms/op",
        "pyarrow ms",
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--dir", default=None, help="folder on the disk to measure (default: a temp folder)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_file-", dir=args.dir))
    try:
        print(f"FileDatastore benchmark in {work} (pid {os.getpid()})")
        if args.quick:
            arrays(work, [1_000_000, 10_000_000], repeat=3)
            smallJson(work, 100)
            parquet(work, 50_000, repeat=3)
        else:
            arrays(work, [1_000_000, 100_000_000], repeat=7)
            smallJson(work, 500)
            parquet(work, 500_000, repeat=5)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
