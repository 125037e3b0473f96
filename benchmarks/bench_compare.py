"""Run the same workloads through databutler and the LSST Data Butler (lsst-daf-butler).

``make bench-compare`` builds a separate virtual environment, ``.bench-compare-venv``, with
``lsst-daf-butler`` from the package index, then runs this script. Each round runs one fresh
worker process per system, the two in turn (databutler first in even rounds, LSST first in odd
ones), and the table gives the median and range over the rounds per system and the ratio of
the medians (LSST / databutler: above 1, databutler is faster).

Workloads (both systems, default repositories, data IDs over (instrument, detector)):

- import: ``from databutler import Butler`` / ``from lsst.daf.butler import Butler`` in a new
  interpreter (seconds, interpreter start included);
- put: a small dict (``StructuredDataDict``), each put its own transaction;
- puts in one transaction: the same, inside one ``butler.transaction()``;
- warm get: each small dict again by data ID from the Butler that put it;
- cold get: each small dict by data ID from a newly opened Butler;
- 1 MiB array put and get (``NumpyArray``, cold get);
- range query: ``detector >= a AND detector < b`` returning 1% of the datasets of a
  repository holding ``--datasets`` of them (registry entries only, added in bulk);
- the in-memory datastore alone: put and get of a small dict by resolved ref.

Usage: ``python benchmarks/bench_compare.py --lsst-python .bench-compare-venv/bin/python
[--quick] [--rounds N] [--datasets N]``; a worker is ``--worker databutler|lsst``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

WORKLOADS = [
    ("import", "s"),
    ("put", "µs/put"),
    ("puts in one transaction", "µs/put"),
    ("warm get", "µs/get"),
    ("cold get", "µs/get"),
    ("1 MiB array put", "ms/put"),
    ("1 MiB array get (cold)", "ms/get"),
    ("range query (1%)", "ms/query"),
    ("in-memory datastore put", "µs/put"),
    ("in-memory datastore get", "µs/get"),
]
IMPORTS = {"databutler": "from databutler import Butler", "lsst": "from lsst.daf.butler import Butler"}


def timed(fn: Callable[[], object], n: int, scale: float) -> float:
    """Return the time per operation of ``fn`` (which does ``n`` of them), in ``1/scale`` s."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n * scale


class DatabutlerSystem:
    def __init__(self, root: Path) -> None:
        from databutler import Butler, DatasetType

        self.Butler, self.DatasetType, self.root = Butler, DatasetType, root
        Butler.makeRepo(root)
        self.butler = Butler(root, run="bench")
        for name, storageClass in (("metrics", "StructuredDataDict"), ("image", "NumpyArray")):
            self.butler.registerDatasetType(name, ("instrument", "detector"), storageClass)

    def put(self, obj: Any, name: str, detector: int) -> None:
        self.butler.put(obj, name, {"instrument": "Cam", "detector": detector})

    def get(self, butler: Any, name: str, detector: int) -> Any:
        return butler.get(name, {"instrument": "Cam", "detector": detector}, collections="bench")

    def reopen(self) -> Any:
        return self.Butler(self.root, writeable=False)

    def addDatasets(self, n: int, offset: int) -> None:
        dataIds = [{"instrument": "Cam", "detector": offset + i} for i in range(n)]
        self.butler.registry.addDatasets("metrics", dataIds, "bench")

    def rangeQuery(self, low: int, high: int) -> int:
        where = f"instrument = 'Cam' AND detector >= {low} AND detector < {high}"
        return len(list(self.butler.registry.queryDatasets("metrics", collections="bench", where=where)))

    def memoryStore(self) -> tuple[Callable[[Any, Any], None], Callable[[Any], Any], list[Any]]:
        from databutler import DatasetRef, InMemoryDatastore

        store = InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore"}})
        datasetType = self.DatasetType("mem", ("instrument", "detector"), "StructuredDataDict")
        refs = [
            DatasetRef(datasetType, {"instrument": "Cam", "detector": i}, run="bench") for i in range(10_000)
        ]
        return store.put, store.get, refs


class LsstSystem:
    def __init__(self, root: Path) -> None:
        from lsst.daf.butler import Butler, DatasetType

        self.Butler, self.DatasetType, self.root = Butler, DatasetType, root
        Butler.makeRepo(str(root))
        self.butler = Butler.from_config(str(root), writeable=True, run="bench")
        self.butler.registry.insertDimensionData(
            "instrument",
            {
                "name": "Cam",
                "detector_max": 10**7,
                "visit_max": 10**6,
                "exposure_max": 10**6,
                "visit_system": 0,
            },
        )
        self._detectors = 0
        for name, storageClass in (("metrics", "StructuredDataDict"), ("image", "NumpyArray")):
            datasetType = DatasetType(
                name, ("instrument", "detector"), storageClass, universe=self.butler.dimensions
            )
            self.butler.registry.registerDatasetType(datasetType)

    def detectors(self, upTo: int) -> None:
        """LSST data IDs need their dimension records: add detectors below ``upTo`` (untimed)."""
        if upTo > self._detectors:
            records = [
                {"instrument": "Cam", "id": i, "full_name": str(i)} for i in range(self._detectors, upTo)
            ]
            self.butler.registry.insertDimensionData("detector", *records)
            self._detectors = upTo

    def put(self, obj: Any, name: str, detector: int) -> None:
        self.butler.put(obj, name, instrument="Cam", detector=detector)

    def get(self, butler: Any, name: str, detector: int) -> Any:
        return butler.get(name, instrument="Cam", detector=detector, collections="bench")

    def reopen(self) -> Any:
        return self.Butler.from_config(str(self.root), writeable=False, collections="bench")

    def addDatasets(self, n: int, offset: int) -> None:
        datasetType = self.butler.registry.getDatasetType("metrics")
        dataIds = [{"instrument": "Cam", "detector": offset + i} for i in range(n)]
        self.butler.registry.insertDatasets(datasetType, dataIds, run="bench")

    def rangeQuery(self, low: int, high: int) -> int:
        where = f"instrument = 'Cam' AND detector >= {low} AND detector < {high}"
        return len(list(self.butler.registry.queryDatasets("metrics", collections="bench", where=where)))

    def memoryStore(self) -> tuple[Callable[[Any, Any], None], Callable[[Any], Any], list[Any]]:
        from lsst.daf.butler import Butler, Config

        root = self.root.parent / "lsst-memory"
        config = Config(
            {"datastore": {"cls": "lsst.daf.butler.datastores.inMemoryDatastore.InMemoryDatastore"}}
        )
        Butler.makeRepo(str(root), config=config)
        butler = Butler.from_config(str(root), writeable=True, run="bench")
        butler.registry.insertDimensionData(
            "instrument",
            {
                "name": "Cam",
                "detector_max": 10**7,
                "visit_max": 10**6,
                "exposure_max": 10**6,
                "visit_system": 0,
            },
        )
        butler.registry.insertDimensionData(
            "detector", *[{"instrument": "Cam", "id": i, "full_name": str(i)} for i in range(10_000)]
        )
        datasetType = self.DatasetType(
            "mem", ("instrument", "detector"), "StructuredDataDict", universe=butler.dimensions
        )
        butler.registry.registerDatasetType(datasetType)
        refs = butler.registry.insertDatasets(
            datasetType, [{"instrument": "Cam", "detector": i} for i in range(10_000)], run="bench"
        )
        store = butler._datastore
        return store.put, store.get, refs


def worker(system: str, folder: Path, n: int, arrays: int, datasets: int) -> dict[str, float]:
    """Run every workload but import once in this process; return {workload: figure}."""
    import numpy as np

    s: Any = DatabutlerSystem(folder / "repo") if system == "databutler" else LsstSystem(folder / "repo")
    if system == "lsst":
        s.detectors(max(datasets, 3 * n + arrays) + 1)
    out: dict[str, float] = {}
    objs = [{f"k{j}": i + j for j in range(10)} for i in range(3 * n)]
    out["put"] = timed(lambda: [s.put(objs[i], "metrics", i) for i in range(n)], n, 1e6)
    transaction = s.butler.transaction

    def inOne() -> None:
        with transaction():
            for i in range(n, 2 * n):
                s.put(objs[i], "metrics", i)

    out["puts in one transaction"] = timed(inOne, n, 1e6)
    out["warm get"] = timed(lambda: [s.get(s.butler, "metrics", i) for i in range(2 * n)], 2 * n, 1e6)
    fresh = s.reopen()
    out["cold get"] = timed(lambda: [s.get(fresh, "metrics", i) for i in range(2 * n)], 2 * n, 1e6)
    images = [np.full(131_072, float(i)) for i in range(arrays)]
    base = 3 * n
    out["1 MiB array put"] = timed(
        lambda: [s.put(images[i], "image", base + i) for i in range(arrays)], arrays, 1e3
    )
    fresh = s.reopen()
    out["1 MiB array get (cold)"] = timed(
        lambda: [s.get(fresh, "image", base + i) for i in range(arrays)], arrays, 1e3
    )
    offset = 3 * n + arrays + 1
    if datasets > offset:
        s.addDatasets(datasets - offset, offset)
    low = datasets // 2
    high = low + max(1, datasets // 100)
    found = s.rangeQuery(low, high)
    assert found == high - low, (found, high - low)
    out["range query (1%)"] = min(timed(lambda: s.rangeQuery(low, high), 1, 1e3) for _ in range(3))
    put, get, refs = s.memoryStore()
    memObjs = [{f"k{j}": i + j for j in range(10)} for i in range(len(refs))]
    out["in-memory datastore put"] = timed(
        lambda: [put(o, r) for o, r in zip(memObjs, refs, strict=True)], len(refs), 1e6
    )
    out["in-memory datastore get"] = timed(lambda: [get(r) for r in refs], len(refs), 1e6)
    return out


def importSeconds(python: str, system: str) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", IMPORTS[system]], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lsst-python", dest="lsstPython", help="the interpreter that has lsst-daf-butler")
    parser.add_argument("--worker", choices=("databutler", "lsst"), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes and 2 rounds, for a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per system (default 5)")
    parser.add_argument("--datasets", type=int, default=None, help="datasets for the range query (100,000)")
    args = parser.parse_args()
    n, arrays = (50, 5) if args.quick else (500, 40)
    datasets = args.datasets or (5_000 if args.quick else 100_000)
    if args.worker:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(worker(args.worker, Path(tmp), n, arrays, datasets)))
        return
    if not args.lsstPython:
        parser.error("--lsst-python is required (make bench-compare builds one)")
    pythons = {"databutler": sys.executable, "lsst": args.lsstPython}
    rounds = args.rounds or (2 if args.quick else 5)
    results: dict[str, dict[str, list[float]]] = {system: {w: [] for w, _ in WORKLOADS} for system in pythons}
    for r in range(rounds):
        order = ["databutler", "lsst"] if r % 2 == 0 else ["lsst", "databutler"]
        for system in order:
            results[system]["import"].append(importSeconds(pythons[system], system))
            command = [pythons[system], __file__, "--worker", system, "--datasets", str(datasets)]
            done = subprocess.run(
                command + (["--quick"] if args.quick else []), check=True, capture_output=True, text=True
            )
            for workload, value in json.loads(done.stdout.splitlines()[-1]).items():
                results[system][workload].append(value)
    version = subprocess.run(
        [args.lsstPython, "-c", "import importlib.metadata as m; print(m.version('lsst-daf-butler'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    print(
        f"\ndatabutler vs lsst-daf-butler {version}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()} {platform.processor() or ''} Python {platform.python_version()}; "
        f"{rounds} rounds alternating, {n} small dicts, {arrays} arrays of 1 MiB, range query at {datasets:,}"
    )
    print("\n| workload | unit | databutler median (range) | LSST median (range) | LSST / databutler |")
    print("| --- | --- | --- | --- | --- |")
    for workload, unit in WORKLOADS:
        a, b = results["databutler"][workload], results["lsst"][workload]
        ma, mb = statistics.median(a), statistics.median(b)
        print(
            f"| {workload} | {unit} | {ma:.3g} ({min(a):.3g}-{max(a):.3g}) | {mb:.3g} ({min(b):.3g}-{max(b):.3g}) "
            f"| {mb / ma:.2f}x |"
        )


if __name__ == "__main__":
    main()
