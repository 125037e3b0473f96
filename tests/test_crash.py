"""Crashes lose nothing: real child processes are SIGKILLed during removes, puts and transfers.

Each deterministic test stops a child at a chosen point (it signals through a file, then
sleeps), kills it with SIGKILL and reopens the repository, on SQLite and on PostgreSQL. The
random kill loop (`databutler.testing.crash_support`) runs here in a bounded form; the full
one (>= 200 kills per backend) is ``benchmarks/bench_crash.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from databutler import Butler, DatasetExistsError, DatasetRef, FileDatastore
from databutler.cli import cli
from databutler.datastore.bridge import InMemoryLocationRegistry
from databutler.script import cleanupRepo, findOrphans, repoStats, verifyDatasets
from databutler.testing.crash_support import AfterEachKill, checkRepository, killLoop, makeRepositories
from databutler.testing.datastore_tests import makeTestDatasetType
from databutler.testing.registry_support import dropNamespace, newNamespace, postgresUrl

CHILD = r"""
import os, sys, time
from databutler import Butler, DatasetExistsError, DatasetRef, FileDatastore
from databutler.datastore.transaction import DatastoreTransaction

root, mode, signalPath = sys.argv[1:4]


def stall(*args, **kwargs):
    open(signalPath, "w").close()
    time.sleep(120)


butler = Butler(root, run="run")
ref = butler.queryDatasets("metrics")[0]
if mode == "before commit":  # the remove is done, the registry transaction not committed
    with butler.transaction():
        butler.removeDatasets([ref])
        stall()
elif mode == "after commit":  # the registry has committed, the files are not deleted yet
    DatastoreTransaction.runCommitActions = stall
    butler.removeDatasets([ref])
elif mode == "ingest before commit":  # every entry placed and recorded, nothing committed
    from databutler import FileDataset

    folder, transfer = sys.argv[4:6]
    metrics = butler.getDatasetType("metrics")
    names = sorted(os.listdir(folder))
    with butler.transaction():
        butler.ingest(
            *[FileDataset(os.path.join(folder, n), DatasetRef(metrics, {"visit": 100 + i})) for i, n in enumerate(names)],
            transfer=transfer,
        )
        stall()
elif mode == "copy between link and unlink":  # 2 of 3 temporary files linked in, nothing committed
    from databutler import FileDataset

    folder = sys.argv[4]
    metrics = butler.getDatasetType("metrics")
    names = sorted(os.listdir(folder))
    realLink, linked = os.link, []

    def linkThenStall(*args, **kwargs):
        realLink(*args, **kwargs)
        linked.append(args)
        if len(linked) == 2:
            stall()

    os.link = linkThenStall
    butler.ingest(
        *[FileDataset(os.path.join(folder, n), DatasetRef(metrics, {"visit": 100 + i})) for i, n in enumerate(names)],
        transfer="copy",
    )
elif mode == "transfer before commit":
    source = Butler(sys.argv[4])
    with butler.transaction():
        butler.removeDatasets([ref])
        butler.transferFrom(source, source.queryDatasets("metrics"))
        stall()
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def registryConfig(request: pytest.FixtureRequest) -> Iterator[dict[str, str] | None]:
    if request.param == "sqlite":
        yield None
        return
    url, namespace = postgresUrl(), newNamespace()
    yield {"db": url, "namespace": namespace}
    dropNamespace(url, namespace)


def makeRepo(root: Path, registryConfig: dict[str, str] | None) -> Butler:
    Butler.makeRepo(root, {"registry": registryConfig} if registryConfig else None)
    butler = Butler(root, run="run")
    butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
    return butler


def killAt(root: Path, mode: str, tmp_path: Path, *extra: str) -> None:
    signalPath = tmp_path / "signal"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), mode, str(signalPath), *extra])
    try:
        deadline = time.monotonic() + 120
        while not signalPath.exists():
            assert child.poll() is None, f"child exited early with {child.returncode}"
            assert time.monotonic() < deadline, "child never reached the point to kill it at"
            time.sleep(0.01)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL


def filePath(butler: Butler, ref: DatasetRef) -> Path:
    """The dataset's file in the file tier (the chain answers with the memory tier's URI)."""
    return Path(butler.datastore.datastores[-1].getUri(ref).removeprefix("file://"))  # type: ignore[attr-defined]


def datasetFiles(root: Path) -> list[Path]:
    """Every file under the run's folder, hidden (set-aside, temporary) ones too."""
    return sorted(p for p in (root / "run").rglob("*") if p.is_file())


def test_killed_between_remove_and_commit_loses_nothing(
    tmp_path: Path, registryConfig: dict[str, str] | None
) -> None:
    root = tmp_path / "repo"
    with makeRepo(root, registryConfig) as butler:
        ref = butler.put({"a": 1}, "metrics", visit=1)
        before = datasetFiles(root)
    killAt(root, "before commit", tmp_path)
    assert datasetFiles(root) == before  # the file was never touched
    with Butler(root, run="run") as butler:
        assert butler.exists(ref) and butler.get(ref) == {"a": 1}
    assert verifyDatasets(root).isOk
    cleanupRepo(root, olderThan=0)  # the leftover cleanup must not take it either
    with Butler(root, run="run") as butler:
        assert butler.get(ref) == {"a": 1}
        butler.removeDatasets([ref])  # and it can still be removed
        assert not butler.exists(ref)
    assert datasetFiles(root) == []


def test_killed_after_the_remove_committed_recovery_deletes_the_files(
    tmp_path: Path, registryConfig: dict[str, str] | None
) -> None:
    root = tmp_path / "repo"
    with makeRepo(root, registryConfig) as butler:
        ref = butler.put({"a": 1}, "metrics", visit=1)
        kept = butler.put({"b": 2}, "metrics", visit=2)
    killAt(root, "after commit", tmp_path)
    with Butler(root, run="run") as butler:  # opening finishes the committed removal
        assert not butler.exists(ref) and butler.get(kept) == {"b": 2}
        assert datasetFiles(root) == [filePath(butler, kept)]
    assert findOrphans(root) == []


def test_killed_during_a_transfer_then_remove_loses_nothing(
    tmp_path: Path, registryConfig: dict[str, str] | None
) -> None:
    source = tmp_path / "source"
    with makeRepo(source, None) as butler:
        transferred = [butler.put({"v": v}, "metrics", visit=v) for v in (5, 6)]
    root = tmp_path / "repo"
    with makeRepo(root, registryConfig) as butler:
        butler.transferFrom(Butler(source), transferred)
        butler.removeDatasets(transferred[:1])
        ref = butler.queryDatasets("metrics")[0]
    killAt(root, "transfer before commit", tmp_path, str(source))
    with Butler(root, run="run") as butler:
        assert butler.get(ref) == {"v": ref.dataId["visit"]}
        assert sorted(r.id for r in butler.queryDatasets("metrics")) == [transferred[1].id]
    report = verifyDatasets(root)
    assert report.isOk
    # The transfer had moved the removed dataset's file back into place, uncommitted: an orphan,
    # found and cleaned (the dataset's own file is never mistaken for one).
    assert len(report.orphans) == 1 and "visit-5" in report.orphans[0]
    assert cleanupRepo(root, olderThan=0).removed == report.orphans
    assert findOrphans(root) == []
    with Butler(root, run="run") as butler:
        assert butler.get(transferred[1]) == {"v": 6}


def ingestSetup(tmp_path: Path, registryConfig: dict[str, str] | None) -> tuple[Path, Path, DatasetRef, Path]:
    """Three small files to ingest, and a repository holding one dataset: (folder, root, its ref, its file)."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for i in range(3):
        (incoming / f"raw{i}.json").write_text(f'{{"i": {i}}}')
    root = tmp_path / "repo"
    with makeRepo(root, registryConfig) as butler:
        kept = butler.put({"a": 1}, "metrics", visit=1)
        keptPath = filePath(butler, kept)
    return incoming, root, kept, keptPath


@pytest.mark.parametrize("transfer", ["symlink", "hardlink", "copy"])
def test_killed_during_an_ingest_leaves_only_what_the_cleanup_removes(
    tmp_path: Path, registryConfig: dict[str, str] | None, transfer: str
) -> None:
    """Links are made at their final paths before the commit: a kill leaves unrecorded entries,
    which the orphan cleanup finds (links too, never followed) and removes; the sources stay."""
    incoming, root, kept, keptPath = ingestSetup(tmp_path, registryConfig)
    killAt(root, "ingest before commit", tmp_path, str(incoming), transfer)
    placed = [p for p in datasetFiles(root) if p != keptPath]
    assert len(placed) == 3 and all(p.is_symlink() == (transfer == "symlink") for p in placed)
    with Butler(root, run="run") as butler:
        assert [r.id for r in butler.queryDatasets("metrics")] == [kept.id]
    orphans = findOrphans(root)
    assert orphans == sorted(p.as_uri() for p in placed)
    assert cleanupRepo(root, olderThan=0).removed == orphans
    assert datasetFiles(root) == [keptPath] and findOrphans(root) == []
    assert [p.read_text() for p in sorted(incoming.iterdir())] == [f'{{"i": {i}}}' for i in range(3)]
    with Butler(root, run="run") as butler:
        assert butler.get(kept) == {"a": 1}


def test_killed_between_linking_a_copy_in_and_unlinking_its_temporary_leaves_only_what_the_cleanup_removes(
    tmp_path: Path, registryConfig: dict[str, str] | None
) -> None:
    """A copy's temporary file is hard-linked to its final path, then unlinked: a kill between the
    two leaves both names, nothing recorded; reopening and the cleanup leave only what was there."""
    incoming, root, kept, keptPath = ingestSetup(tmp_path, registryConfig)
    killAt(root, "copy between link and unlink", tmp_path, str(incoming))
    left = [p for p in datasetFiles(root) if p != keptPath]
    assert len([p for p in left if not p.name.startswith(".")]) == 2  # linked in, never recorded
    assert (
        len([p for p in left if p.name.startswith(".")]) == 2
    )  # the first unlinked, the second and third not
    with Butler(root, run="run") as butler:
        assert [r.id for r in butler.queryDatasets("metrics")] == [kept.id]
        assert butler.get(kept) == {"a": 1}
    cleanupRepo(root, olderThan=0)
    assert datasetFiles(root) == [keptPath] and findOrphans(root) == []
    assert [p.read_text() for p in sorted(incoming.iterdir())] == [f'{{"i": {i}}}' for i in range(3)]


def test_random_kills_of_mixed_work_lose_nothing(
    tmp_path: Path, registryConfig: dict[str, str] | None
) -> None:
    target, source = makeRepositories(tmp_path, registryConfig)
    logPath = tmp_path / "work.log"
    afterKills = AfterEachKill(target)
    killed = killLoop(target, source, logPath, kills=40, maxDelay=0.2, seed=1, afterEachKill=afterKills)
    report = checkRepository(target, logPath, afterKills)
    assert report.childErrors == []
    assert killed == 40
    assert report.lost == []
    assert report.strayRecords == 0 and report.orphansAfter == 0
    assert report.datasets > 0


def test_orphans_are_reported_counted_and_cleaned_with_an_age_guard(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    with makeRepo(root, None) as butler:
        ref = butler.put({"a": 1}, "metrics", visit=1)
        recorded = filePath(butler, ref)
    orphan = recorded.with_name("metrics_visit-9_0123.json")  # a put killed before its commit
    orphan.write_text('{"lost": true}')
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    young = recorded.with_name("metrics_visit-8_4567.json")  # a put in progress elsewhere
    young.write_text("{}")
    assert findOrphans(root) == sorted([orphan.as_uri(), young.as_uri()])
    report = verifyDatasets(root)
    assert report.isOk and report.orphans == sorted([orphan.as_uri(), young.as_uri()])
    assert repoStats(root).orphans == 2
    dry = cleanupRepo(root, dryRun=True)
    assert dry.removed == [orphan.as_uri()] and dry.kept == 1 and orphan.exists()
    done = cleanupRepo(root)
    assert done.removed == [orphan.as_uri()] and not orphan.exists() and young.exists()
    assert recorded.exists() and (root / "butler.yaml").exists()
    assert cleanupRepo(root, olderThan=0).removed == [young.as_uri()]
    with Butler(root) as butler:
        assert butler.get(ref) == {"a": 1}
    assert repoStats(root).orphans == 0


def test_a_file_set_aside_by_an_older_version_is_given_back_not_deleted(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    with makeRepo(root, None) as butler:
        ref = butler.put({"a": 1}, "metrics", visit=1)
        path = filePath(butler, ref)
    # What a crash between the old remove's rename and the registry commit left behind:
    aside = path.with_name(f".{path.name}.removed-{int(time.time()) - 7200}-{'ab' * 16}")
    path.rename(aside)
    assert not verifyDatasets(root).isOk
    assert findOrphans(root) == []  # it is not an orphan: a record names it
    assert cleanupRepo(root, olderThan=0, dryRun=True).removed == [] and aside.exists()
    assert cleanupRepo(root, olderThan=0).removed == []
    assert path.exists() and not aside.exists()
    with Butler(root) as butler:
        assert butler.get(ref) == {"a": 1}


def test_cli_verify_stats_and_cleanup_show_and_remove_orphans(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    with makeRepo(root, None) as butler:
        recorded = filePath(butler, butler.put({"a": 1}, "metrics", visit=1))
    orphan = recorded.with_name("metrics_visit-9_0123.json")
    orphan.write_text("{}")
    runner = CliRunner()
    verify = runner.invoke(cli, ["verify", str(root)])
    assert verify.exit_code == 0 and f"ORPHAN    {orphan.as_uri()}" in verify.output
    assert "1 file(s) no record names" in verify.output
    stats = runner.invoke(cli, ["stats", str(root)])
    assert stats.exit_code == 0 and "orphan files" in stats.output
    guarded = runner.invoke(cli, ["cleanup", str(root)])
    assert guarded.exit_code == 0 and "Removed 0 file(s)" in guarded.output and "1 younger" in guarded.output
    dry = runner.invoke(cli, ["cleanup", str(root), "--older-than", "0", "--dry-run"])
    assert dry.exit_code == 0 and f"WOULD REMOVE {orphan.as_uri()}" in dry.output and orphan.exists()
    done = runner.invoke(cli, ["cleanup", str(root), "--older-than", "0"])
    assert done.exit_code == 0 and f"REMOVED {orphan.as_uri()}" in done.output
    assert not orphan.exists() and recorded.exists()
    bad = runner.invoke(cli, ["cleanup", str(root), "--older-than", "-1"])
    assert bad.exit_code == 2


def test_files_of_many_removed_datasets_are_deleted_in_one_records_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from databutler.datastores.file._access import FileAccess

    root = tmp_path / "repo"
    with makeRepo(root, None) as butler:
        refs = [butler.put({"v": v}, "metrics", visit=v) for v in range(6)]
        calls: list[int] = []
        purge = FileAccess.purge

        def counting(self: FileAccess, removals: list, *args: object, **kwargs: object) -> None:
            calls.append(len(removals))
            purge(self, removals, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(FileAccess, "purge", counting)
        with butler.transaction():
            butler.removeDatasets(refs[:2])
            with butler.transaction():
                butler.removeDatasets(refs[2:4])
            with pytest.raises(RuntimeError), butler.transaction():
                butler.removeDatasets(refs[4:5])  # rolled back: its files stay
                raise RuntimeError("roll back")
        assert calls == [4]
        assert [butler.exists(r) for r in refs] == [False] * 4 + [True] * 2
        assert butler.get(refs[4]) == {"v": 4}
    assert (
        datasetFiles(root)
        == sorted(p for p in datasetFiles(root) if "visit-4" in p.name or "visit-5" in p.name)
        and len(datasetFiles(root)) == 2
    )


def test_the_crash_benchmark_runs_and_prints_its_table() -> None:
    script = Path(__file__).parent.parent / "benchmarks" / "bench_crash.py"
    env = {k: v for k, v in os.environ.items() if k != "DATABUTLER_TEST_POSTGRES_URL"}
    result = subprocess.run(
        [sys.executable, str(script), "--kills", "3", "--max-delay", "0.1"],
        capture_output=True, text=True, timeout=600, check=True, env=env,
    )  # fmt: skip
    row = next(line for line in result.stdout.splitlines() if "sqlite" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[0] == "sqlite" and cells[1] == "3" and cells[6] == "0" and cells[9] == "0"
    assert "Traceback" not in result.stderr


def test_a_read_only_open_leaves_an_unfinished_removal_to_a_writer(
    tmp_path: Path, registryConfig: dict[str, str] | None, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "repo"
    with makeRepo(root, registryConfig) as butler:
        ref = butler.put({"a": 1}, "metrics", visit=1)
        kept = butler.put({"b": 2}, "metrics", visit=2)
    killAt(root, "after commit", tmp_path)
    left = datasetFiles(root)
    assert len(left) == 2  # the removed dataset's file is still there, noted in the trash
    with Butler(root, writeable=False, collections=["run"]) as reader:  # a reader changes nothing
        assert not reader.exists(ref) and reader.get(kept) == {"b": 2}
    assert datasetFiles(root) == left
    assert "could not finish" not in caplog.text  # it did not even try
    with Butler(root, run="run") as butler:  # the next writer finishes the removal
        assert datasetFiles(root) == [filePath(butler, kept)]


class PuttingRegistry(InMemoryLocationRegistry):
    """Runs ``onRemove`` (another writer's put) while a removal is being recorded."""

    onRemove: Any = None

    def removeDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        super().removeDatasetLocations(datastoreName, refs)
        if self.onRemove is not None:
            self.onRemove()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_removal_never_deletes_what_another_writer_recorded_at_the_path_since(
    tmp_path: Path, backend: str
) -> None:
    records = f"sqlite:///{tmp_path}/records.sqlite3" if backend == "sqlite" else postgresUrl()
    config = {
        "cls": "databutler.FileDatastore",
        "name": f"file{uuid.uuid4().hex[:8]}",  # rows of each test apart in the shared database
        "root": str(tmp_path / "root"),
        "templates": {"default": "{run}/{visit}"},  # a freed path can be used again
        "records": {"db": records},
    }
    registry = PuttingRegistry()
    mine, theirs = FileDatastore({"datastore": config}, registry), FileDatastore({"datastore": config})
    datasetType = makeTestDatasetType("metrics", "StructuredDataDict", ("visit",))
    old, new = DatasetRef(datasetType, {"visit": 1}, run="r"), DatasetRef(datasetType, {"visit": 1}, run="r")
    mine.put({"who": "old"}, old)
    registry.onRemove = lambda: theirs.put({"who": "new"}, new)  # committed before the files go
    mine.remove(old)
    assert not mine.exists(old) and theirs.get(new) == {"who": "new"}
    assert mine.files.records.trashed() == {} and mine.findOrphanFiles() == []
    mine.close()
    theirs.close()


def test_a_rolled_back_remove_then_transfer_back_keeps_the_dataset(
    tmp_path: Path, registryConfig: dict[str, str] | None
) -> None:
    # The undo of the transfer (a put of the same id at the same path) ran after the registry
    # rollback had brought back the dataset's earlier records, and deleted those and the file.
    with makeRepo(tmp_path / "source", None) as source:
        ref = source.put({"v": 1}, "metrics", visit=1)
        with makeRepo(tmp_path / "repo", registryConfig) as butler:
            butler.transferFrom(source, [ref])
            with pytest.raises(KeyError), butler.transaction():
                butler.removeDatasets([ref])
                butler.transferFrom(source, [ref])
                raise KeyError("roll back")
            assert butler.exists(ref) and butler.get(ref) == {"v": 1}
    assert verifyDatasets(tmp_path / "repo").isOk
    assert findOrphans(tmp_path / "repo") == []
    with Butler(tmp_path / "repo") as butler:
        assert butler.datastore.datastores[-1].get(ref) == {"v": 1}  # type: ignore[attr-defined]


def test_a_put_never_replaces_the_file_of_a_removal_not_yet_committed(
    tmp_path: Path, registryConfig: dict[str, str] | None
) -> None:
    # Without {id} in the template a dataset removed and put again in one transaction gets the
    # same path: the put's rename replaced the removed one's file, lost on rollback (or a kill).
    root = tmp_path / "repo"
    makeRepo(root, registryConfig).close()
    config = root / "butler.yaml"
    config.write_text(config.read_text().replace("_{dataId}_{id}'", "_{dataId}'"))
    with Butler(root, run="run") as butler:
        ref = butler.put({"a": "original"}, "metrics", visit=1)
        with pytest.raises(KeyError), butler.transaction():
            butler.removeDatasets([ref])
            with pytest.raises(DatasetExistsError, match="removal may not be committed yet"):
                butler.put({"a": "replacement"}, "metrics", visit=1)
            raise KeyError("roll back")
        assert butler.datastore.datastores[-1].get(ref) == {"a": "original"}  # type: ignore[attr-defined]
        butler.removeDatasets([ref])  # committed first: the path is free again
        again = butler.put({"a": "replacement"}, "metrics", visit=1)
        assert butler.get(again) == {"a": "replacement"}
    assert verifyDatasets(root).isOk and findOrphans(root) == []
