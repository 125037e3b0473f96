"""Butler: repositories, put/get by data ID, components, parameters, queries, removal, transfers,
transactions spanning registry and datastore, and the errors users see."""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
import yaml

from databutler import (
    AmbiguousDatasetError,
    Butler,
    ConfigError,
    ConfigFileNotFoundError,
    ConflictingDatasetError,
    DatabaseLockedError,
    DataIdError,
    DatasetNotFoundError,
    DatasetTypeConflictError,
    DatasetTypeError,
    DatasetTypeMismatchError,
    InvalidParameterError,
    MaskedImage,
    MissingDatasetTypeError,
    NoDefaultRunError,
    RepositoryExistsError,
    UnknownComponentError,
)
from databutler.datastore.base import Datastore
from databutler.datastores.file import RECORDS_FILE
from databutler.testing.registry_support import dropNamespace, newNamespace, postgresUrl

MEMORY = {"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore", "name": "mem"}}
DIMS = ("visit", "detector")


def _makeButler(root: Path, config: dict[str, Any] | None, run: str | None = "run1") -> Butler:
    Butler.makeRepo(root, config)
    butler = Butler(root, run=run)
    butler.registerDatasetType("metrics", DIMS, "StructuredDataDict")
    butler.registerDatasetType("flat", DIMS, "NumpyArray")
    butler.registerDatasetType("calexp", DIMS, "MaskedImage")
    butler.registerDatasetType("sources", ("visit",), "ArrowTable")
    return butler


@pytest.fixture(params=["memory", "default"])
def butler(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Butler]:
    """A Butler on a memory-only repository, and on the default (memory tier + file tier)."""
    with _makeButler(tmp_path / "repo", MEMORY if request.param == "memory" else None) as b:
        yield b


def _calexp() -> MaskedImage:
    return MaskedImage(
        image=np.ones((4, 4)), mask=np.zeros((4, 4), dtype=np.int32), metadata={"exptime": 30.0}
    )


# -- repositories --


def test_make_repo_writes_config_and_creates_registry(tmp_path: Path) -> None:
    config = Butler.makeRepo(tmp_path / "repo", MEMORY)
    assert (tmp_path / "repo" / "butler.yaml").is_file()
    assert (tmp_path / "repo" / "registry.sqlite3").is_file()
    assert config["registry.db"] == "sqlite:///<butlerRoot>/registry.sqlite3"
    assert config["datastore.cls"].endswith("InMemoryDatastore")


def test_make_repo_twice_is_an_error(tmp_path: Path) -> None:
    Butler.makeRepo(tmp_path, MEMORY)
    with pytest.raises(RepositoryExistsError, match="already holds a data repository"):
        Butler.makeRepo(tmp_path, MEMORY)
    with pytest.raises(FileExistsError):
        Butler.makeRepo(tmp_path)


def test_open_missing_repository_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileNotFoundError, match="No data repository") as info:
        Butler(tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError)
    assert "databutler create" in str(info.value)


def test_repository_is_relocatable(tmp_path: Path) -> None:
    with _makeButler(tmp_path / "a", None) as butler:
        butler.put({"x": 1}, "metrics", visit=1, detector=2)
    (tmp_path / "a").rename(tmp_path / "b")
    with Butler(tmp_path / "b", collections=["run1"]) as moved:
        assert [r.dataId["visit"] for r in moved.queryDatasets("metrics")] == [1]
        assert moved.get("metrics", visit=1, detector=2) == {"x": 1}


# -- put and get --


def test_put_get_dict_array_and_composite(butler: Butler) -> None:
    ref = butler.put({"seeing": 0.7}, "metrics", visit=1, detector=2)
    assert ref.run == "run1" and dict(ref.dataId) == {"detector": 2, "visit": 1}
    assert butler.get("metrics", visit=1, detector=2) == {"seeing": 0.7}
    assert butler.get(ref) == {"seeing": 0.7}
    butler.put(np.arange(100.0).reshape(10, 10), "flat", {"visit": 1}, detector=2)
    assert butler.get("flat", {"visit": 1, "detector": 2}).shape == (10, 10)
    butler.put(_calexp(), "calexp", visit=1, detector=2)
    assert butler.get("calexp", visit=1, detector=2).metadata == {"exptime": 30.0}


def test_get_component_by_dotted_name(butler: Butler) -> None:
    butler.put(_calexp(), "calexp", visit=1, detector=2)
    assert butler.get("calexp.metadata", visit=1, detector=2) == {"exptime": 30.0}
    assert butler.get("calexp.image", visit=1, detector=2).shape == (4, 4)
    with pytest.raises(UnknownComponentError, match="wcs"):
        butler.get("calexp.wcs", visit=1, detector=2)


def test_get_with_parameters_slices_and_selects_columns(butler: Butler) -> None:
    butler.put(np.arange(100.0).reshape(10, 10), "flat", visit=1, detector=2)
    corner = butler.get("flat", visit=1, detector=2, parameters={"slice": (slice(0, 2), slice(0, 3))})
    assert corner.tolist() == [[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]]
    butler.put(pa.table({"ra": [1.0, 2.0], "dec": [3.0, 4.0], "flux": [5.0, 6.0]}), "sources", visit=1)
    table = butler.get("sources", visit=1, parameters={"columns": ["ra", "dec"]})
    assert table.column_names == ["ra", "dec"]
    with pytest.raises(InvalidParameterError, match="columns"):
        butler.get("sources", visit=1, parameters={"columns": ["nope"]})


def test_exists_and_get_uri(butler: Butler) -> None:
    ref = butler.put({"a": 1}, "metrics", visit=1, detector=2)
    assert butler.exists("metrics", visit=1, detector=2)
    assert butler.exists(ref)
    assert not butler.exists("metrics", visit=9, detector=2)
    assert str(ref.id) in butler.getUri("metrics", visit=1, detector=2)
    with pytest.raises(DatasetNotFoundError, match="'metrics'"):
        butler.getUri("metrics", visit=9, detector=2)


# -- the errors users see --


def test_missing_dataset_names_type_data_id_and_collections(butler: Butler) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"No dataset 'metrics'.*'visit': 7.*run1") as info:
        butler.get("metrics", visit=7, detector=2)
    assert isinstance(info.value, FileNotFoundError)


def test_unknown_dataset_type_is_named(butler: Butler) -> None:
    with pytest.raises(MissingDatasetTypeError, match="'nope'"):
        butler.get("nope", visit=1)
    with pytest.raises(MissingDatasetTypeError, match="'nope'"):
        butler.put({}, "nope", visit=1)


def test_data_id_with_missing_or_extra_keys(butler: Butler) -> None:
    with pytest.raises(DataIdError, match=r"missing \['detector'\]"):
        butler.put({}, "metrics", visit=1)
    with pytest.raises(DataIdError, match=r"unexpected \['band'\]"):
        butler.get("metrics", visit=1, detector=2, band="r")
    with pytest.raises(DataIdError, match="twice with different values"):
        butler.get("metrics", {"visit": 1, "detector": 2}, visit=3)


def test_conflicting_put_is_refused_and_keeps_the_original(butler: Butler) -> None:
    butler.put({"v": 1}, "metrics", visit=1, detector=2)
    with pytest.raises(ConflictingDatasetError, match=r"'metrics'.*already exists in run 'run1'"):
        butler.put({"v": 2}, "metrics", visit=1, detector=2)
    assert butler.get("metrics", visit=1, detector=2) == {"v": 1}
    assert len(butler.queryDatasets("metrics")) == 1


def test_put_without_run_and_put_of_component_are_refused(tmp_path: Path) -> None:
    with _makeButler(tmp_path, MEMORY, run=None) as butler:
        with pytest.raises(NoDefaultRunError, match="no run given"):
            butler.put({}, "metrics", visit=1, detector=2)
        ref = butler.put({}, "metrics", visit=1, detector=2, run="explicit")
        assert ref.run == "explicit"
        with pytest.raises(DatasetTypeError, match="component"):
            butler.put({}, "calexp.metadata", visit=1, detector=2, run="explicit")


def test_put_of_wrong_type_names_the_storage_class(butler: Butler) -> None:
    with pytest.raises(DatasetTypeMismatchError, match="StructuredDataDict"):
        butler.put([1, 2], "metrics", visit=1, detector=2)
    assert butler.queryDatasets("metrics") == []


def test_register_dataset_type_conflict_and_bad_calls(butler: Butler) -> None:
    assert butler.registerDatasetType("metrics", DIMS, "StructuredDataDict") is False
    with pytest.raises(DatasetTypeConflictError):
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
    with pytest.raises(DatasetTypeError, match="needs dimensions and a storage class"):
        butler.registerDatasetType("other")


# -- collections --


def test_collections_are_searched_in_order_and_ambiguity_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    with _makeButler(root, None, run="a") as butler:
        butler.put({"from": "a"}, "metrics", visit=1, detector=2)
        butler.put({"from": "b"}, "metrics", visit=1, detector=2, run="b")
        butler.put({"from": "b"}, "metrics", visit=5, detector=2, run="b")
        assert butler.get("metrics", visit=1, detector=2, collections=["b", "a"]) == {"from": "b"}
        assert butler.get("metrics", visit=1, detector=2) == {"from": "a"}  # the Butler's run
    with Butler(root) as everywhere:  # no run, no collections: every run is searched
        found = everywhere.findDataset("metrics", visit=5, detector=2)
        assert found is not None and found.run == "b"
        with pytest.raises(AmbiguousDatasetError, match=r"2 runs \(a, b\)"):
            everywhere.findDataset("metrics", visit=1, detector=2)


def test_query_datasets_filters_by_type_where_and_component(butler: Butler) -> None:
    for visit in (1, 2, 3):
        butler.put({"v": visit}, "metrics", visit=visit, detector=2)
    butler.put(_calexp(), "calexp", visit=1, detector=2)
    assert len(butler.queryDatasets()) == 4
    assert [r.dataId["visit"] for r in butler.queryDatasets("metrics", where={"visit": [1, 3]})] == [1, 3]
    assert len(butler.queryDatasets(visit=1)) == 2
    components = butler.queryDatasets("calexp.image")
    assert [r.datasetType.name for r in components] == ["calexp.image"]
    assert butler.get(components[0]).shape == (4, 4)


# -- removal --


def test_remove_datasets_from_registry_and_datastore(butler: Butler) -> None:
    ref = butler.put({"v": 1}, "metrics", visit=1, detector=2)
    butler.removeDatasets([ref])
    assert not butler.exists(ref)
    assert not butler.datastore.exists(ref)
    assert butler.registry.getDataset(ref.id) is None
    with pytest.raises(DatasetNotFoundError, match="nothing was removed"):
        butler.removeDatasets([ref])


def test_a_file_deleted_behind_the_butlers_back_does_not_exist_and_can_be_removed(tmp_path: Path) -> None:
    butler = _makeButler(tmp_path / "repo", None)
    ref = butler.put({"v": 1}, "metrics", visit=1, detector=2)
    fresh = Butler(tmp_path / "repo", run="run1")  # no memory-tier copy
    Path(fresh.getUri(ref).removeprefix("file://")).unlink()
    assert fresh.datastore.knows(ref) and not fresh.exists(ref)
    fresh.removeDatasets([ref])  # the datastore still knows it: its record goes too
    assert not fresh.datastore.knows(ref) and fresh.registry.getDataset(ref.id) is None


def test_remove_of_a_component_is_refused_and_removes_nothing(butler: Butler) -> None:
    ref = butler.put(_calexp(), "calexp", visit=1, detector=2)
    other = butler.put({"v": 1}, "metrics", visit=1, detector=2)
    with pytest.raises(DatasetTypeError, match=r"component 'calexp.mask'.*remove the composite 'calexp'"):
        butler.removeDatasets([other, ref.makeComponentRef("mask")])
    assert butler.exists(ref) and butler.exists(other)
    butler.removeDatasets([ref])
    assert not butler.exists(ref)


# -- transactions spanning registry and datastore --


def test_datastore_failure_leaves_registry_unchanged(butler: Butler, monkeypatch: pytest.MonkeyPatch) -> None:
    def failingPut(obj: Any, ref: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(butler.datastore, "put", failingPut)
    with pytest.raises(OSError, match="disk full"):
        butler.put({"v": 1}, "metrics", visit=1, detector=2)
    assert butler.queryDatasets() == []


def test_registry_conflict_in_a_transaction_undoes_earlier_datastore_puts(butler: Butler) -> None:
    butler.put({"v": 0}, "metrics", visit=9, detector=9)
    with pytest.raises(ConflictingDatasetError), butler.transaction():
        first = butler.put({"v": 1}, "metrics", visit=1, detector=2)
        assert butler.datastore.exists(first)
        butler.put({"v": 2}, "metrics", visit=9, detector=9)  # conflicts in the registry
    assert not butler.datastore.exists(first)
    assert butler.registry.getDataset(first.id) is None
    assert [r.dataId["visit"] for r in butler.queryDatasets()] == [9]


def test_exception_in_transaction_body_undoes_both(butler: Butler) -> None:
    with pytest.raises(RuntimeError, match="abort"), butler.transaction():
        ref = butler.put({"v": 1}, "metrics", visit=1, detector=2)
        raise RuntimeError("abort")
    assert not butler.datastore.exists(ref)
    assert butler.queryDatasets() == []


def test_failed_registry_commit_keeps_the_removed_dataset_readable(
    butler: Butler, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = butler.put({"v": 1}, "metrics", visit=1, detector=2)
    realTransaction = butler.registry.transaction
    store = getattr(butler.datastore, "datastores", [butler.datastore])[-1]  # the file tier, if any
    uri = store.getUri(ref)
    path = Path(uri[len("file://") :]) if uri.startswith("file://") else None

    @contextmanager
    def failingCommit() -> Iterator[None]:
        with realTransaction():
            yield
            raise RuntimeError("simulated registry COMMIT failure")

    monkeypatch.setattr(butler.registry, "transaction", failingCommit)
    with pytest.raises(RuntimeError, match="COMMIT failure"):
        butler.removeDatasets([ref])
    monkeypatch.undo()
    assert butler.registry.getDataset(ref.id) is not None
    assert butler.datastore.exists(ref) and store.exists(ref)
    assert path is None or path.exists()
    assert butler.get("metrics", visit=1, detector=2) == {"v": 1}
    # A successful removal still deletes the file, after the registry commit.
    butler.removeDatasets([ref])
    assert not butler.datastore.exists(ref)
    assert path is None or not path.exists()


def test_datastore_records_locations_in_the_registry(butler: Butler) -> None:
    ref = butler.put({"v": 1}, "metrics", visit=1, detector=2)
    assert butler.registry.getDatasetLocations(ref) == {butler.datastore.name}


def _fileRecordRows(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM fileDatastoreRecords").fetchone()[0])


def _datasetFiles(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if p.parent != root)


def test_new_repository_keeps_file_records_in_the_registry_database(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    with _makeButler(root, None) as butler:
        ref = butler.put({"v": 1}, "metrics", visit=1, detector=2)
        assert not (root / RECORDS_FILE).exists()
        assert _fileRecordRows(root / "registry.sqlite3") == 1
        assert butler.datastore.datastores[1].getStoredItemInfo(ref).path.endswith(".json")
    with Butler(root, collections=["run1"]) as reader:  # a new process reads from the file tier
        assert reader.datastore.datastores[1].get(ref) == {"v": 1}


def test_repository_made_before_records_in_the_registry_keeps_its_records_file(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    Butler.makeRepo(root)
    config = yaml.safe_load((root / "butler.yaml").read_text())
    del config["datastore"]["datastores"][1]["datastore"]["records"]  # as earlier releases wrote it
    (root / "butler.yaml").write_text(yaml.safe_dump(config))
    with Butler(root, run="run1") as butler:
        butler.registerDatasetType("metrics", DIMS, "StructuredDataDict")
        butler.put({"v": 1}, "metrics", visit=1, detector=2)
    assert _fileRecordRows(root / RECORDS_FILE) == 1
    assert _fileRecordRows(root / "registry.sqlite3") == 0
    with Butler(root, collections=["run1"]) as reader:
        assert reader.datastore.datastores[1].get(reader.findDataset("metrics", visit=1, detector=2)) == {
            "v": 1
        }


def test_file_tier_keeping_records_in_the_registry_refuses_to_open_without_it(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    with _makeButler(root, None) as butler:
        ref = butler.put({"v": 1}, "metrics", visit=1, detector=2)
        config = butler.config["datastore"]
    with pytest.raises(ConfigError, match="opened without a SQL registry"):
        Datastore.fromConfig(config)  # no registry: its records are not in the root
    assert not (root / RECORDS_FILE).exists()
    with Butler(root, collections=["run1"]) as reader:  # nothing was stranded
        assert reader.datastore.datastores[1].get(ref) == {"v": 1}


def test_rolled_back_put_leaves_no_file_and_no_record(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    with _makeButler(root, None) as butler:
        kept = butler.put({"v": 0}, "metrics", visit=9, detector=9)
        with pytest.raises(RuntimeError, match="abort"), butler.transaction():
            ref = butler.put({"v": 1}, "metrics", visit=1, detector=2)
            assert butler.get(ref) == {"v": 1}
            raise RuntimeError("abort")
        assert _fileRecordRows(root / "registry.sqlite3") == 1
        assert [p.name for p in _datasetFiles(root)] == [
            Path(butler.datastore.datastores[1].getUri(kept)).name
        ]
        assert not butler.exists("metrics", visit=1, detector=2)


def test_rolled_back_remove_restores_file_and_record(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    with _makeButler(root, None) as butler:
        ref = butler.put({"v": 1}, "metrics", visit=1, detector=2)
        with pytest.raises(RuntimeError, match="abort"), butler.transaction():
            butler.removeDatasets([ref])
            assert not butler.exists(ref)
            raise RuntimeError("abort")
        assert len(_datasetFiles(root)) == 1
        assert _fileRecordRows(root / "registry.sqlite3") == 1
    with Butler(root, collections=["run1"]) as reader:
        assert reader.get("metrics", visit=1, detector=2) == {"v": 1}


def test_failed_move_into_place_in_a_transaction_leaves_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    with _makeButler(root, None) as butler:
        fileTier = butler.datastore.datastores[1]

        def failingMove(*args: Any, **kwargs: Any) -> None:
            raise OSError("rename failed")

        with butler.transaction():  # the failed put is caught; the transaction goes on and commits
            monkeypatch.setattr(fileTier.files, "rename", failingMove)
            monkeypatch.setattr(fileTier.files, "placeNew", failingMove)  # the link into place
            with pytest.raises(OSError, match="rename failed"):
                butler.put({"v": 1}, "metrics", visit=1, detector=2)
            monkeypatch.undo()
            kept = butler.put({"v": 2}, "metrics", visit=3, detector=4)
        assert _fileRecordRows(root / "registry.sqlite3") == 1
        assert [p.name for p in _datasetFiles(root)] == [
            Path(butler.datastore.datastores[1].getUri(kept)).name
        ]
        assert butler.queryDatasets() == [kept]
        assert not butler.exists("metrics", visit=1, detector=2)


def _armFailingCommit(database: Path) -> None:
    """Make the COMMIT of any transaction that adds a dataset with 666 in its data ID fail (a
    deferred foreign key, checked at COMMIT, as a full disk or an I/O error would fail it)."""
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as connection:
        connection.executescript(
            """
            CREATE TABLE parent(id INTEGER PRIMARY KEY);
            CREATE TABLE boom(x INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
            CREATE TRIGGER failcommit AFTER INSERT ON dataset WHEN NEW.data_id LIKE '%666%'
            BEGIN INSERT INTO boom VALUES (42); END;
            """
        )


def test_failed_registry_commit_leaves_nothing_and_the_next_put_works(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    Butler.makeRepo(root, {"registry": {"busyTimeout": 0.5}})
    _armFailingCommit(root / "registry.sqlite3")
    with Butler(root, run="run1") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        kept = butler.put({"a": 1}, "metrics", visit=1)
        with pytest.raises(sa.exc.IntegrityError):
            butler.put({"a": 666}, "metrics", visit=666)  # its COMMIT fails
        assert butler.findDataset("metrics", visit=666) is None
        assert [p.name for p in _datasetFiles(root)] == [
            Path(butler.datastore.datastores[1].getUri(kept)).name
        ]
        # The write lock was released: another process can write, and so can this thread.
        with contextlib.closing(sqlite3.connect(root / "registry.sqlite3", timeout=0.2)) as other:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        butler.put({"a": 2}, "metrics", visit=2)
    with Butler(root, collections=["run1"]) as reader:
        assert [r.dataId["visit"] for r in reader.queryDatasets("metrics")] == [1, 2]


def test_a_locked_registry_raises_a_database_error(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    Butler.makeRepo(root, {"registry": {"busyTimeout": 0.2}})
    with Butler(root, run="run1") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        butler.put({"a": 1}, "metrics", visit=1)
        with contextlib.closing(sqlite3.connect(root / "registry.sqlite3", isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            try:
                with pytest.raises(DatabaseLockedError, match="locked: another writer"):
                    butler.put({"a": 2}, "metrics", visit=2)
            finally:
                other.execute("ROLLBACK")
        butler.put({"a": 3}, "metrics", visit=3)  # nothing was left half-done
        assert butler.findDataset("metrics", visit=2) is None
        assert butler.get("metrics", visit=3) == {"a": 3}


def test_threads_putting_removing_and_rolling_back_through_one_butler(tmp_path: Path) -> None:
    """8 threads on one Butler (memory tier + file tier), some transactions rolled back: no
    thread waits on another's registry transaction while holding a datastore lock."""
    root = tmp_path / "repo"
    errors: list[tuple[int, str]] = []
    with _makeButler(root, {"registry": {"busyTimeout": 5.0}}) as butler:

        def work(thread: int) -> None:
            try:
                for visit in range(30):
                    ref = butler.put({"t": thread, "v": visit}, "metrics", visit=visit, detector=thread)
                    if visit % 3 == 0:
                        with contextlib.suppress(KeyError), butler.transaction():
                            butler.removeDatasets([ref])
                            raise KeyError("roll back the removal")
                    if visit % 5 == 0:
                        with contextlib.suppress(KeyError), butler.transaction():
                            butler.put({"x": 1}, "metrics", visit=1000 + visit, detector=thread)
                            raise KeyError("roll back the put")
                    assert butler.get(ref) == {"t": thread, "v": visit}
            except Exception as exc:
                errors.append((thread, repr(exc)))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(_datasetFiles(root)) == 8 * 30
        assert len(butler.queryDatasets("metrics")) == 8 * 30


# -- transfers --


def test_transfer_from_keeps_ids_and_runs_and_skips_existing(tmp_path: Path) -> None:
    with _makeButler(tmp_path / "src", MEMORY) as source:
        refs = [source.put({"v": v}, "metrics", visit=v, detector=1) for v in range(3)]
        refs.append(source.put(_calexp(), "calexp", visit=1, detector=1))
        Butler.makeRepo(tmp_path / "dst", MEMORY)
        with Butler(tmp_path / "dst", collections=["run1"]) as target:
            done = target.transferFrom(source, source.queryDatasets(), progress=False)
            assert sorted(r.id for r in done) == sorted(r.id for r in refs)
            assert target.get(refs[0]) == {"v": 0}
            assert target.get("calexp.mask", visit=1, detector=1).dtype == np.int32
            assert target.transferFrom(source, refs) == []


def test_transfer_conflict_leaves_target_unchanged(tmp_path: Path) -> None:
    with _makeButler(tmp_path / "src", MEMORY) as source, _makeButler(tmp_path / "dst", MEMORY) as target:
        target.put({"v": "mine"}, "metrics", visit=2, detector=1)
        refs = [source.put({"v": v}, "metrics", visit=v, detector=1) for v in range(3)]
        with pytest.raises(ConflictingDatasetError):
            target.transferFrom(source, refs)
        assert [r.dataId["visit"] for r in target.queryDatasets()] == [2]
        assert not any(target.datastore.exists(r) for r in refs)


def test_transfer_refuses_a_differently_defined_dataset_type(tmp_path: Path) -> None:
    Butler.makeRepo(tmp_path / "dst", MEMORY)
    with _makeButler(tmp_path / "src", MEMORY) as source, Butler(tmp_path / "dst", run="run1") as target:
        target.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        refs = [source.put({"v": 1}, "metrics", visit=1, detector=1)]
        with pytest.raises(DatasetTypeConflictError, match="metrics"):
            target.transferFrom(source, refs)
        assert target.queryDatasets() == []


def test_ref_and_data_id_together_and_changing_collections(butler: Butler) -> None:
    ref = butler.put({"v": 1}, "metrics", visit=1, detector=2)
    with pytest.raises(DataIdError, match="not both"):
        butler.get(ref, visit=1)
    butler.collections = ["elsewhere", "run1"]
    assert butler.collections == ("elsewhere", "run1")
    butler.registry.registerRun("elsewhere")
    assert butler.get("metrics", visit=1, detector=2) == {"v": 1}


def test_transfer_shows_a_progress_bar_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _makeButler(tmp_path / "src", MEMORY) as source, _makeButler(tmp_path / "dst", MEMORY) as target:
        refs = [source.put({"v": v}, "metrics", visit=v, detector=1) for v in range(3)]
        target.transferFrom(source, refs, progress=True)
    assert "Transferring 3 datasets" in capsys.readouterr().err


# -- the default repository: memory tier in front of a file tier --


def test_default_repository_persists_and_reads_through_the_file_tier(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    config = Butler.makeRepo(root)
    assert config["datastore.cls"].endswith("ChainedDatastore")
    with Butler(root, run="night1") as butler:
        butler.registerDatasetType("calexp", DIMS, "MaskedImage")
        butler.registerDatasetType("sources", ("visit",), "ArrowTable")
        ref = butler.put(_calexp(), "calexp", visit=1, detector=2)
        butler.put(pa.table({"ra": [1.0], "dec": [2.0]}), "sources", visit=1)
        uri = butler.getUri(ref)
        assert uri.startswith("file://")  # the persistent tier's URI, though memory has it too
    with Butler(root, collections=["night1"]) as reopened:
        assert reopened.getUri(ref) == uri
        assert reopened.get("calexp.metadata", visit=1, detector=2) == {"exptime": 30.0}
        reopened.get("calexp", visit=1, detector=2)  # read through: now the memory tier has it
        assert reopened.datastore.datastores[0].exists(ref)
        assert reopened.getUri(ref) == uri  # the same answer whichever tier holds it
        assert reopened.get("sources", visit=1, parameters={"columns": ["dec"]}).column_names == ["dec"]
        reopened.removeDatasets([ref])
        assert not reopened.exists("calexp", visit=1, detector=2)
    with Butler(root, collections=["night1"]) as again:
        assert [r.datasetType.name for r in again.queryDatasets()] == ["sources"]


def test_reader_on_a_read_only_registry_can_read_through(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    Butler.makeRepo(root)
    with Butler(root, run="r") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        butler.put({"a": 1}, "metrics", visit=1)
    config = yaml.safe_load((root / "butler.yaml").read_text())
    config["registry"]["db"] = f"sqlite:///file:{root}/registry.sqlite3?mode=ro&uri=true"
    (root / "readonly.yaml").write_text(yaml.safe_dump(config))
    with Butler(root / "readonly.yaml", collections=["r"]) as reader:
        assert reader.getUri("metrics", visit=1).startswith("file://")
        assert reader.get("metrics", visit=1) == {"a": 1}
        ref = reader.findDataset("metrics", visit=1)
        assert ref is not None and reader.datastore.datastores[0].exists(ref)  # read through, no write


# -- shared repositories: several processes, and a PostgreSQL registry --


def _writer(root: str, worker: int, visits: list[int], queue: Any) -> None:
    added, conflicts = [], []
    with Butler(root, run="shared") as butler:
        for visit in visits:
            try:
                butler.put({"worker": worker, "visit": visit}, "metrics", visit=visit, detector=0)
                added.append(visit)
            except ConflictingDatasetError:
                conflicts.append(visit)
    queue.put((added, conflicts))


def test_processes_putting_to_one_repository_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _makeButler(root, None).close()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    overlapping = [list(range(start, start + 20)) for start in (0, 10, 20)]  # each visit wanted twice
    workers = [
        context.Process(target=_writer, args=(str(root), i, visits, queue))
        for i, visits in enumerate(overlapping)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    added = sorted(v for a, _ in results for v in a)
    assert added == list(range(40))  # every visit exactly once
    assert sum(len(c) for _, c in results) == 20
    with Butler(root, collections=["shared"]) as butler:
        refs = butler.queryDatasets("metrics")
        assert sorted(r.dataId["visit"] for r in refs) == list(range(40))
        for ref in refs:
            assert butler.get(ref)["visit"] == ref.dataId["visit"]


@pytest.fixture
def postgresRepo(tmp_path: Path) -> Iterator[Path]:
    url = postgresUrl()
    namespace = newNamespace()
    root = tmp_path / "pg-repo"
    Butler.makeRepo(root, {"registry": {"db": url, "namespace": namespace}})
    yield root
    dropNamespace(url, namespace)


def test_repository_with_a_postgresql_registry(postgresRepo: Path, tmp_path: Path) -> None:
    with Butler(postgresRepo, run="night1") as butler:
        assert butler.registry.url.get_backend_name() == "postgresql"
        butler.registerDatasetType("calexp", DIMS, "MaskedImage")
        ref = butler.put(_calexp(), "calexp", visit=1, detector=2)
        with pytest.raises(ConflictingDatasetError), butler.transaction():
            second = butler.put(_calexp(), "calexp", visit=2, detector=2)
            butler.put(_calexp(), "calexp", visit=1, detector=2)
        assert not butler.exists(second) and butler.registry.getDataset(second.id) is None
    with Butler(postgresRepo, collections=["night1"]) as reopened:
        assert reopened.get("calexp.metadata", visit=1, detector=2) == {"exptime": 30.0}
        Butler.makeRepo(tmp_path / "local")
        with Butler(tmp_path / "local", collections=["night1"]) as local:
            assert [r.id for r in local.transferFrom(reopened, reopened.queryDatasets())] == [ref.id]
            assert local.get("calexp.image", visit=1, detector=2).shape == (4, 4)
