"""InMemoryDatastore runs the datastore contract, plus what is particular to it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import databutler
from databutler import (
    Config,
    DatasetRef,
    DatasetType,
    DatasetTypeError,
    DatastoreConfig,
    InMemoryDatastore,
    InMemoryLocationRegistry,
    MaskedImage,
    StorageClassFactory,
    StoredItemInfo,
    StoredItemInfoExistsError,
    StoredItemInfoNotFoundError,
    UnknownComponentError,
)
from databutler.testing import DatastoreTests, makeRef


class TestInMemoryDatastoreContract(DatastoreTests):
    options: dict[str, Any] = {}

    def makeDatastore(self, registry: Any = None) -> InMemoryDatastore:
        return InMemoryDatastore(
            {"datastore": {"cls": "databutler.InMemoryDatastore", **self.options}}, registry=registry
        )


class TestBoundedInMemoryContract(TestInMemoryDatastoreContract):
    """Limits that the suite never reaches still take the bounded, locked paths of every verb."""

    options = {"maxItems": 1000, "maxBytes": "64MiB", "expireSeconds": 3600}

    def testIsBounded(self, datastore: InMemoryDatastore) -> None:
        stats = datastore.stats()
        assert (stats.maxItems, stats.maxBytes, stats.expireSeconds) == (1000, 64 * 2**20, 3600.0)


class TestFreezeInMemoryContract(TestInMemoryDatastoreContract):
    options = {"copyMode": "freeze"}

    def testReadsAreReadOnly(self, datastore: InMemoryDatastore) -> None:
        ref = makeRef("image", "NumpyArray")
        datastore.put(np.arange(4.0), ref)
        with pytest.raises(ValueError, match="read-only"):
            datastore.get(ref)[0] = 9.0
        assert datastore.copyModeFor(ref.datasetType) == "freeze"
        # A storage class that cannot be frozen falls back to deepcopy under a global freeze.
        assert datastore.copyModeFor(makeRef("metrics", "StructuredDataDict").datasetType) == "deepcopy"


class TestReferenceInMemoryContract(TestInMemoryDatastoreContract):
    options = {"copyMode": "reference"}

    def testReadsShareThePutObject(self, datastore: InMemoryDatastore) -> None:
        ref = makeRef("metrics", "StructuredDataDict")
        obj = {"a": 1}
        datastore.put(obj, ref)
        assert datastore.get(ref) is obj


def makeStore(**options: Any) -> InMemoryDatastore:
    return InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore", **options}})


def test_spec_class_attributes() -> None:
    assert InMemoryDatastore.defaultConfigFile == "datastores/inMemoryDatastore.yaml"
    assert InMemoryDatastore.isEphemeral is True
    path = Path(databutler.__file__).parent / "configs" / InMemoryDatastore.defaultConfigFile
    assert path.is_file()
    a, b = makeStore(name="scratch"), makeStore(name="scratch")
    assert a.name != b.name and a.name.startswith("scratch")
    assert isinstance(a.storageClassFactory, StorageClassFactory)
    assert a.storageClassFactory is not b.storageClassFactory


def test_config_given_as_path_string(tmp_path: Path) -> None:
    path = tmp_path / "mem.yaml"
    path.write_text("datastore:\n  cls: databutler.InMemoryDatastore\n  name: fromFile\n")
    store = InMemoryDatastore(str(path))
    assert store.name.startswith("fromFile@")
    assert isinstance(store.config, DatastoreConfig)


def test_setConfigRoot_does_nothing() -> None:
    config = Config({"datastore": {"cls": "databutler.InMemoryDatastore"}})
    full = Config({"datastore": {"cls": "databutler.InMemoryDatastore", "maxItems": 3}})
    before, fullBefore = config.toDict(), full.toDict()
    assert InMemoryDatastore.setConfigRoot("/some/root", config, full) is None
    assert config.toDict() == before and full.toDict() == fullBefore


def test_stored_item_info_fields_and_components() -> None:
    store = makeStore()
    ref = makeRef("calexp", "MaskedImage")
    before = time.time()
    store.put(MaskedImage(image=np.zeros(2), mask=np.zeros(2), metadata={}), ref)
    info = store.getStoredItemInfo(ref)
    assert isinstance(info, StoredItemInfo)
    assert before <= info.timestamp <= time.time()
    assert info.storageClass.name == "MaskedImage" and info.parentID is None
    component = store.getStoredItemInfo(ref.makeComponentRef("mask"))
    assert component.storageClass.name == "NumpyArray" and component.parentID == ref.id
    assert component.timestamp == info.timestamp


def test_stored_item_info_verbs() -> None:
    store = makeStore()
    ref = makeRef("metrics", "StructuredDataDict")
    info = StoredItemInfo(123.0, ref.datasetType.storageClass)
    with pytest.raises(KeyError):
        store.removeStoredItemInfo(ref)
    store.put({"x": 1}, ref)
    with pytest.raises(StoredItemInfoExistsError, match="metrics"):
        store.addStoredItemInfo(ref, info)
    store.removeStoredItemInfo(ref)
    with pytest.raises(StoredItemInfoNotFoundError):
        store.getStoredItemInfo(ref)
    with pytest.raises(KeyError):
        store.removeStoredItemInfo(ref)
    store.addStoredItemInfo(ref, info)
    assert store.getStoredItemInfo(ref) == info
    assert store.get(ref) == {"x": 1}  # bookkeeping verbs never touch the dataset
    with pytest.raises(TypeError):
        store.addStoredItemInfo(ref, {"timestamp": 1})  # type: ignore[arg-type]
    store.remove(ref)
    with pytest.raises(KeyError):
        store.getStoredItemInfo(ref)


def test_info_without_the_dataset_is_known_but_does_not_exist() -> None:
    store = makeStore()
    ref = makeRef("metrics", "StructuredDataDict")
    store.addStoredItemInfo(ref, StoredItemInfo(1.0, ref.datasetType.storageClass))
    assert store.knows(ref) and not store.exists(ref)
    assert store.knowsMany([ref]) == {ref: True} and store.existsMany([ref]) == {ref: False}
    store.removeStoredItemInfo(ref)
    assert not store.knows(ref)
    store.put({"x": 1}, ref)
    store.removeStoredItemInfo(ref)  # bookkeeping only: the dataset is still held, so still known
    assert store.exists(ref) and store.knows(ref)


def test_get_with_incompatible_storage_class_is_type_error() -> None:
    store = makeStore()
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"x": 1}, ref)
    asList = DatasetRef(
        DatasetType("metrics", ref.datasetType.dimensions, "StructuredDataList"), dict(ref.dataId), id=ref.id
    )
    with pytest.raises(TypeError, match="StructuredDataList"):
        store.get(asList)
    asObject = DatasetRef(
        DatasetType("metrics", ref.datasetType.dimensions, "Object"), dict(ref.dataId), id=ref.id
    )
    assert store.get(asObject) == {"x": 1}
    other = DatasetRef(
        DatasetType("other", ref.datasetType.dimensions, "StructuredDataDict"), dict(ref.dataId), id=ref.id
    )
    with pytest.raises(FileNotFoundError, match="holds 'metrics'"):
        store.get(other)
    assert not store.exists(other)


def test_components_cannot_be_put_or_removed_alone() -> None:
    store = makeStore()
    ref = makeRef("calexp", "MaskedImage")
    with pytest.raises(DatasetTypeError, match="composite"):
        store.put(np.zeros(2), ref.makeComponentRef("image"))
    store.put(MaskedImage(image=np.zeros(2)), ref)
    with pytest.raises(DatasetTypeError, match="composite"):
        store.remove(ref.makeComponentRef("image"))
    assert store.exists(ref)
    with pytest.raises(UnknownComponentError):
        ref.makeComponentRef("psf")


def test_component_missing_from_object_is_clear() -> None:
    store = makeStore()
    ref = makeRef("calexp", "MaskedImage")
    store.put(MaskedImage(image=np.zeros(2)), ref)  # mask defaults to None
    assert store.get(ref.makeComponentRef("mask")) is None


def test_registry_failure_undoes_put() -> None:
    class FailingRegistry(InMemoryLocationRegistry):
        def addDatasetLocations(self, datastoreName: str, refs: Any) -> None:
            raise RuntimeError("registry is down")

    store = InMemoryDatastore(
        {"datastore": {"cls": "databutler.InMemoryDatastore"}}, registry=FailingRegistry()
    )
    ref = makeRef("metrics", "StructuredDataDict")
    with pytest.raises(RuntimeError, match="down"):
        store.put({"x": 1}, ref)
    assert not store.exists(ref) and len(store) == 0


def test_len_contains_and_uri_shape() -> None:
    store = makeStore()
    ref = makeRef("metrics", "StructuredDataDict")
    assert len(store) == 0 and ref not in store and "x" not in store
    store.put({"x": 1}, ref)
    assert len(store) == 1 and ref in store
    assert store.getUri(ref) == f"mem://metrics/{ref.id}"
    assert store.getUri(makeRef("metrics", "StructuredDataDict"), predict=True).startswith("mem://metrics/")


def test_registry_failure_undoes_remove() -> None:
    class FailingRemoves(InMemoryLocationRegistry):
        def removeDatasetLocations(self, datastoreName: str, refs: Any) -> None:
            raise ConnectionError("registry is down")

    registry = FailingRemoves()
    store = InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore"}}, registry=registry)
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"x": 1}, ref)
    with pytest.raises(ConnectionError):
        store.remove(ref)
    assert store.get(ref) == {"x": 1}  # the dataset is back, matching what the registry says
    assert store.name in registry.getDatasetLocations(ref)
    with pytest.raises(ConnectionError), store.transaction():
        store.removeMany([ref])
    assert store.exists(ref)


def test_component_info_is_separate_from_the_composite() -> None:
    store = makeStore()
    ref = makeRef("calexp", "MaskedImage")
    store.put(MaskedImage(image=np.zeros(2)), ref)
    mask = ref.makeComponentRef("mask")
    store.removeStoredItemInfo(mask)
    assert store.getStoredItemInfo(ref).storageClass.name == "MaskedImage"
    with pytest.raises(KeyError):
        store.getStoredItemInfo(mask)
    custom = StoredItemInfo(1.0, mask.datasetType.storageClass, ref.id)
    store.addStoredItemInfo(mask, custom)
    assert store.getStoredItemInfo(mask) == custom
    assert store.getStoredItemInfo(ref).storageClass.name == "MaskedImage"


def test_id_holding_another_type_is_a_miss_everywhere() -> None:
    store = makeStore()
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"x": 1}, ref)
    other = DatasetRef(
        DatasetType("other", ref.datasetType.dimensions, "StructuredDataDict"), dict(ref.dataId), id=ref.id
    )
    missing: list[DatasetRef] = []
    assert store.getMany([ref, other], missing=missing) == {ref: {"x": 1}}
    assert missing == [other]
    hits, misses = store.stats().hits, store.stats().misses
    with pytest.raises(FileNotFoundError):
        store.get(other)
    assert (store.stats().hits, store.stats().misses) == (hits, misses + 1)


def test_registry_ends_consistent_when_calls_arrive_out_of_order() -> None:
    import threading

    class SlowAdds(InMemoryLocationRegistry):
        def __init__(self) -> None:
            super().__init__()
            self.inAdd = threading.Event()

        def addDatasetLocations(self, datastoreName: str, refs: Any) -> None:
            self.inAdd.set()
            time.sleep(0.05)  # a remove from another thread happens meanwhile
            super().addDatasetLocations(datastoreName, refs)

    registry = SlowAdds()
    store = InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore"}}, registry=registry)
    ref = makeRef("metrics", "StructuredDataDict")
    writer = threading.Thread(target=store.put, args=({"x": 1}, ref))
    writer.start()
    registry.inAdd.wait(5)
    store.remove(ref)
    writer.join()
    assert not store.exists(ref)
    assert store.name not in registry.getDatasetLocations(ref)


def test_registry_calls_hold_no_datastore_lock() -> None:
    """A registry call may wait for a database lock held by a thread that is itself about to
    tell the registry something (a Butler transaction): the datastore must not be holding a
    lock of its own while it waits, or the two threads deadlock."""
    import threading

    class TransactionalRegistry(InMemoryLocationRegistry):
        """Writes wait for ``database``, which the thread in a transaction holds (re-entrantly)."""

        def __init__(self) -> None:
            super().__init__()
            self.database = threading.RLock()
            self.waiting = threading.Event()

        def removeDatasetLocations(self, datastoreName: str, refs: Any) -> None:
            self.waiting.set()
            with self.database:
                super().removeDatasetLocations(datastoreName, refs)

        def addDatasetLocations(self, datastoreName: str, refs: Any) -> None:
            with self.database:
                super().addDatasetLocations(datastoreName, refs)

    registry = TransactionalRegistry()
    store = InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore"}}, registry=registry)
    first, second = makeRef("metrics", "StructuredDataDict"), makeRef("metrics", "StructuredDataDict")
    store.put({"x": 1}, first)
    done = threading.Event()

    def inTransaction() -> None:
        with registry.database:  # like a thread inside a registry transaction
            registry.waiting.wait(5)  # another thread's remove now waits for the database
            store.put({"y": 2}, second)
            done.set()

    transaction = threading.Thread(target=inTransaction)
    remover = threading.Thread(target=store.remove, args=(first,))
    transaction.start()
    remover.start()
    finished = done.wait(5)
    transaction.join(10)
    remover.join(10)
    assert finished, "the put waited for the other thread's registry call: deadlock"
    assert registry.getDatasetLocations(second) == {store.name}
    assert registry.getDatasetLocations(first) == frozenset()
