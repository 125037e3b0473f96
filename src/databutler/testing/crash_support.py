"""Killing real writer processes at random moments, then checking that nothing was lost.

`killLoop` forks a child (from a parent that has imported databutler already, so a child starts
in milliseconds) that opens a Butler repository and works without end — puts, removes,
transfers from a second repository and transactions mixing them — while the parent kills it
with SIGKILL after a random delay, over and over. `checkRepository` then reopens the
repository, runs the recovery a user would (opening it, then `script.cleanupRepo` with no age
guard) and checks what must hold:

- every dataset the registry lists is readable, checksum-valid and has the value it was put with;
- every put the child saw return (and did not later try to remove) is still there;
- no file without a record survives recovery, and no record names a dataset the registry lost.

The value of each dataset is a function of its data ID (`expectedValue`), so the checker
needs no copy of what was written. The child logs each operation before it starts and after
it returns (one line each, to a file in the parent's folder), which tells "the child saw it
commit" from "the child was killed during it" (either outcome is then fine, if it is whole).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..butler import Butler
from ..dataset_ref import DatasetRef

__all__ = [
    "AfterEachKill",
    "CrashReport",
    "checkRepository",
    "expectedValue",
    "killLoop",
    "listedProblems",
    "makeRepositories",
]

RUN = "crash"
SOURCE_RUN = "source"
SOURCE_COUNT = 40


def expectedValue(datasetType: str, visit: int) -> Any:
    """Return the value a dataset of ``datasetType`` with this visit is put with."""
    if datasetType == "image":
        return np.full(1000 + (visit * 7919) % 60_000, float(visit))
    return {"visit": visit, "pad": "x" * ((visit * 104729) % 3000)}


def makeRepositories(folder: Path, registryConfig: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Make the repository the children write to and a source repository to transfer from.

    ``registryConfig`` (e.g. ``{"db": url, "namespace": ...}``) is the target's registry.
    """
    target, source = folder / "target", folder / "source"
    Butler.makeRepo(target, {"registry": registryConfig} if registryConfig else None)
    Butler.makeRepo(source)
    for root in (target, source):
        with Butler(root) as butler:
            butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
            butler.registerDatasetType("image", ("visit",), "NumpyArray")
    with Butler(source, run=SOURCE_RUN) as butler:
        for visit in range(1_000_000, 1_000_000 + SOURCE_COUNT):
            name = "image" if visit % 3 == 0 else "metrics"
            butler.put(expectedValue(name, visit), name, visit=visit)
    return target, source


def _work(target: Path, source: Path, logPath: Path, seed: int) -> None:
    """Work on ``target`` until killed (the child); log each operation before and after."""
    rng = random.Random(seed)
    log = open(logPath, "a", buffering=1)  # noqa: SIM115  # one write per line; killed, never closed
    butler = Butler(target, run=RUN)
    sourceButler = Butler(source)
    sourceRefs = sourceButler.queryDatasets("metrics") + sourceButler.queryDatasets("image")
    mine = [ref for ref in butler.queryDatasets() if ref.run == RUN]
    transferred = [ref for ref in butler.queryDatasets() if ref.run == SOURCE_RUN]
    counter = seed * 100_000

    def put() -> DatasetRef:
        nonlocal counter
        counter += 1
        name = "image" if rng.random() < 0.3 else "metrics"
        return butler.put(expectedValue(name, counter), name, visit=counter)

    log.write("READY\n")
    while True:
        op = rng.choice(("put", "put", "remove", "transfer", "removeTransferred", "transaction"))
        if op == "put":
            ref = put()
            log.write(f"PUT {ref.id}\n")
            mine.append(ref)
        elif op == "remove" and mine:
            refs = rng.sample(mine, min(len(mine), rng.randint(1, 4)))
            log.write(f"REMOVING {' '.join(str(r.id) for r in refs)}\n")
            butler.removeDatasets(refs)
            mine = [r for r in mine if r not in refs]
        elif op == "transfer":
            refs = rng.sample(sourceRefs, rng.randint(1, 8))
            log.write(f"TRANSFERRING {' '.join(str(r.id) for r in refs)}\n")
            done = butler.transferFrom(sourceButler, refs)
            log.write(f"TRANSFERRED {' '.join(str(r.id) for r in done)}\n")
            transferred.extend(done)
        elif op == "removeTransferred" and transferred:
            refs = rng.sample(transferred, min(len(transferred), rng.randint(1, 6)))
            log.write(f"REMOVING {' '.join(str(r.id) for r in refs)}\n")
            butler.removeDatasets(refs)  # a later transfer puts them back at the same paths
            transferred = [r for r in transferred if r not in refs]
        elif op == "transaction":
            victims = rng.sample(mine, min(len(mine), 2))
            rollback = rng.random() < 0.3
            log.write(f"REMOVING {' '.join(str(r.id) for r in victims)}\n")
            try:
                with butler.transaction():
                    new = [put(), put()]
                    butler.removeDatasets(victims)
                    try:  # an inner transaction that fails is undone on its own
                        with butler.transaction():
                            put()
                            butler.removeDatasets(new[:1])
                            raise RuntimeError("roll back the inner transaction")
                    except RuntimeError:
                        pass
                    if rollback:
                        raise KeyError("roll back the whole transaction")
            except KeyError:
                continue
            log.write(f"PUT {' '.join(str(r.id) for r in new)}\n")
            mine = [r for r in mine if r not in victims] + new


def _child(target: Path, source: Path, logPath: Path, seed: int) -> None:
    try:
        _work(target, source, logPath, seed)
    except BaseException:
        with open(logPath, "a") as log:
            log.write("ERROR " + traceback.format_exc().replace("\n", " | ") + "\n")
    finally:
        os._exit(3)


def _waitReady(logPath: Path, start: int, pid: int, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(logPath) as log:
            log.seek(start)
            text = log.read()
        if "READY" in text or "ERROR" in text:
            return "READY" in text
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
        time.sleep(0.005)
    return False


def killLoop(
    target: Path,
    source: Path,
    logPath: Path,
    kills: int,
    maxDelay: float = 0.25,
    seed: int = 0,
    afterEachKill: Callable[[], None] | None = None,
) -> int:
    """Fork a working child ``kills`` times and SIGKILL each after a random delay.

    ``afterEachKill`` runs in the parent after each kill, before the next child starts (see
    `AfterEachKill`): a later child may remove a dataset a crash had damaged, which a check at
    the end only would never see.

    Returns
    -------
    killed : int
        How many children were killed while working (a child that failed is not counted;
        its error is in the log).
    """
    rng = random.Random(seed)
    killed = 0
    logPath.touch()
    for i in range(kills):
        start = logPath.stat().st_size
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _child(target, source, logPath, seed * 10_000 + i + 1)
        ready = _waitReady(logPath, start, pid)
        if ready:
            time.sleep(rng.uniform(0.0, maxDelay))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        if ready and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            killed += 1
        if afterEachKill is not None:
            afterEachKill()
    return killed


def listedProblems(target: Path) -> tuple[dict[str, str], int]:
    """Open ``target`` (which recovers) and check every dataset the registry lists.

    Returns ``{dataset id: what is wrong}`` for each one the file tier cannot give back
    intact with the value it was put with, and how many were checked.
    """
    problems: dict[str, str] = {}
    with Butler(target) as butler:
        fileTier = butler.datastore.datastores[-1]  # type: ignore[attr-defined]
        refs = butler.queryDatasets()
        for ref in refs:
            try:
                fileTier.verify(ref)
                value = fileTier.get(ref)
                expected = expectedValue(ref.datasetType.name, int(ref.dataId["visit"]))
                same = (
                    np.array_equal(value, expected) if isinstance(expected, np.ndarray) else value == expected
                )
                if not same:
                    problems[str(ref.id)] = f"{ref}: wrong value"
            except Exception as exc:
                problems[str(ref.id)] = f"{ref}: {type(exc).__name__}: {exc}"
    return problems, len(refs)


@dataclass
class CrashReport:
    """What `checkRepository` found."""

    datasets: int = 0
    """Datasets the registry lists at the end, all read and verified."""
    checks: int = 0
    """Dataset checks, over all the checks after each kill and the last one."""
    lost: list[str] = field(default_factory=list)
    """Datasets listed but unreadable or wrong, and puts the child saw return that are gone."""
    unfinishedRemovals: int = 0
    """Removals committed with files still to delete (trash rows) when reopened, over all kills."""
    orphansBefore: int = 0
    """Files under the root no record names (temporary and set-aside ones too), before reopening."""
    orphansAfter: int = 0
    """The same after `cleanupRepo`: must be 0."""
    strayRecords: int = 0
    """Records of datasets the registry does not list: must be 0."""
    childErrors: list[str] = field(default_factory=list)


def _logged(logPath: Path) -> tuple[set[str], set[str], list[str]]:
    """Return (ids the child saw put, ids it tried to remove, errors) from the log."""
    put: set[str] = set()
    removing: set[str] = set()
    errors: list[str] = []
    for line in logPath.read_text().splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PUT", "TRANSFERRED"):
            put.update(rest.split())
        elif word == "REMOVING":
            removing.update(rest.split())
        elif word == "ERROR":
            errors.append(rest)
    return put, removing, errors


def _rawCounts(target: Path) -> tuple[int, int]:
    """Count trash rows and unrecorded files straight from the database and the folder.

    Nothing is opened that would recover: only the registry (which holds the file records).
    """
    from ..butler_config import ButlerConfig, repoConfigPath
    from ..datastores.file._records import RECORDS_TABLE, TRASH_SUFFIX
    from ..registry import SqlRegistry

    path = repoConfigPath(target)
    config = ButlerConfig.fromRepo(path).resolved(path.parent.absolute())
    with SqlRegistry.fromConfig(config, root=str(target)) as registry:
        rows = registry.recordStorage.registerRecordTable(RECORDS_TABLE).fetch()
    trash = len({row["datasetId"] for row in rows if str(row["datastoreName"]).endswith(TRASH_SUFFIX)})
    recorded = {row["path"] for row in rows if row["datastoreName"] == "file"}
    unrecorded = 0
    for folder, _, names in os.walk(target):
        for name in names:
            relPath = os.path.relpath(os.path.join(folder, name), target)
            if "/" in relPath and relPath not in recorded:
                unrecorded += 1
    return int(trash), unrecorded


class AfterEachKill:
    """What to run after each kill (`killLoop`'s ``afterEachKill``): count, then check.

    Counts the removals the kill left unfinished (before anything is reopened), then reopens
    the repository (which finishes them) and records what `listedProblems` finds.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.unfinishedRemovals = 0
        self.checks = 0
        self.problems: dict[str, str] = {}

    def __call__(self) -> None:
        """Count the unfinished removals, then reopen and check the repository."""
        self.unfinishedRemovals += _rawCounts(self.target)[0]
        problems, checked = listedProblems(self.target)
        self.problems.update(problems)
        self.checks += checked


def checkRepository(target: Path, logPath: Path, afterKills: AfterEachKill | None = None) -> CrashReport:
    """Reopen ``target``, recover, and check it (see the module docstring).

    ``afterKills`` is what ran after each kill: the problems it saw count as lost too, and its
    unfinished removals are added up.
    """
    from ..script.repo import cleanupRepo

    report = CrashReport()
    put, removing, report.childErrors = _logged(logPath)
    report.unfinishedRemovals, report.orphansBefore = _rawCounts(target)
    problems: dict[str, str] = {}
    if afterKills is not None:
        report.unfinishedRemovals += afterKills.unfinishedRemovals
        problems.update(afterKills.problems)
    cleanupRepo(target, olderThan=0.0)
    problems.update(listedProblems(target)[0])
    with Butler(target) as butler:
        listed = {str(ref.id) for ref in butler.queryDatasets()}
        report.datasets = len(listed)
        report.checks = len(listed) + (afterKills.checks if afterKills is not None else 0)
        fileTier = butler.datastore.datastores[-1]  # type: ignore[attr-defined]
        report.strayRecords = len(fileTier._records.datasetIds() - listed)
    for datasetId in sorted(put - removing - listed):
        problems.setdefault(datasetId, f"{datasetId}: put and never removed, but gone")
    report.lost = sorted(problems.values())
    report.orphansAfter = _rawCounts(target)[1]
    return report
