"""A dataset removed elsewhere and put again under its (deterministic) id is read anew.

Dataset ids are UUIDv5 of run, dataset type and data ID, so a dataset removed by another Butler
or process and put again with other content has the same id; an open Butler's memory tier,
keyed by id, must not answer with the old content (see registry/removals.py).
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from databutler import Butler, DatasetRef
from databutler.datastores.chained import ChainedDatastore
from databutler.datastores.memory import InMemoryDatastore
from databutler.dimensions import Timespan
from databutler.exceptions import MissingRunError
from databutler.registry import SqlRegistry
from databutler.registry.databases import makeEngine, parseUrl
from databutler.testing.registry_support import (
    CALEXP,
    dropNamespace,
    newNamespace,
    postgresUrl,
    registrySections,
)

REMAKE = """
import sys
from databutler import Butler
root, how = sys.argv[1], sys.argv[2]
with Butler(root, run="run") as butler:
    if how == "runs":
        butler.removeRuns(["run"])
    else:
        butler.removeDatasets([butler.findDataset("metrics", visit=1)])
with Butler(root, run="run") as butler:
    butler.put({"r": "remade"}, "metrics", visit=1)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def registryConfig(request: pytest.FixtureRequest) -> Iterator[dict[str, str] | None]:
    yield from registrySections(request.param)


@pytest.fixture
def root(tmp_path: Path, registryConfig: dict[str, str] | None) -> Path:
    root = tmp_path / "repo"
    Butler.makeRepo(root, {"registry": registryConfig} if registryConfig else None)
    with Butler(root, run="run") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        butler.put({"r": "old"}, "metrics", visit=1)
        butler.put({"r": "kept"}, "metrics", visit=2)
    return root


def memoryTier(butler: Butler) -> InMemoryDatastore:
    assert isinstance(butler.datastore, ChainedDatastore)
    tier = butler.datastore.datastores[0]
    assert isinstance(tier, InMemoryDatastore)
    return tier


def test_another_butlers_removal_and_new_put_is_read_by_data_id_and_by_ref(root: Path) -> None:
    with Butler(root, run="run") as reader, Butler(root, run="run") as other:
        ref = reader.findDataset("metrics", visit=1)
        assert ref is not None and reader.get("metrics", visit=1) == {"r": "old"}
        assert ref in memoryTier(reader)  # read through into memory: the copy that went stale
        other.removeDatasets([ref])
        remade = other.put({"r": "new"}, "metrics", visit=1)
        assert remade.id == ref.id  # the same deterministic id
        assert reader.get("metrics", visit=1) == {"r": "new"}
        assert reader.get(ref) == {"r": "new"}
        assert reader.get("metrics", visit=2) == {"r": "kept"}


def test_a_removal_by_ref_alone_is_seen_by_get_of_the_ref(root: Path) -> None:
    with Butler(root, run="run") as reader, Butler(root, run="run") as other:
        ref = reader.findDataset("metrics", visit=1)
        assert ref is not None and reader.get(ref) == {"r": "old"}
        other.removeDatasets([ref])
        other.put({"r": "new"}, "metrics", visit=1)
        assert reader.get(ref) == {"r": "new"}  # the first lookup after the removal is by id


@pytest.mark.parametrize("how", ["runs", "datasets"])
def test_another_process_removal_and_new_put_is_read(root: Path, how: str) -> None:
    with Butler(root, run="run") as reader:
        ref = reader.findDataset("metrics", visit=1)
        assert ref is not None and reader.get(ref) == {"r": "old"}
        subprocess.run([sys.executable, "-c", REMAKE, str(root), how], check=True, timeout=120)
        assert reader.get("metrics", visit=1) == {"r": "remade"}  # a run made again: its new id is read
        assert reader.get(ref) == {"r": "remade"}
    with Butler(root, run="run") as fresh:
        assert fresh.get(ref) == {"r": "remade"}


def test_a_butlers_own_removal_keeps_its_other_copies_in_memory(root: Path) -> None:
    with Butler(root, run="run") as butler:
        first = butler.findDataset("metrics", visit=1)
        kept = butler.findDataset("metrics", visit=2)
        assert first is not None and kept is not None
        butler.get(first), butler.get(kept)
        tier = memoryTier(butler)
        assert kept in tier
        for _ in range(3):  # removals one after another, with no lookup between them
            butler.removeDatasets([butler.findDataset("metrics", visit=1)])
            butler.put({"r": "again"}, "metrics", visit=1)
        assert butler.get("metrics", visit=1) == {"r": "again"}
        assert kept in tier  # its own removals did not empty the memory tier
        with Butler(root, run="run") as other:
            other.removeDatasets([other.findDataset("metrics", visit=1)])
        assert butler.findDataset("metrics", visit=2) == kept
        assert kept not in tier  # another's removal did: the copy is read from the file next time
        assert butler.get(kept) == {"r": "kept"}


def test_a_rolled_back_removal_then_anothers_removal_is_still_seen(root: Path) -> None:
    with Butler(root, run="run") as butler, Butler(root, run="run") as other:
        ref = butler.findDataset("metrics", visit=1)
        assert ref is not None and butler.get(ref) == {"r": "old"}
        with pytest.raises(RuntimeError), butler.transaction():
            butler.removeDatasets([ref])
            raise RuntimeError("undo")
        assert butler.get(ref) == {"r": "old"}
        other.removeDatasets([ref])
        other.put({"r": "new"}, "metrics", visit=1)
        assert butler.get(ref) == {"r": "new"}


def test_a_read_only_butler_drops_its_copies_without_writing(root: Path) -> None:
    with Butler(root, writeable=False, collections=["run"]) as reader, Butler(root, run="run") as other:
        ref = reader.findDataset("metrics", visit=1)
        assert ref is not None and reader.get(ref) == {"r": "old"}
        other.removeDatasets([ref, other.findDataset("metrics", visit=2)])
        other.put({"r": "new"}, "metrics", visit=1)
        assert reader.get("metrics", visit=1) == {"r": "new"}
        assert not reader.exists("metrics", visit=2)


def test_a_butler_searching_every_run_reads_anew_too(root: Path) -> None:
    with Butler(root) as reader, Butler(root, run="run") as other:
        assert reader.get("metrics", visit=1) == {"r": "old"}
        other.removeDatasets([other.findDataset("metrics", visit=1)])
        other.put({"r": "new"}, "metrics", visit=1)
        assert reader.get("metrics", visit=1) == {"r": "new"}


@pytest.mark.parametrize("many", [False, True])
def test_a_put_after_anothers_removal_replaces_the_cached_copy(root: Path, many: bool) -> None:
    with Butler(root, run="run") as butler, Butler(root, run="run") as other:
        ref = butler.findDataset("metrics", visit=1)
        assert ref is not None and butler.get(ref) == {"r": "old"}
        other.removeDatasets([ref])
        if many:
            (put,) = butler.putMany([({"r": "mine"}, ref)])  # the ref keeps its id
        else:
            put = butler.put({"r": "mine"}, "metrics", visit=1)
        assert put.id == ref.id
        assert butler.get(ref) == {"r": "mine"} and other.get(ref) == {"r": "mine"}


def test_a_run_removed_and_made_again_elsewhere_is_found_by_data_id(root: Path) -> None:
    with Butler(root, run="run") as reader, Butler(root) as other:
        assert reader.get("metrics", visit=2) == {"r": "kept"}
        other.removeRuns(["run"])
        with pytest.raises(MissingRunError):  # as a Butler opened now says
            reader.findDataset("metrics", visit=2)
        other.registry.registerRun("run")
        other.put({"r": "back"}, "metrics", visit=2, run="run")
        assert reader.get("metrics", visit=2) == {"r": "back"}
        assert reader.queryDatasets("metrics", collections="run").count() == 1


@pytest.mark.parametrize("many", [False, True])
def test_a_put_into_a_run_removed_and_made_again_elsewhere_goes_into_the_new_run(
    root: Path, many: bool
) -> None:
    with Butler(root, run="run") as writer, Butler(root) as other:
        writer.put({"r": "first"}, "metrics", visit=5)  # the run's id is cached now
        other.removeRuns(["run"])
        other.registry.registerRun("run")
        if many:
            refs = writer.putMany(
                [({"r": "again"}, "metrics", {"visit": 6}), ({"r": "more"}, "metrics", {"visit": 7})]
            )
        else:
            refs = [writer.put({"r": "again"}, "metrics", visit=6)]
        assert [other.get(ref) for ref in refs] == [{"r": "again"}, {"r": "more"}][: len(refs)]
        assert other.queryDatasets("metrics", collections="run").count() == len(refs)


def test_a_put_into_a_run_removed_elsewhere_is_a_missing_run_error(root: Path) -> None:
    with Butler(root, run="run") as writer, Butler(root) as other:
        writer.put({"r": "first"}, "metrics", visit=5)
        other.removeRuns(["run"])
        with pytest.raises(MissingRunError, match="run"):
            writer.put({"r": "again"}, "metrics", visit=6)


def test_removing_a_run_removed_and_made_again_elsewhere_removes_the_new_one(root: Path) -> None:
    with Butler(root, run="run") as remover, Butler(root) as other:
        remover.put({"r": "first"}, "metrics", visit=5)  # the run's id is cached now
        other.removeRuns(["run"])
        other.registry.registerRun("run")
        back = other.put({"r": "back"}, "metrics", visit=2, run="run")
        assert remover.removeRuns(["run"]) == {"run": 1}
    with Butler(root) as fresh:
        assert "run" not in fresh.registry.queryCollections()
        assert not fresh.datastore.knows(back)


@pytest.mark.parametrize("later", ["older", "chosen"])
def test_a_run_made_again_elsewhere_is_searched_before_a_later_collection_holding_the_data_id(
    root: Path, later: str
) -> None:
    """A stale run id must not let a later run (or TAGGED collection) answer in its place."""
    with Butler(root, run="run") as reader, Butler(root) as other:
        other.registry.registerRun("older")
        older = other.put({"r": "older"}, "metrics", visit=2, run="older")
        other.registry.registerCollection("chosen", "TAGGED")
        other.registry.associate("chosen", [older])
        assert reader.get("metrics", visit=2, collections=["run", later]) == {"r": "kept"}
        other.removeRuns(["run"])
        other.registry.registerRun("run")
        other.put({"r": "back"}, "metrics", visit=2, run="run")
        assert reader.get("metrics", visit=2, collections=["run", later]) == {"r": "back"}


@pytest.mark.parametrize("kind", ["TAGGED", "CALIBRATION"])
def test_a_lookup_through_a_tagged_or_calibration_collection_reads_the_removal_too(
    root: Path, kind: str
) -> None:
    """A hit in a TAGGED or CALIBRATION collection checks the removal token as a lookup in runs does."""
    when = datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC)
    span = Timespan(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), None)

    def collect(butler: Butler, ref: DatasetRef) -> None:
        if kind == "TAGGED":
            butler.registry.associate("chosen", [ref])
        else:
            butler.registry.certify("chosen", [ref], span)

    with Butler(root, run="run") as reader, Butler(root, run="run") as other:
        other.registry.registerCollection("chosen", kind)
        ref = other.findDataset("metrics", visit=1)
        assert ref is not None
        collect(other, ref)
        assert reader.get("metrics", visit=1, collections=["chosen"], timespan=when) == {"r": "old"}
        assert ref in memoryTier(reader)
        other.removeDatasets([ref])
        remade = other.put({"r": "new"}, "metrics", visit=1)
        assert remade.id == ref.id
        collect(other, remade)
        assert reader.get("metrics", visit=1, collections=["chosen"], timespan=when) == {"r": "new"}


def _waitForAWaitingLock(url: str) -> None:
    """Return once a session of the test server waits for a lock on ``butler_attribute``."""
    engine = makeEngine(parseUrl(url))
    try:
        with engine.connect() as connection:
            for _ in range(600):
                waiting = connection.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%butler_attribute%'"
                    )
                ).scalar_one()
                if waiting:
                    return
                time.sleep(0.05)
        pytest.fail("The second removal never waited for the first one's token.")
    finally:
        engine.dispose()


def test_two_first_removals_at_once_tell_the_later_one_of_the_earlier() -> None:
    """On PostgreSQL, a registry's first removal waiting on another's (no token row yet) is not taken for its own."""
    url, namespace = postgresUrl(), newNamespace()
    try:
        with SqlRegistry(url, namespace=namespace, create=True) as first:
            first.registerDatasetType(CALEXP)
            first.registerRun("run")
            earlier, later = first.addDatasets(
                "calexp", [{"visit": 1, "detector": 0}, {"visit": 2, "detector": 0}], "run"
            )
            with SqlRegistry(url, namespace=namespace) as second:
                heard: list[str] = []
                second.addRemovalListener(lambda: heard.append("told"))
                errors: list[BaseException] = []

                def removeLater() -> None:
                    try:
                        second.removeDatasets([later])
                    except BaseException as exc:  # reported by the assert below
                        errors.append(exc)

                thread = threading.Thread(target=removeLater)
                with first.transaction():
                    first.removeDatasets([earlier])
                    thread.start()
                    _waitForAWaitingLock(url)  # the later removal's token waits for this commit
                thread.join(timeout=60)
                assert not errors and not thread.is_alive()
                assert heard == []
                assert second.findDataset("calexp", {"visit": 1, "detector": 0}, "run") is None
                assert heard == ["told"]  # the earlier removal was another registry's
    finally:
        dropNamespace(url, namespace)


REMOVED = {"visit": 1, "detector": 0}
KEPT = {"visit": 2, "detector": 0}


@pytest.fixture
def registries(tmp_path: Path) -> Iterator[tuple[SqlRegistry, SqlRegistry, DatasetRef]]:
    """A registry that removes, one that reads (having looked `REMOVED` up), and `REMOVED`'s ref."""
    url = f"sqlite:///{tmp_path}/registry.sqlite3"
    with SqlRegistry(url, create=True) as remover, SqlRegistry(url) as reader:
        remover.registerDatasetType(CALEXP)
        remover.registerRun("run")
        removed, _ = remover.addDatasets("calexp", [REMOVED, KEPT], "run")
        assert reader.findDataset("calexp", REMOVED, "run") == removed
        yield remover, reader, removed


def test_a_lookup_waits_for_the_listeners_another_thread_runs_for_the_same_removal(
    registries: tuple[SqlRegistry, SqlRegistry, DatasetRef],
) -> None:
    """A second thread reading the new token must not answer while the first drops the stale copies."""
    remover, reader, removed = registries
    entered, release = threading.Event(), threading.Event()
    events: list[str] = []

    def slowListener() -> None:  # a Butler's memory tier dropping its copies
        entered.set()
        release.wait(timeout=60)
        events.append("dropped")

    def lookup() -> None:
        reader.findDataset("calexp", KEPT, "run")
        events.append("second lookup answered")

    reader.addRemovalListener(slowListener)
    remover.removeDatasets([removed])
    first = threading.Thread(target=lambda: reader.findDataset("calexp", REMOVED, "run"), daemon=True)
    first.start()
    assert entered.wait(timeout=60)
    second = threading.Thread(target=lookup, daemon=True)
    second.start()
    second.join(timeout=0.5)  # time for the second lookup to answer, if it does not wait
    release.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert events == ["dropped", "second lookup answered"]


def test_a_listener_may_look_datasets_up_itself(
    registries: tuple[SqlRegistry, SqlRegistry, DatasetRef],
) -> None:
    remover, reader, removed = registries
    found: list[object] = []
    reader.addRemovalListener(lambda: found.append(reader.findDataset("calexp", KEPT, "run")))
    remover.removeDatasets([removed])
    lookup = threading.Thread(
        target=lambda: found.append(reader.findDataset("calexp", REMOVED, "run")), daemon=True
    )
    lookup.start()
    lookup.join(timeout=60)
    assert not lookup.is_alive() and len(found) == 2 and found[1] is None
    assert found[0] is not None and dict(found[0].dataId) == KEPT  # type: ignore[attr-defined]
    assert reader.findDataset("calexp", REMOVED, "run") is None and len(found) == 2  # told once


def test_the_steps_of_own_removals_are_forgotten_when_another_registrys_removal_follows(
    registries: tuple[SqlRegistry, SqlRegistry, DatasetRef],
) -> None:
    """A registry remembers the tokens its own removals made only until a lookup reads a later one."""
    remover, reader, removed = registries

    def steps(registry: SqlRegistry) -> list[object]:
        return [k for k in registry._db._committed if isinstance(k, tuple) and k[0] == "removalAfter"]

    ref = removed
    for _ in range(3):  # this registry's removal, then another's, then a lookup
        reader.removeDatasets([ref])
        assert steps(reader)  # the token is its own: no listener when a lookup reads it
        remover.addDatasets("calexp", [{"visit": 3, "detector": 0}], "run")
        remover.removeDatasets(remover.queryDatasets("calexp", "run", "visit = 3"))
        assert reader.findDataset("calexp", KEPT, "run") is not None
        assert steps(reader) == []
        (ref,) = remover.addDatasets("calexp", [REMOVED], "run")
