"""FileDatastore records in SQLite (default) and in PostgreSQL (the records of a shared repository)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from databutler import FileDatastore, MaskedImage
from databutler.datastores.file._records import FileRecordTable
from databutler.testing import makeRef
from databutler.testing.registry_support import postgresUrl


def makeStore(root: Path, db: str, name: str) -> FileDatastore:
    return FileDatastore(
        {
            "datastore": {
                "cls": "databutler.FileDatastore",
                "root": str(root),
                "name": name,
                "records": {"db": db},
            }
        }
    )


def exerciseRecords(tmp_path: Path, db: str) -> None:
    name = f"store-{uuid.uuid4().hex[:8]}"
    store = makeStore(tmp_path / "a", db, name)
    other = makeStore(tmp_path / "b", db, name + "-other")  # same table, rows kept apart by name
    ref = makeRef("calexp", "MaskedImage")
    store.put(MaskedImage(image=np.ones(2), mask=np.zeros(2), metadata={"a": 1}), ref)
    assert store.exists(ref) and not other.exists(ref)
    assert len(store) == 1 and len(other) == 0
    other.put(MaskedImage(image=np.zeros(2)), ref)  # the same dataset in another datastore
    np.testing.assert_array_equal(store.get(ref.makeComponentRef("image")), np.ones(2))
    reopened = makeStore(tmp_path / "a", db, name)
    assert reopened.get(ref).metadata == {"a": 1}
    with pytest.raises(RuntimeError), reopened.transaction():
        reopened.remove(ref)
        raise RuntimeError("roll back")
    assert reopened.exists(ref)
    reopened.remove(ref)
    assert not store.exists(ref) and other.exists(ref)
    for s in (store, other, reopened):
        s.close()


def test_records_in_sqlite_file(tmp_path: Path) -> None:
    exerciseRecords(tmp_path, f"sqlite:///{tmp_path / 'records.sqlite3'}")


def test_records_in_postgresql(tmp_path: Path) -> None:
    exerciseRecords(tmp_path, postgresUrl())


def test_postgres_urls_get_psycopg3(tmp_path: Path) -> None:
    from databutler import StorageClassFactory
    from databutler.registry.records import SqlRecordStorage

    for url in ("postgresql://u@localhost/db", "postgres://u@localhost/db"):
        storage = SqlRecordStorage.fromUrl(url)
        assert storage.url.startswith("postgresql+psycopg://")
        storage.close()
    storage = SqlRecordStorage.fromUrl(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    table = FileRecordTable(storage, "x", StorageClassFactory.fromDefaults())
    assert table.count() == 0
    storage.close()
