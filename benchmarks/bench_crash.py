"""Kill writers at random and count what is lost: the full form of tests/test_crash.py's loop.

For each backend (SQLite always; PostgreSQL when ``DATABUTLER_TEST_POSTGRES_URL`` is set, e.g.
through ``scripts/postgres.sh run --``), makes a repository and a source repository, then
``--kills`` times forks a child that puts, removes, transfers (and removes and transfers again
at the same paths) and runs transactions mixing them, and SIGKILLs it after a random delay of
up to ``--max-delay`` seconds. Then it counts, straight from the database and the folder, the
removals left unfinished and the files no record names; reopens and cleans up the repository
(`script.cleanupRepo` with no age guard); and checks every dataset the registry lists (read,
checksum and value) and every put the children saw return. Prints one table; asserts nothing.

Run: ``.venv/bin/python benchmarks/bench_crash.py [--kills 200] [--max-delay 0.25] [--seed 1]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from databutler.testing.crash_support import AfterEachKill, checkRepository, killLoop, makeRepositories
from databutler.testing.registry_support import POSTGRES_URL_ENV, dropNamespace, newNamespace


def runBackend(backend: str, kills: int, maxDelay: float, seed: int) -> list[str]:
    """Run the kill loop on ``backend`` and return the table row."""
    registryConfig = None
    if backend == "postgresql":
        registryConfig = {"db": os.environ[POSTGRES_URL_ENV], "namespace": newNamespace()}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-crash-") as folder:
            target, source = makeRepositories(Path(folder), registryConfig)
            logPath = Path(folder) / "work.log"
            start = time.perf_counter()
            afterKills = AfterEachKill(target)
            killed = killLoop(
                target,
                source,
                logPath,
                kills=kills,
                maxDelay=maxDelay,
                seed=seed,
                afterEachKill=afterKills,
            )
            seconds = time.perf_counter() - start
            report = checkRepository(target, logPath, afterKills)
            operations = sum(
                1
                for line in logPath.read_text().splitlines()
                if line.split(" ", 1)[0] in ("PUT", "TRANSFERRED")
            )
    finally:
        if registryConfig is not None:
            dropNamespace(registryConfig["db"], registryConfig["namespace"])
    for problem in report.lost[:10] + report.childErrors[:3]:
        print(f"{backend}: {problem}")
    return [
        backend,
        str(killed),
        f"{seconds / max(kills, 1) * 1000:.0f} ms",
        str(operations),
        str(report.checks),
        str(report.datasets),
        str(len(report.lost)),
        str(report.unfinishedRemovals),
        str(report.orphansBefore),
        str(report.orphansAfter),
        str(report.strayRecords),
        str(len(report.childErrors)),
    ]


def main() -> None:
    """Parse the arguments, run every available backend and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs per backend (default 200)")
    parser.add_argument("--max-delay", type=float, default=0.25, help="longest run before a kill, seconds")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    backends = ["sqlite"] + (["postgresql"] if os.environ.get(POSTGRES_URL_ENV) else [])
    table = Table(title=f"Random SIGKILLs of writer processes (up to {args.max_delay:g} s of work each)")
    for heading in (
        "backend",
        "kills",
        "per kill",
        "puts/transfers seen",
        "dataset checks",
        "datasets at end",
        "lost",
        "unfinished removals",
        "orphans before",
        "orphans after",
        "stray records",
        "child errors",
    ):
        table.add_column(heading, justify="left" if heading == "backend" else "right")
    for backend in backends:
        table.add_row(*runBackend(backend, args.kills, args.max_delay, args.seed))
    Console(width=200).print(table)
    print(
        "dataset checks: every dataset the registry lists is read and verified after each kill and at the end.\n"
        "lost: datasets listed but unreadable, failing their checksum or with the wrong value, plus puts a\n"
        "child saw return that are gone; 'before' is counted from the database and folder before anything\n"
        "is reopened, 'after' once the repository was reopened (which finishes committed removals) and\n"
        "cleaned (script.cleanupRepo, olderThan=0)."
    )
    if len(backends) == 1:
        print(f"(PostgreSQL skipped: set {POSTGRES_URL_ENV}, or run through scripts/postgres.sh run --)")


if __name__ == "__main__":
    main()
