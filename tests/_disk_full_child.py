"""Run by tests/test_disk_full.py inside a private mount namespace, on a small tmpfs at argv[1].

Fills a repository until the disk is full, then checks that every failure was a typed error,
that removals still run and free space, and that the repository is intact. Prints a JSON report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from databutler import Butler, DatabaseFullError, DatabutlerError


def main() -> None:
    mount = Path(sys.argv[1])
    command = sys.argv[2]
    root = mount / "repo"
    Butler.makeRepo(root)
    report: dict[str, object] = {"reserveAtOpen": False, "errors": []}
    errors: list[str] = []
    with Butler(root, run="run1") as butler:
        report["reserveAtOpen"] = Path(f"{root}/registry.sqlite3.reserve").exists()
        butler.registerDatasetType("image", ("visit",), "NumpyArray")
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        refs = []
        for visit in range(10_000):  # big files until a write fails
            try:
                refs.append(butler.put(np.full(20_000, visit, dtype=np.float64), "image", visit=visit))
            except DatabutlerError as exc:
                errors.append(type(exc).__name__)
                break
        for visit in range(10_000):  # then small ones, until the registry's log cannot grow
            try:
                butler.put({"visit": visit, "pad": "x" * 3000}, "metrics", visit=visit)
            except DatabaseFullError as exc:
                errors.append(type(exc).__name__)
                report["fullMessage"] = str(exc)
                break
            except DatabutlerError as exc:
                errors.append(type(exc).__name__)
        report["errors"] = errors
        report["putBeforeFull"] = len(refs)
        before = os.statvfs(mount)
        report["freeBeforeRemove"] = before.f_bavail * before.f_frsize
        butler.removeDatasets(refs[:3])  # would fail with DatabaseFullError without the reserve
        after = os.statvfs(mount)
        report["freeAfterRemove"] = after.f_bavail * after.f_frsize
        report["removedGone"] = [butler.exists(ref) for ref in refs[:3]]
        report["keptReadable"] = bool(np.all(butler.get(refs[3]) == 3))
    cli = subprocess.run([command, "remove", str(root), "image", "visit=4,5"], capture_output=True, text=True)
    report["cliRemove"] = [cli.returncode, cli.stdout.strip().splitlines()[-1:], cli.stderr]
    with Butler(root) as butler:
        report["left"] = len(butler.queryDatasets("image"))
    verify = subprocess.run([command, "verify", str(root), "image"], capture_output=True, text=True)
    report["verify"] = [verify.returncode, verify.stdout.strip(), verify.stderr.strip()]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
