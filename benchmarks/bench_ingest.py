"""Benchmark `Butler.ingest` of many small files against plain file-system loops on the same disk.

N small JSON files (default 10,000) are ingested into a new repository of the default
configuration (SQLite registry, memory tier in front of a file tier) with ``copy``, ``hardlink``
and ``symlink``, each in one call (one registry commit). Each is compared with its floor measured
in the same run, in a folder of the same disk: a loop of `shutil.copyfile`, `os.link` or
`os.symlink` over the same files. Targets: ``copy`` within 2x of its floor, the links within 3x.
Ingest does more per file than the floor (a checksum of each file, a temporary name renamed into
place, a registry row and a file record), which is what the ratio measures. The script prints a
table and asserts nothing. Usage: ``python benchmarks/bench_ingest.py [--quick] [--n N] [--dir FOLDER]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from databutler import Butler, DatasetRef, FileDataset

FLOORS: dict[str, Callable[[str, str], Any]] = {
    "copy": shutil.copyfile,
    "hardlink": os.link,
    "symlink": os.symlink,
}
TARGETS = {"copy": 2.0, "hardlink": 3.0, "symlink": 3.0}


def timed(fn: Callable[[], Any]) -> float:
    """Seconds taken by ``fn`` (garbage collection paused)."""
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
    args = parser.parse_args()
    n = args.n or (500 if args.quick else 10_000)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        sources = makeSources(Path(tmp) / "sources", n)
        for mode in FLOORS:
            base = floor(mode, sources, Path(tmp) / f"floor-{mode}")
            took = ingest(mode, sources, Path(tmp) / f"repo-{mode}")
            rows.append((mode, base, took))
    print(f"Ingest of {n:,} small files, one call each (default repository), against plain loops")
    print(
        f"{'transfer':<10} {'floor':<18} {'floor s':>8} {'ingest s':>9} {'µs/file':>8} {'x floor':>8}  target"
    )
    for mode, base, took in rows:
        name = {"copy": "shutil.copyfile", "hardlink": "os.link", "symlink": "os.symlink"}[mode]
        ratio = took / base
        verdict = "ok" if ratio <= TARGETS[mode] else "MISSED"
        print(
            f"{mode:<10} {name:<18} {base:>8.3f} {took:>9.3f} {took / n * 1e6:>8.1f} {ratio:>8.2f}"
            f"  ≤ {TARGETS[mode]:g}x {verdict}"
        )


if __name__ == "__main__":
    main()
