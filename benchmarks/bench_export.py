"""Benchmark export then import of N datasets (default 10,000) between two repositories.

A source repository of the default configuration gets N small dicts (one `putMany`); then
`Butler.export` writes them to a folder and `Butler.import_` reads that folder into a new
repository; the same through a zip file, and through a folder with a YAML manifest. The
baseline, measured in the same run on the same disk, is `shutil.copytree` of the datastore's
files. The target is export + import (a folder, JSON manifest) within 2x of one copytree; an
export then import copies every file twice, so 2x is about what the files alone cost. Rounds are
interleaved and the fastest of each row is shown, so that a busy moment of a shared disk does not
decide a ratio. The script prints a table and asserts nothing. Usage:
``python benchmarks/bench_export.py [--quick] [--n N] [--repeat R] [--dir FOLDER]``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from databutler import Butler

DIMS = ("visit", "detector")


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn`` takes (garbage collection paused)."""
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
    tmp: Path, source: Path, name: str, format: str, manifestFormat: str, n: int
) -> tuple[float, float]:
    """Export ``source`` and import it into a new repository; return (export s, import s)."""
    exported = tmp / (f"{name}.zip" if format == "zip" else name)
    target = tmp / f"{name}-target"
    Butler.makeRepo(target)
    with Butler(source, writeable=False) as butler:
        exportSeconds = timed(
            lambda: butler.export(
                exported, collections=["bench"], format=format, manifestFormat=manifestFormat
            )
        )
    with Butler(target) as butler:
        importSeconds = timed(lambda: butler.import_(exported))
        count = len(butler.queryDatasets("metrics", collections=["bench"]))
    if count != n:
        raise SystemExit(f"the import holds {count} datasets, not {n}")
    return exportSeconds, importSeconds


CASES = {
    "folder": ("directory", "json"),
    "zip": ("zip", "json"),
    "folder, YAML manifest": ("directory", "yaml"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 datasets instead of 10,000, one round")
    parser.add_argument("--n", type=int, default=None, help="datasets to move")
    parser.add_argument("--repeat", type=int, default=None, help="rounds; the fastest of each row is shown")
    parser.add_argument("--dir", default=None, help="folder to work in (default: a temporary one)")
    args = parser.parse_args()
    n = args.n or (500 if args.quick else 10_000)
    repeat = args.repeat or (1 if args.quick else 3)
    floor = float("inf")
    best = {case: (float("inf"), float("inf")) for case in CASES}
    with tempfile.TemporaryDirectory(dir=args.dir) as name:
        tmp = Path(name)
        source = tmp / "source"
        makeSource(source, n)
        for round in range(repeat):  # interleaved, so that a busy moment of the disk hits every row
            work = tmp / f"round{round}"
            work.mkdir()
            floor = min(floor, timed(functools.partial(shutil.copytree, source / "bench", work / "copytree")))
            for index, (case, (format, manifestFormat)) in enumerate(CASES.items()):
                seconds = roundTrip(work, source, f"case{index}", format, manifestFormat, n)
                best[case] = (min(best[case][0], seconds[0]), min(best[case][1], seconds[1]))
            shutil.rmtree(work)
    print(
        f"Export then import of {n:,} small dicts between two repositories (default configuration; best of {repeat})"
    )
    print(f"{'what':<40} {'seconds':>8} {'x copytree':>11}  target")
    print(f"{'shutil.copytree of the files':<40} {floor:>8.3f} {1.0:>11.2f}")
    for case, (exportSeconds, importSeconds) in best.items():
        total = exportSeconds + importSeconds
        target = "≤ 2x" if case == "folder" else ""
        print(f"{'export to a ' + case:<40} {exportSeconds:>8.3f} {exportSeconds / floor:>11.2f}")
        print(f"{'import from a ' + case:<40} {importSeconds:>8.3f} {importSeconds / floor:>11.2f}")
        print(f"{'export + import, ' + case:<40} {total:>8.3f} {total / floor:>11.2f}  {target}")


if __name__ == "__main__":
    main()
