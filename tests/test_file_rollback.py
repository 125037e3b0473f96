"""FileDatastore rollbacks never lose or overwrite data, even with other writers at work."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from databutler import DatasetRef, FileDatastore
from databutler.datastore.bridge import InMemoryLocationRegistry
from databutler.datastores.file._access import FileAccess
from databutler.testing.datastore_tests import makeRef, makeTestDatasetType


def makeStore(root: Path | str, **extra: Any) -> FileDatastore:
    return FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(root), **extra}})


def sharedPathRefs() -> tuple[DatasetRef, DatasetRef]:
    """Two datasets the template ``{run}/{datasetType}/{visit}`` puts at the same path."""
    datasetType = makeTestDatasetType("metrics", "StructuredDataDict", ("visit",))
    return DatasetRef(datasetType, {"visit": 1}, run="r"), DatasetRef(datasetType, {"visit": 1}, run="r")


@pytest.mark.parametrize("protocol", ["file", "memory"])
def test_rollback_of_remove_never_overwrites_a_dataset_stored_since(
    tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    extra: dict[str, Any] = {"templates": {"default": "{run}/{datasetType}/{visit}"}}  # a path can be reused
    if protocol == "file":
        root = str(tmp_path)
    else:  # an object store: the records are in a database both writers share
        root = f"memory://databutler-tests/{tmp_path.name}"
        extra["records"] = {"db": f"sqlite:///{tmp_path}/records.sqlite3"}
    mine, theirs = makeStore(root, **extra), makeStore(root, **extra)
    old, new = sharedPathRefs()
    mine.put({"who": "old"}, old)
    uri = mine.getUri(old)
    with caplog.at_level(logging.WARNING), pytest.raises(RuntimeError), mine.transaction():
        mine.remove(old)
        theirs.put({"who": "new"}, new)  # another writer commits at the freed path
        raise RuntimeError("roll back")
    assert theirs.get(new) == {"who": "new"}  # not overwritten by the rolled-back remove
    assert not mine.exists(old) and mine.getUri(new) == uri
    message = caplog.text
    assert str(old.id) in message and str(new.id) in message and "left" in message
    # The removed file is kept aside, not lost: removeLeftoverFiles deletes it only when old.
    assert mine.removeLeftoverFiles() == []
    assert len(mine.removeLeftoverFiles(olderThan=0)) == 1
    assert theirs.get(new) == {"who": "new"}


def test_rollback_of_remove_never_overwrites_an_unrecorded_file(tmp_path: Path) -> None:
    store = makeStore(tmp_path, templates={"default": "{run}/{datasetType}/{visit}"})
    ref, _ = sharedPathRefs()
    store.put({"who": "removed"}, ref)
    path = Path(store.getUri(ref).removeprefix("file://"))
    with pytest.raises(RuntimeError), store.transaction():
        store.remove(ref)
        path.write_text("someone else's")
        raise RuntimeError("roll back")
    assert path.read_text() == "someone else's" and not store.exists(ref)
    assert len(store.removeLeftoverFiles(olderThan=0)) == 1  # the removed file, kept aside


def test_leftover_cleanup_spares_files_set_aside_by_an_open_transaction(tmp_path: Path) -> None:
    store, janitor = makeStore(tmp_path), makeStore(tmp_path)
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"a": 1}, ref)
    path = Path(store.getUri(ref).removeprefix("file://"))
    written = time.time() - 2 * 3600  # a dataset written two hours ago
    os.utime(path, (written, written))
    with pytest.raises(RuntimeError), store.transaction():
        store.remove(ref)  # renamed aside: the file keeps its old mtime
        assert janitor.removeLeftoverFiles(olderThan=3600) == []
        raise RuntimeError("roll back")
    assert store.get(ref) == {"a": 1}
    with store.transaction():
        store.remove(ref)
        assert len(janitor.removeLeftoverFiles(olderThan=0)) == 1  # old enough: it goes


class FlakyRegistry(InMemoryLocationRegistry):
    """Fails to record removals while ``fail`` is set."""

    fail = False

    def removeDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        if self.fail:
            raise ConnectionError("registry connection lost")
        super().removeDatasetLocations(datastoreName, refs)


@pytest.mark.parametrize("where", ["transaction", "committed transaction", "no transaction"])
def test_remove_the_registry_is_not_told_of_changes_nothing(tmp_path: Path, where: str) -> None:
    registry = FlakyRegistry()
    store = FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(tmp_path)}}, registry)
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"a": 1}, ref)
    registry.fail = True
    if where == "no transaction":
        with pytest.raises(ConnectionError):
            store.remove(ref)
    elif where == "transaction":
        with pytest.raises(ConnectionError), store.transaction():
            store.remove(ref)
    else:  # the caller carries on and commits: the dataset must still be whole
        with store.transaction(), pytest.raises(ConnectionError):
            store.remove(ref)
    registry.fail = False
    assert store.exists(ref) and store.get(ref) == {"a": 1}
    assert registry.getDatasetLocations(ref) == {store.name}
    assert store.removeLeftoverFiles(olderThan=0) == []
    store.remove(ref)
    assert not store.exists(ref) and not registry.getDatasetLocations(ref)


class PuttingRegistry(InMemoryLocationRegistry):
    """Runs ``onRemove`` (another writer's put) while a removal is being recorded."""

    onRemove: Any = None

    def removeDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        super().removeDatasetLocations(datastoreName, refs)
        if self.onRemove is not None:
            self.onRemove()


def test_remove_never_deletes_a_file_stored_at_the_freed_path(tmp_path: Path) -> None:
    registry = PuttingRegistry()
    config = {
        "cls": "databutler.FileDatastore",
        "root": str(tmp_path),
        "templates": {"default": "{run}/{visit}"},
    }
    mine, theirs = FileDatastore({"datastore": config}, registry), FileDatastore({"datastore": config})
    old, new = sharedPathRefs()
    mine.put({"who": "old"}, old)
    registry.onRemove = lambda: theirs.put({"who": "new"}, new)  # between the records and the files
    mine.remove(old)
    assert not mine.exists(old) and theirs.get(new) == {"who": "new"}
    assert mine.removeLeftoverFiles(olderThan=0) == []


def test_undoing_a_put_never_deletes_a_file_stored_at_the_freed_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = {"default": "{run}/{visit}"}
    mine, theirs = makeStore(tmp_path, templates=templates), makeStore(tmp_path, templates=templates)
    undone, new = sharedPathRefs()
    deleteFiles = FileAccess.deleteFiles

    def putThenDelete(self: FileAccess, infos: list[Any]) -> None:
        if not theirs.exists(new):  # another writer stores at the freed path in between
            theirs.put({"who": "new"}, new)
        deleteFiles(self, infos)

    with pytest.raises(RuntimeError), mine.transaction():
        mine.put({"who": "undone"}, undone)
        monkeypatch.setattr(FileAccess, "deleteFiles", putThenDelete)
        raise RuntimeError("roll back")
    assert not mine.exists(undone) and theirs.get(new) == {"who": "new"}


@pytest.mark.parametrize("protocol", ["file", "memory"])
@pytest.mark.parametrize("inTransaction", [False, True])
def test_remove_of_a_dataset_whose_file_is_gone(tmp_path: Path, protocol: str, inTransaction: bool) -> None:
    root = str(tmp_path) if protocol == "file" else f"memory://databutler-tests/{tmp_path.name}"
    store = makeStore(root)
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"a": 1}, ref)
    store.fs.rm_file(store.files.fullPath(store.getStoredItemInfo(ref).path))
    with store.transaction() if inTransaction else contextlib.nullcontext():
        store.remove(ref)
    assert not store.exists(ref) and len(store) == 0
