"""A symbolic link planted inside a FileDatastore root never makes a write, rename or delete
land outside it: real links, on a real local file system."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from databutler import FileDatastore, UnsafePathError
from databutler.testing.datastore_tests import makeRef


def makeStore(root: Path, **extra: Any) -> FileDatastore:
    return FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(root), **extra}})


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.json").write_text('{"keep": true}')
    return folder


def everything(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_put_through_a_linked_folder_is_refused(tmp_path: Path, outside: Path) -> None:
    store = makeStore(tmp_path / "root")
    before = everything(outside)
    (tmp_path / "root" / "test").mkdir()
    (tmp_path / "root" / "test" / "run").symlink_to(outside)  # the run's folder leads out
    ref = makeRef("metrics", "StructuredDataDict")
    with pytest.raises(UnsafePathError, match="outside the root"):
        store.put({"a": 1}, ref)
    assert everything(outside) == before and not store.exists(ref) and len(store) == 0


def test_a_root_that_is_itself_a_link_works(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    store = makeStore(tmp_path / "link")
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"a": 1}, ref)
    assert store.get(ref) == {"a": 1}
    store.remove(ref)
    assert not store.exists(ref)


@pytest.mark.parametrize("inTransaction", [False, True])
def test_a_remove_through_a_linked_folder_is_refused(
    tmp_path: Path, outside: Path, inTransaction: bool
) -> None:
    store = makeStore(tmp_path / "root")
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"a": 1}, ref)
    path = Path(store.getUri(ref).removeprefix("file://"))
    # The dataset's folder is swapped for a link to a folder holding a file of the same name.
    (outside / path.name).write_text('{"a": 1}')
    path.unlink()
    path.parent.rmdir()
    path.parent.symlink_to(outside)
    before = everything(outside)
    with pytest.raises(UnsafePathError, match="Cannot remove"):
        if inTransaction:
            with store.transaction():
                store.remove(ref)
        else:
            store.remove(ref)
    assert everything(outside) == before  # not deleted, not renamed aside
    assert store.exists(ref)  # refused before anything changed


def test_cleanups_never_follow_a_link_out_of_the_root(tmp_path: Path, outside: Path) -> None:
    store = makeStore(tmp_path / "root")
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"a": 1}, ref)
    (outside / (".x.json.tmp-" + "0" * 32)).write_text("temporary-looking")
    (outside / "stray.json").write_text("{}")
    old = time.time() - 7200
    for p in outside.iterdir():
        os.utime(p, (old, old))
    (tmp_path / "root" / "test" / "elsewhere").symlink_to(outside)
    planted = tmp_path / "root" / "test" / "file.json"
    planted.symlink_to(outside / "precious.json")
    before = everything(outside)
    # The link to a folder is never entered; the link to a file is an unrecorded entry of the
    # root (what a crashed symlink ingest leaves), and cleaning it unlinks it alone.
    assert store.findOrphanFiles() == [planted.as_uri()]
    assert store.removeLeftoverFiles(olderThan=0) == []
    assert store.removeOrphanFiles(olderThan=0) == [planted.as_uri()]
    assert not planted.is_symlink() and (outside / "precious.json").exists()
    assert everything(outside) == before and store.get(ref) == {"a": 1}


def test_purging_a_removed_file_whose_folder_became_a_link_leaves_the_outside_alone(
    tmp_path: Path, outside: Path
) -> None:
    store = makeStore(tmp_path / "root")
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"a": 1}, ref)
    info = store.getStoredItemInfo(ref)
    path = Path(store.getUri(ref).removeprefix("file://"))
    infos = store.files.unstore(ref)  # a removal committed, then the process died
    assert infos is not None
    (outside / path.name).write_bytes(path.read_bytes())  # same name, same size
    path.unlink()
    path.parent.rmdir()
    path.parent.symlink_to(outside)
    before = everything(outside)
    assert makeStore(tmp_path / "root").recover() == 0  # the constructor has finished it already
    assert everything(outside) == before and info.path
    assert store.files.records.trashed() == {}
