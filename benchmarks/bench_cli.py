"""Benchmark the command line's start against its floors, measured in the same run.

Two targets, each a ratio to a yardstick run in turn with it (A B A B ..., ratio per pair):

- ``databutler --help`` within 2x of ``python -c 'import click'`` (the interpreter's start
  plus the one library the help needs);
- ``databutler query-datasets REPO`` on a 100-dataset repository, its output piped, within 2x
  of ``python -c 'import sqlalchemy'`` (the registry's library alone).

Beside them, for reading the figures: ``python -c pass`` and the libraries a read-only query
cannot start without. Each figure is the median of the runs, CPU seconds of the finished
child (user + system, from `os.wait4`) and wall seconds; the ratio is the median of the
per-pair ratios of CPU seconds (the machine is shared, and CPU time moves least with load).

Bytecode: an interpreter run with ``PYTHONDONTWRITEBYTECODE`` set compiles every module of an
editable install on every start, which no installed package does, so the package is compiled
once first (``compileall``), as pip does on install.

Usage: ``python benchmarks/bench_cli.py [--quick] [--runs N]``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
LIBRARIES = "import sqlalchemy, sqlalchemy.dialects.sqlite, fsspec, yaml, click"
"""What ``query-datasets`` cannot start without: the registry's, the file tier's, config, CLI."""


def runOnce(command: list[str]) -> tuple[float, float]:
    """Run ``command`` with its output piped to nowhere; return (CPU seconds, wall seconds)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = b""
    if process.stderr is not None:
        stderr = process.stderr.read()
        process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"{command} exited {process.returncode}: {stderr.decode(errors='replace')}")
    return usage.ru_utime + usage.ru_stime, wall


def alternate(command: list[str], baseline: list[str], runs: int) -> dict[str, float]:
    """Run both in turn ``runs`` times after one warm-up pair; return medians and the ratio."""
    a: list[tuple[float, float]] = []
    b: list[tuple[float, float]] = []
    for i in range(runs + 1):
        pair = (runOnce(command), runOnce(baseline))
        if i:  # the first pair warms the file cache
            a.append(pair[0])
            b.append(pair[1])
    return {
        "cpu": statistics.median(t[0] for t in a),
        "wall": statistics.median(t[1] for t in a),
        "baseCpu": statistics.median(t[0] for t in b),
        "baseWall": statistics.median(t[1] for t in b),
        "ratio": statistics.median(x[0] / y[0] for x, y in zip(a, b, strict=True)),
        "ratioMin": min(x[0] / y[0] for x, y in zip(a, b, strict=True)),
        "ratioMax": max(x[0] / y[0] for x, y in zip(a, b, strict=True)),
    }


def makeRepository(root: Path, n: int) -> None:
    from databutler import Butler

    Butler.makeRepo(root)
    with Butler(root, run="bench") as butler:
        butler.registerDatasetType("metrics", ("visit", "detector"), "StructuredDataDict")
        for i in range(n):
            butler.put({"i": i}, "metrics", {"visit": i // 100, "detector": i % 100})


def cliTable(root: Path, runs: int) -> None:
    """Print the command-line table (``root`` is a repository of 100 datasets)."""
    import databutler

    compileall.compile_dir(str(Path(databutler.__file__).parent), quiet=1)
    databutler_ = str(BIN / "databutler") if (BIN / "databutler").exists() else shutil.which("databutler")
    if databutler_ is None:
        raise SystemExit("The databutler command is not installed; run `make .venv/.installed`.")
    python = sys.executable
    print(f"\nCommand line: median of {runs} alternating runs, CPU s (wall s), ratio of CPU per pair")
    print(f"  {'command':<42}{'A s':>14}  {'yardstick B':<30}{'B s':>14}{'A/B':>7} {'range':>11}  target")
    for command, baseline, label, baseLabel, target in (
        ([python, "-c", "pass"], [python, "-c", "pass"], "python -c pass", "python -c pass", None),
        ([databutler_, "--help"], [python, "-c", "import click"], "databutler --help",
         "python -c 'import click'", 2.0),
        ([databutler_, "query-datasets", str(root)], [python, "-c", "import sqlalchemy"],
         "databutler query-datasets (100 datasets)", "python -c 'import sqlalchemy'", 2.0),
        ([python, "-c", LIBRARIES], [python, "-c", "import sqlalchemy"],
         "floor: the libraries it cannot do without", "python -c 'import sqlalchemy'", None),
    ):  # fmt: skip
        r = alternate(command, baseline, runs)
        verdict = "" if target is None else f"≤ {target:g}x {'ok' if r['ratio'] <= target else 'MISSED'}"
        spread = f"{r['ratioMin']:.2f}-{r['ratioMax']:.2f}"
        print(
            f"  {label:<42}{r['cpu']:6.3f} ({r['wall']:5.3f})  {baseLabel:<30}"
            f"{r['baseCpu']:6.3f} ({r['baseWall']:5.3f}){r['ratio']:6.2f}x {spread:>11}  {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per command, for a smoke run")
    parser.add_argument("--runs", type=int, default=None, help="runs per command (default 15)")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 15)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cli-repo"
        makeRepository(root, 100)
        cliTable(root, runs)


if __name__ == "__main__":
    main()
