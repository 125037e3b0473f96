"""The databutler story on the embedded default: Python API first, then the command line.

Creates a repository (SQLite registry, memory tier in front of a file tier), registers dataset
types, puts datasets of several kinds, queries them, gets whole datasets, components and slices,
shows the errors users see, transfers everything to a second repository and verifies it —
then does the same through the installed ``databutler`` command. Needs no server.

Run with ``make demo`` (or ``python examples/butler_demo.py [--keep DIR]``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.table import Table
from rich.console import Console
from rich.table import Table as RichTable

from databutler import Butler, DatabutlerError, MaskedImage

console = Console(highlight=False)
DIMS = ("visit", "detector")


def section(title: str) -> None:
    console.rule(f"[bold]{title}")


def say(*parts: object) -> None:
    """Print plain text (no rich markup: data such as lists contain brackets)."""
    console.print(" ".join(str(p) for p in parts), markup=False, soft_wrap=True)


def pythonApi(work: Path) -> None:
    repo, copy = work / "repo", work / "copy"
    section("Python API: create a repository")
    config = Butler.makeRepo(repo)
    chain = [child["datastore"]["cls"].rsplit(".", 1)[-1] for child in config["datastore.datastores"]]
    say(f"Butler.makeRepo({str(repo)!r}): registry {config['registry.db']}, datastore {chain}")

    butler = Butler(repo, run="demo/night1")
    for name, dims, storageClass in [
        ("metrics", DIMS, "StructuredDataDict"),
        ("flat", DIMS, "NumpyArray"),
        ("calexp", DIMS, "MaskedImage"),
        ("sourceTable", ("visit",), "ArrowTable"),
        ("objectTable", ("tract",), "DataFrame"),
    ]:
        butler.registerDatasetType(name, dims, storageClass)
    say(
        "Registered:",
        ", ".join(f"{t.name} ({t.storageClass.name})" for t in butler.registry.queryDatasetTypes()),
    )

    section("put datasets of several kinds")
    rng = np.random.default_rng(42)
    for visit in (903334, 903336):
        butler.put({"seeing": 0.7, "nSources": 1200 + visit % 10}, "metrics", visit=visit, detector=10)
        butler.put(np.arange(100.0).reshape(10, 10) + visit, "flat", visit=visit, detector=10)
        image = MaskedImage(
            rng.normal(size=(8, 8)), np.zeros((8, 8), np.int32), {"exptime": 30.0, "visit": visit}
        )
        butler.put(image, "calexp", {"visit": visit}, detector=10)
        butler.put(
            pa.table({"ra": rng.uniform(0, 1, 5), "dec": rng.uniform(0, 1, 5), "flux": rng.uniform(size=5)}),
            "sourceTable",
            visit=visit,
        )
    ref = butler.put(
        pd.DataFrame({"objectId": [1, 2, 3], "mag": [21.2, 22.5, 19.9]}), "objectTable", tract=9813
    )
    say(f"Last put: {ref}, served from the memory tier: {butler.getUri(ref)}")

    section("query")
    table = RichTable("dataset type", "run", "data ID", "storage class")
    for found in butler.queryDatasets():
        dataId = ", ".join(f"{k}={v}" for k, v in found.dataId.items())
        table.add_row(found.datasetType.name, str(found.run), dataId, found.datasetType.storageClass.name)
    console.print(table)
    say(
        "where visit=903336:",
        [f"{r.datasetType.name}" for r in butler.queryDatasets(where={"visit": 903336})],
    )

    section("get: whole, component, slice, columns")
    say("whole      metrics =", butler.get("metrics", visit=903334, detector=10))
    say("component  calexp.metadata =", butler.get("calexp.metadata", visit=903334, detector=10))
    corner = butler.get("flat", visit=903334, detector=10, parameters={"slice": (slice(0, 2), slice(0, 3))})
    say("slice      flat[0:2, 0:3] =", corner.tolist())
    radec = butler.get("sourceTable", visit=903334, parameters={"columns": ["ra", "dec"]})
    say("columns    sourceTable[ra, dec] ->", radec.column_names, f"{radec.num_rows} rows")

    section("errors name what was asked for")
    attempts = {
        "missing dataset": lambda: butler.get("metrics", visit=1, detector=10),
        "unknown dataset type": lambda: butler.get("bias", visit=903334, detector=10),
        "data ID with a missing key": lambda: butler.get("flat", visit=903334),
        "data ID with an extra key": lambda: butler.get("sourceTable", visit=903334, band="r"),
        "conflicting put": lambda: butler.put({"seeing": 9.9}, "metrics", visit=903334, detector=10),
    }
    for what, attempt in attempts.items():
        try:
            attempt()
        except DatabutlerError as exc:
            say(f"{what}: {type(exc).__name__}: {exc}")

    section("a transaction spans registry and datastore")
    try:
        with butler.transaction():
            butler.put({"seeing": 1.1}, "metrics", visit=903338, detector=10)
            butler.put({"seeing": 9.9}, "metrics", visit=903334, detector=10)  # conflicts
    except DatabutlerError as exc:
        say(
            f"rolled back ({type(exc).__name__}); visit 903338 exists: "
            f"{butler.exists('metrics', visit=903338, detector=10)}"
        )

    section("transfer to a second repository, then verify")
    Butler.makeRepo(copy)
    with Butler(copy, collections=["demo/night1"]) as target:
        done = target.transferFrom(butler, butler.queryDatasets())
        say(f"transferred {len(done)} datasets to {copy}; again: {len(target.transferFrom(butler, done))}")
    butler.close()
    with Butler(copy, collections=["demo/night1"]) as reopened:  # a new process would see the same
        say(
            "copy, read from its files: calexp.image shape =",
            reopened.get("calexp.image", visit=903336, detector=10).shape,
        )
    run("verify", str(copy), cwd=work)


def run(*args: str, cwd: Path, check: bool = True) -> str:
    """Run the installed ``databutler`` command in ``cwd``, show it and its output, return the output."""
    exe = Path(sys.executable).with_name("databutler")
    command = [str(exe) if exe.exists() else "databutler", *args]
    console.print(f"[bold cyan]$ databutler {shlex.join(args)}", soft_wrap=True)
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if check and result.returncode != 0:
        raise SystemExit(f"databutler {shlex.join(args)} failed:\n{result.stdout}{result.stderr}")
    output = result.stdout + result.stderr
    sys.stdout.write(output)
    sys.stdout.flush()
    return output


def writeInputFiles(files: Path) -> None:
    """Make one input file of each supported format."""
    files.mkdir()
    (files / "metrics.json").write_text(json.dumps({"seeing": 0.65, "nSources": 987}))
    (files / "config.yaml").write_text("filter: r\nexptime: 30\n")
    np.save(files / "flat.npy", np.arange(64.0).reshape(8, 8))
    sources = pa.table({"ra": [10.1, 10.2, 10.3], "dec": [-5.0, -5.1, -5.2], "flux": [1.0, 2.0, 3.0]})
    pq.write_table(sources, files / "sources.parquet")
    Table({"objectId": [1, 2], "mag": [20.5, 21.0]}).write(files / "objects.fits")


def commandLine(work: Path) -> None:
    section("command line: the same story through the databutler command")
    writeInputFiles(work / "files")
    say(f"(in {work}; input files: {', '.join(sorted(p.name for p in (work / 'files').iterdir()))})")

    def cli(*args: str, check: bool = True) -> str:
        return run(*args, cwd=work, check=check)

    cli("create", "cli-repo")
    for name, storageClass, *dims in [
        ("metrics", "StructuredDataDict", "visit", "detector"),
        ("exposureConfig", "StructuredDataDict", "visit"),
        ("flat", "NumpyArray", "visit", "detector"),
        ("sourceTable", "ArrowTable", "visit"),
        ("objectTable", "AstropyTable", "tract"),
    ]:
        cli("register-dataset-type", "cli-repo", name, storageClass, *dims)
    for name, file, *dataId in [
        ("metrics", "metrics.json", "visit=1", "detector=2"),
        ("exposureConfig", "config.yaml", "visit=1"),
        ("flat", "flat.npy", "visit=1", "detector=2"),
        ("sourceTable", "sources.parquet", "visit=1"),
        ("objectTable", "objects.fits", "tract=9813"),
    ]:
        cli("put", "cli-repo", name, f"files/{file}", *dataId, "--run", "cli/run")
    cli("query-datasets", "cli-repo")
    cli("get", "cli-repo", "metrics", "visit=1", "detector=2")
    cli("get", "cli-repo", "flat", "visit=1", "detector=2", "-p", "slice=0:2,0:3", "-o", "corner.npy")
    say("  corner.npy holds", np.load(work / "corner.npy").tolist())
    cli("get", "cli-repo", "sourceTable", "visit=1", "-p", "columns=ra,dec", "-o", "radec.parquet")
    cli("get", "cli-repo", "objectTable", "tract=9813")
    cli("get", "cli-repo", "flat", "visit=7", "detector=2", check=False)
    cli("create", "cli-copy")
    cli("transfer", "cli-repo", "cli-copy")
    cli("remove", "cli-copy", "exposureConfig", "visit=1")
    cli("stats", "cli-copy")
    cli("verify", "cli-copy")


def main() -> None:
    parser = argparse.ArgumentParser(description="The databutler demo.")
    parser.add_argument("--keep", metavar="DIR", help="Make the repositories in DIR and keep them.")
    args = parser.parse_args()
    if args.keep:
        work = Path(args.keep)
        work.mkdir(parents=True, exist_ok=True)
        pythonApi(work)
        commandLine(work)
        return
    with tempfile.TemporaryDirectory(prefix="databutler-demo-") as tmp:
        pythonApi(Path(tmp))
        commandLine(Path(tmp))


if __name__ == "__main__":
    main()
