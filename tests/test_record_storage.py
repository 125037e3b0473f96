"""The records storage contract (`RecordStorage`, `RecordTable`) on each implementation, and
opening a repository while another process holds a write transaction."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from databutler import Butler, RecordConflictError
from databutler.datastore.bridge import (
    InMemoryRecordStorage,
    RecordField,
    RecordStorage,
    RecordTableSpec,
)
from databutler.datastores.file import RECORDS_FILE
from databutler.exceptions import ConfigError
from databutler.registry import SqlRegistry
from databutler.registry.records import SqlRecordStorage
from databutler.testing.registry_support import dropNamespace, newNamespace, postgresUrl

SPEC = RecordTableSpec(
    "testRecords",
    (
        RecordField("owner", str, 32, primaryKey=True),
        RecordField("key", str, 36, primaryKey=True),
        RecordField("path", str, 256),
        RecordField("size", int),
        RecordField("note", str, 64, nullable=True),
    ),
    unique=(("testRecordsPath", ("owner", "path")),),
)


@pytest.fixture(params=["memory", "sqlite", "registry", "postgresql"])
def storage(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RecordStorage]:
    if request.param == "memory":
        yield InMemoryRecordStorage()
    elif request.param == "sqlite":
        own = SqlRecordStorage.fromUrl(f"sqlite:///{tmp_path}/records.sqlite3")
        yield own
        own.close()
    elif request.param == "registry":
        with SqlRegistry(f"sqlite:///{tmp_path}/registry.sqlite3", create=True) as registry:
            yield registry.recordStorage
    else:
        url, namespace = postgresUrl(), newNamespace()
        with SqlRegistry(url, namespace=namespace, create=True) as registry:
            yield registry.recordStorage
        dropNamespace(registry.url, namespace)


def row(key: str, path: str, size: int = 1, owner: str = "a") -> dict[str, object]:
    return {"owner": owner, "key": key, "path": path, "size": size, "note": None}


def test_insert_fetch_delete(storage: RecordStorage) -> None:
    table = storage.registerRecordTable(SPEC)
    assert storage.registerRecordTable(SPEC) is table
    table.insert([row("k1", "p/1"), row("k2", "p/2", 2), row("k1", "p/1", owner="b")])
    assert table.fetch(owner="a", key="k2") == [row("k2", "p/2", 2)]
    assert [r["key"] for r in table.fetch(owner="a", path="p/1")] == ["k1"]  # a query by path
    assert table.count(owner="a") == 2 and table.count() == 3
    assert table.delete(owner="a", key="k1") == 1
    assert table.fetch(owner="a", key="k1") == [] and table.count(owner="b") == 1
    assert table.delete(owner="a", key="nothing") == 0


def test_conflicts_are_all_or_none(storage: RecordStorage) -> None:
    table = storage.registerRecordTable(SPEC)
    table.insert([row("k1", "p/1")])
    with pytest.raises(RecordConflictError):
        table.insert([row("k1", "p/other")])  # the key
    with pytest.raises(RecordConflictError):
        table.insert([row("k9", "p/9"), row("k2", "p/1")])  # a path, in the second row
    assert [r["key"] for r in table.fetch(owner="a")] == ["k1"]


def test_transactions_roll_back_and_nest(storage: RecordStorage) -> None:
    table = storage.registerRecordTable(SPEC)
    with pytest.raises(RuntimeError, match="boom"), table.transaction():
        assert table.inTransaction
        table.insert([row("k1", "p/1")])
        assert table.count() == 1  # its own rows are visible
        raise RuntimeError("boom")
    assert not table.inTransaction and table.count() == 0
    with table.transaction():
        table.insert([row("k1", "p/1")])
        with pytest.raises(RecordConflictError), table.transaction():
            table.insert([row("k2", "p/2")])
            table.insert([row("k1", "p/3")])
        table.delete(owner="a", key="k1")
        table.insert([row("k3", "p/3")])
    assert [r["key"] for r in table.fetch()] == ["k3"]


def test_other_threads_see_only_committed_rows(storage: RecordStorage) -> None:
    table = storage.registerRecordTable(SPEC)
    seen: list[int] = []
    inMemory = isinstance(storage, InMemoryRecordStorage)
    with table.transaction():
        table.insert([row("k1", "p/1")])
        reader = threading.Thread(target=lambda: seen.append(table.count()))
        reader.start()
        if not inMemory:  # a SQL reader does not wait for the writer, and sees what was committed
            reader.join()
            assert seen == [0]
    reader.join()  # in memory, the reader waited for the commit
    assert seen == [0 if not inMemory else 1]
    assert table.count() == 1


def test_another_spec_under_a_registered_name_is_an_error(storage: RecordStorage) -> None:
    storage.registerRecordTable(SPEC)
    other = RecordTableSpec(SPEC.name, SPEC.fields[:2])
    with pytest.raises(ConfigError, match="another spec"):
        storage.registerRecordTable(other)


def test_unknown_fields_are_an_error(storage: RecordStorage) -> None:
    table = storage.registerRecordTable(SPEC)
    with pytest.raises(ConfigError, match="no field"):
        table.fetch(colour="red")


# -- opening does not write --

_HOLDER = """
import sqlite3, sys
connections = [sqlite3.connect(path, isolation_level=None) for path in sys.argv[1:]]
for connection in connections:
    connection.execute("BEGIN IMMEDIATE")  # the write lock, held until we are told to go
print("holding", flush=True)
sys.stdin.readline()
"""


def _holdingWriteLocks(*databases: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, *map(str, databases)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


@pytest.mark.parametrize("records", ["registry", "own file"])
def test_opening_a_butler_does_not_wait_for_a_writer(tmp_path: Path, records: str) -> None:
    """Another process holds the write lock of the registry and records databases; a new Butler
    opens, queries and gets. A busy timeout of zero makes any write attempt fail at once."""
    root = tmp_path / "repo"
    Butler.makeRepo(root, {"registry": {"busyTimeout": 0}})
    if records == "own file":  # a repository made before records moved into the registry
        config = yaml.safe_load((root / "butler.yaml").read_text())
        del config["datastore"]["datastores"][1]["datastore"]["records"]
        (root / "butler.yaml").write_text(yaml.safe_dump(config))
    with Butler(root, run="run1") as writer:
        writer.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        ref = writer.put({"v": 1}, "metrics", visit=1)
    databases = [root / "registry.sqlite3"]
    if records == "own file":
        assert (root / RECORDS_FILE).exists()
        databases.append(root / RECORDS_FILE)
    holder = _holdingWriteLocks(*databases)
    try:
        with Butler(root, run="run1") as reader:
            assert reader.queryDatasets("metrics") == [ref]
            assert reader.get("metrics", visit=1) == {"v": 1}
            assert reader.datastore.children[1].get(ref) == {"v": 1}  # from the file tier
    finally:
        holder.communicate("go\n", timeout=30)
    assert holder.returncode == 0


def test_membership_conditions_and_insert_new(storage: RecordStorage) -> None:
    table = storage.registerRecordTable(SPEC)
    table.insert([row("k1", "p/1"), row("k2", "p/2"), row("k3", "p/3")])
    assert sorted(r["key"] for r in table.fetch(owner="a", path=["p/1", "p/3", "p/9"])) == ["k1", "k3"]
    assert table.count(key=("k1", "k2")) == 2
    inserted = table.insertNew([row("k4", "p/4"), row("k5", "p/1"), row("k1", "p/6")])  # path, key taken
    assert [r["key"] for r in inserted] == ["k4"]
    assert table.delete(owner="a", key={"k1", "k4"}) == 2
    assert sorted(r["key"] for r in table.fetch()) == ["k2", "k3"]
