"""A short `Butler.map`: 48 units on a Dask LocalCluster of 2 worker processes, one merge.

Makes a repository with one ``raw`` dataset per (visit, detector), maps a function that writes
``calexp`` and ``src`` for each, shows a unit that raises (reported with its data ID, nothing of
it merged), reruns the map with a fixed function (only that unit runs) and verifies the
repository. ``--in-process`` runs the units in this process instead of on a cluster.

Run with ``make demo`` (or ``python examples/map_demo.py [--in-process]``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from databutler import Butler
from databutler.exceptions import MapUnitError
from databutler.script import verifyDatasets

DIMS = ("visit", "detector")


def calibrate(dataId: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Refuse a raw with a negative level; otherwise write its calibrated value and a summary."""
    level = inputs["raw"]["level"]
    if level < 0:
        raise ValueError(f"negative bias level {level} in {dataId}")
    return {"calexp": {"level": level - 100}, "src": {"nSources": 10 * dataId["detector"] + level % 7}}


def calibrateClipped(dataId: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """`calibrate` with negative levels clipped to 0 (the fix)."""
    return calibrate(dataId, {"raw": {"level": max(0, inputs["raw"]["level"])}})


def makeRepo(root: Path, dataIds: list[dict[str, int]]) -> Butler:
    Butler.makeRepo(root)
    butler = Butler(root, run="raw", collections=["raw"])
    for name in ("raw", "calexp", "src"):
        butler.registerDatasetType(name, DIMS, "StructuredDataDict")
    bad = {"visit": 2, "detector": 5}
    butler.putMany(
        [({"level": -3 if d == bad else 1000 + 10 * d["visit"] + d["detector"]}, "raw", d) for d in dataIds]
    )
    print(f"Repository {root}: {len(dataIds)} raw datasets (visit 0-3, detector 0-11); raw {bad} is bad.")
    return butler


def runMaps(butler: Butler, dataIds: list[dict[str, int]], executor: Any, where: str) -> None:
    outputs = ["calexp", "src"]
    start = time.perf_counter()
    try:
        butler.map(calibrate, dataIds, inputs=["raw"], outputs=outputs, run="calib", executor=executor)
    except MapUnitError as error:
        result = error.result
        (failure,) = error.failures
        print(f"map 1 ({where}): {len(dataIds)} units in {time.perf_counter() - start:.1f} s")
        print(f"  failed: unit {failure.dataId}: {failure.error}")
        print(f"  its traceback ends: {failure.traceback.strip().splitlines()[-1]}")
        print(
            f"  merged the others: {result.merged} datasets in {result.transactions} registry transaction(s)"
        )
    start = time.perf_counter()
    again = butler.map(
        calibrateClipped, dataIds, inputs=["raw"], outputs=outputs, run="calib", executor=executor
    )
    print(
        f"map 2 (fixed function): ran {again.unitsRun} unit, skipped {again.unitsSkipped} already done, "
        f"merged {again.merged} datasets in {again.transactions} transaction(s), {time.perf_counter() - start:.1f} s"
    )
    sample = {"visit": 3, "detector": 7}
    calexp = butler.get("calexp", sample, collections=["calib"])
    ref = butler.findDataset("calexp", sample, collections=["calib"])
    assert ref is not None
    print(f"  calexp {sample} = {calexp}; its id was predicted before any worker ran: "
          f"{ref.id == butler.predictDatasetId('calexp', sample, 'calib')}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description="A short Butler.map.")
    parser.add_argument("--in-process", dest="inProcess", action="store_true", help="No cluster.")
    args = parser.parse_args()
    dataIds = [{"visit": v, "detector": d} for v in range(4) for d in range(12)]
    with tempfile.TemporaryDirectory(prefix="databutler-map-demo-") as tmp:
        root = Path(tmp) / "repo"
        with makeRepo(root, dataIds) as butler:
            if args.inProcess:
                runMaps(butler, dataIds, None, "in this process")
            else:
                import distributed

                started = time.perf_counter()
                with (
                    distributed.LocalCluster(
                        n_workers=2,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=":0",
                        silence_logs=50,
                    ) as cluster,
                    distributed.Client(cluster) as client,
                ):
                    print(
                        f"LocalCluster of 2 worker processes on 127.0.0.1 up in {time.perf_counter() - started:.1f} s"
                    )
                    runMaps(butler, dataIds, client, "LocalCluster, 2 workers")
        report = verifyDatasets(root)
        print(
            f"verify: {report.checked} datasets checked, {len(report.missing)} missing, "
            f"{len(report.corrupted)} corrupted, {len(report.orphans)} orphan files"
        )


if __name__ == "__main__":
    main()
