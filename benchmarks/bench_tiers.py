"""Benchmark the default repository's two tiers and the command line against their floors.

Each table prints a ratio to a floor measured in the same run:

- cold get: ``Butler.get`` by data ID of a small dataset in a newly opened default repository,
  against its floor: the same registry lookup (``Butler.findDataset``), the file tier's record
  lookup and reading and decoding the file with its formatter directly (target ≤ 1.5x);
- scan: a cyclic scan over 1.5x the memory tier's budget, three passes in a new process (run
  ``--repeat`` times per repository, the run with the median warm time shown): the hit rate
  (target ≥ 30%), warm gets (passes 2-3) against cold ones (pass 1, and a file-only
  repository), peak RSS against a file-only repository's (target ≤ budget + 20%), and minor
  page faults per warm get (memory the allocator had to map afresh);

The command line's start is measured by ``benchmarks/bench_cli.py``.

Usage: ``python benchmarks/bench_tiers.py [--quick] [--dir FOLDER] [--repeat K]``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DIMS = ("visit", "detector")
FILE_ONLY = {"datastore": {"cls": "databutler.datastores.file.FileDatastore", "root": "<butlerRoot>"}}
BIN = Path(sys.executable).parent


def dataId(i: int) -> dict[str, int]:
    return {"visit": i // 100, "detector": i % 100}


def coldGetTable(root: Path, n: int) -> None:
    from databutler import Butler
    from databutler.formatters.json import JsonFormatter

    Butler.makeRepo(root)
    with Butler(root, run="bench") as butler:
        butler.registerDatasetType("metrics", DIMS, "StructuredDataDict")
        for i in range(n + 1):
            butler.put({"seeing": 0.71, "nSources": i, "zeroPoint": 27.1}, "metrics", dataId(i))
    results: dict[str, list[float]] = {"get": [], "floor": []}
    for _ in range(3):  # alternate the two, each in a newly opened Butler
        for what in ("get", "floor"):
            with Butler(root, collections=["bench"]) as butler:
                butler.get("metrics", dataId(n))  # open connections, build caches
                fileTier = butler.datastore.datastores[-1]  # type: ignore[attr-defined]
                formatter = JsonFormatter()
                storageClass = butler.registry.getDatasetType("metrics").storageClass
                gc.collect()
                start = time.perf_counter()
                if what == "get":
                    for i in range(n):
                        butler.get("metrics", dataId(i))
                else:
                    for i in range(n):
                        ref = butler.findDataset("metrics", dataId(i))
                        info = fileTier.getStoredItemInfo(ref)
                        data = (root / info.path).read_bytes()
                        formatter.readBuffer(memoryview(data), storageClass, {})
                results[what].append((time.perf_counter() - start) / n * 1e6)
    get, floor = min(results["get"]), min(results["floor"])
    print(f"\nCold get by data ID, {n:,} small datasets, newly opened default repository (best of 3)")
    print(f"  {'measurement':<70}{'µs/op':>9}")
    print(f"  {'Butler.get (registry, memory-tier miss, file tier, read-through)':<70}{get:9.1f}")
    floorText = "floor: findDataset + file record + read and decode with the formatter"
    print(f"  {floorText:<70}{floor:9.1f}")
    verdict = "ok" if get / floor <= 1.5 else "MISSED"
    print(f"  {'ratio (target ≤ 1.5x)':<70}{get / floor:8.2f}x  {verdict}")


SCAN = """
import json, resource, sys, time
import numpy as np
from databutler import Butler
root, n, passes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out, faults = [], []
with Butler(root, collections=["bench"]) as butler:
    for _ in range(passes):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        for i in range(n):
            butler.get("image", visit=i // 100, detector=i % 100)
        out.append((time.perf_counter() - start) / n * 1e6)
        faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n)
    stats = None
    for child in getattr(butler.datastore, "datastores", []):
        if hasattr(child, "stats"):
            stats = child.stats()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"us": out, "faults": faults, "peakMiB": peak, "hits": stats.hits if stats else 0,
                  "misses": stats.misses if stats else 0, "refused": stats.refused if stats else 0}))
"""


def scanTable(folder: Path, budgetMiB: int, repeat: int = 3) -> None:
    import numpy as np

    from databutler import Butler

    n = budgetMiB * 3 // 2  # 1 MiB arrays: 1.5 x the budget
    rows = []
    for label, admission in (
        ("default (frequency admission)", "frequency"),
        ("LRU (admission: all)", "all"),
        ("file only", None),
    ):
        root = folder / label.split()[0].lower()
        if admission is None:
            config: dict[str, Any] = FILE_ONLY
        else:
            config = {
                "datastore": {
                    "cls": "databutler.datastores.chained.ChainedDatastore",
                    "readThrough": True,
                    "datastores": [
                        {"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore", "name": "memory",
                                       "maxBytes": f"{budgetMiB}MiB", "admission": admission}},
                        {"datastore": {"cls": "databutler.datastores.file.FileDatastore", "name": "file",
                                       "root": "<butlerRoot>", "records": {"db": "registry"}}},
                    ],
                }
            }  # fmt: skip
        Butler.makeRepo(root, config)
        with Butler(root, run="bench") as butler:  # the scan runs in a new process: a cold tier
            butler.registerDatasetType("image", DIMS, "NumpyArray")
            for i in range(n):
                butler.put(np.full(131_072, float(i)), "image", dataId(i))
        runs = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", SCAN, str(root), str(n), "3"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(repeat)
        ]  # one process's allocator may serve the scan better or worse than another's: the median run
        runs.sort(key=lambda r: statistics.mean(r["us"][1:]))
        rows.append((label, runs[len(runs) // 2]))
    fileOnly = rows[-1][1]
    print(
        f"\nCyclic scan: 3 passes over {n} arrays of 1 MiB, 1.5 x a {budgetMiB} MiB memory tier (new process, "
        f"median of {repeat})"
    )
    print(f"  {'repository':<32}{'pass 1 µs':>11}{'pass 2-3 µs':>13}{'hit rate':>10}{'refused':>9}{'peak MiB':>10}"
          f"{'vs file-only':>14}{'faults/get 2-3':>16}")  # fmt: skip
    for label, r in rows:
        warm = statistics.mean(r["us"][1:])
        total = r["hits"] + r["misses"]
        rate = f"{r['hits'] / total:9.0%}" if total else "        -"
        extra = r["peakMiB"] - fileOnly["peakMiB"]
        print(f"  {label:<32}{r['us'][0]:11.1f}{warm:13.1f}{rate:>10}{r['refused']:9}{r['peakMiB']:10.1f}"
              f"{extra:+13.1f}{statistics.mean(r['faults'][1:]):16.1f}")  # fmt: skip
    print(
        "  (faults/get: minor page faults per get in passes 2-3; a warm pass that allocates fresh pages for"
    )
    print("  every miss shows ~260 per 1 MiB miss and pays them in system time)")
    default = rows[0][1]
    warm = statistics.mean(default["us"][1:])
    hitRate = default["hits"] / max(1, default["hits"] + default["misses"])
    print(
        f"  targets: hit rate ≥ 30%: {'ok' if hitRate >= 0.3 else 'MISSED'}; warm ≤ cold (file only, "
        f"{fileOnly['us'][0]:.1f} µs): {'ok' if warm <= statistics.mean(fileOnly['us']) else 'MISSED'}; "
        f"peak ≤ file-only + {budgetMiB * 1.2:.0f} MiB: "
        f"{'ok' if default['peakMiB'] - fileOnly['peakMiB'] <= budgetMiB * 1.2 else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 datasets, a 32 MiB tier")
    parser.add_argument("--dir", default=None, help="folder for the repositories (default: the system's)")
    parser.add_argument("--budget", type=int, default=None, help="memory tier budget in MiB (default 256)")
    parser.add_argument("--repeat", type=int, default=3, help="scan processes per repository (default 3)")
    args = parser.parse_args()
    n, budget = (200, 32) if args.quick else (1000, 256)
    budget = args.budget or budget
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        coldGetTable(Path(tmp) / "cold", n)
        scanTable(Path(tmp) / "scan", budget, args.repeat)


if __name__ == "__main__":
    main()
