"""`DatastoreTests`: the contract every `Datastore` must meet, as a pytest mixin.

A datastore's test module says only how to build one::

    class TestMyDatastore(DatastoreTests):
        def makeDatastore(self, registry=None):
            return MyDatastore({"datastore": {"cls": "..."}}, registry=registry)

        def readArtifact(self, datastore, ref):  # white-box: what is really stored, or None
            return datastore.rawObjects.get(ref.id)

The built-in datastores need no `readArtifact` of their own (`readBack` knows them).
Optional types (numpy, pandas, pyarrow, astropy) are skipped, with the reason, when the
library is not installed; ``make test`` installs them all.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..datastore.base import Datastore
from ..datastore.bridge import InMemoryLocationRegistry
from ..exceptions import (
    DatasetExistsError,
    DatasetNotFoundError,
    DatasetTypeMismatchError,
    InvalidParameterError,
)

__all__ = ["DatastoreTests", "makeRef", "makeTestDatasetType", "readBack"]


def readBack(datastore: Datastore, ref: DatasetRef) -> Any:
    """Return what ``datastore`` really holds for the (non-component) ``ref``, bypassing its verbs.

    This is the contract suite's white-box hook for the built-in datastores: an
    `InMemoryDatastore`'s stored object, the decoded file a `FileDatastore`'s record points at
    (read from the file system, not through `Datastore.get`), the first child of a
    `ChainedDatastore` that holds it. A datastore that keeps records but loses its artifacts
    (or answers from somewhere else) reads back as absent.

    Returns
    -------
    artifact : object or None
        The stored dataset, or `None` when nothing is really there.

    Raises
    ------
    NotImplementedError
        ``datastore`` is not a built-in class: override `DatastoreTests.readArtifact`.
    """
    from ..datastores.chained import ChainedDatastore
    from ..datastores.file import FileDatastore
    from ..datastores.memory import InMemoryDatastore

    if isinstance(datastore, InMemoryDatastore):
        entry = datastore._entries.get(ref.id.int)
        return None if entry is None else entry.obj
    if isinstance(datastore, FileDatastore):
        infos = datastore.files.lookup(ref)
        whole = None if infos is None else infos[""]
        if whole is None or whole.formatter is None:
            return None
        try:
            return datastore.files.readFile(ref, whole, ref.datasetType.storageClass, None)
        except FileNotFoundError:
            return None
    if isinstance(datastore, ChainedDatastore):
        for child in datastore.children:
            found = readBack(child, ref)
            if found is not None:
                return found
        return None
    raise NotImplementedError(
        f"No white-box read-back for {type(datastore).__name__}: override DatastoreTests.readArtifact "
        f"to return what it really stores for a ref."
    )


def makeTestDatasetType(
    name: str, storageClass: str, dimensions: tuple[str, ...] = ("visit", "detector")
) -> DatasetType:
    """Return a dataset type with the usual test dimensions."""
    return DatasetType(name, dimensions, storageClass)  # type: ignore[arg-type]  # a name is resolved on init


def makeRef(
    name: str, storageClass: str, visit: int = 1, detector: int = 2, run: str | None = "test/run"
) -> DatasetRef:
    """Return a new ref (fresh UUID) of a ``(visit, detector)`` dataset type."""
    return DatasetRef(
        makeTestDatasetType(name, storageClass), {"visit": visit, "detector": detector}, run=run
    )


def _sampleDict() -> dict[str, Any]:
    return {"a": 1, "b": [1, 2, 3], "c": {"d": "text"}}


class DatastoreTests:
    """The datastore contract. Subclasses implement `makeDatastore`."""

    def makeDatastore(self, registry: Any = None) -> Datastore:
        """Return a new, empty datastore of the class under test, telling ``registry`` if given."""
        raise NotImplementedError("A DatastoreTests subclass must say how to build its datastore.")

    def readArtifact(self, datastore: Datastore, ref: DatasetRef) -> Any:
        """Return what ``datastore`` really stores for ``ref``, not through its verbs (white-box hook).

        Return `None` when nothing is really there. The default, `readBack`, knows the built-in datastores; a new datastore's test class
        overrides this to read its storage directly (its files, its objects).
        """
        return readBack(datastore, ref)

    def assertStored(self, datastore: Datastore, ref: DatasetRef, expected: Any) -> None:
        """Assert, through the white-box hook, that ``ref``'s artifact is really there and equal to ``expected``."""
        artifact = self.readArtifact(datastore, ref)
        assert artifact is not None, (
            f"{datastore.name} answers for {ref} but its artifact is not really there (white-box read-back)."
        )
        self.assertSameData(artifact, expected)

    def assertNotStored(self, datastore: Datastore, ref: DatasetRef) -> None:
        """Assert, through the white-box hook, that nothing is really stored for ``ref``."""
        assert self.readArtifact(datastore, ref) is None, (
            f"{datastore.name} says {ref} is gone but its artifact is still there (white-box read-back)."
        )

    # -- helpers --

    @pytest.fixture
    def datastore(self) -> Datastore:
        """Provide a fresh datastore from `makeDatastore` for one test."""
        return self.makeDatastore()

    @staticmethod
    def assertSameData(a: Any, b: Any) -> None:
        """Assert that two datasets are equal, comparing arrays element by element."""
        np = pytest.importorskip("numpy")
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b

    # -- basics --

    def testClassAttributes(self, datastore: Datastore) -> None:
        """Check the class attributes the contract requires: isEphemeral, defaultConfigFile, name, factory."""
        assert isinstance(type(datastore).isEphemeral, bool)
        assert datastore.defaultConfigFile is None or isinstance(datastore.defaultConfigFile, str)
        assert isinstance(datastore.name, str) and datastore.name
        assert datastore.storageClassFactory.getStorageClass("StructuredDataDict").pytype is dict

    def testFromConfigBuildsSameClass(self, datastore: Datastore) -> None:
        """Check that `Datastore.fromConfig` on the datastore's config builds the same class."""
        again = Datastore.fromConfig(datastore.config)
        assert type(again) is type(datastore)

    def testPutGetDict(self, datastore: Datastore) -> None:
        """Check that a dict put is reported by exists and read back equal."""
        ref = makeRef("metrics", "StructuredDataDict")
        assert not datastore.exists(ref)
        datastore.put(_sampleDict(), ref)
        assert datastore.exists(ref)
        assert datastore.get(ref) == _sampleDict()
        self.assertStored(datastore, ref, _sampleDict())

    def testPutGetListWithSlice(self, datastore: Datastore) -> None:
        """Check that a list reads back whole and that the ``slice`` parameter selects part of it."""
        ref = makeRef("values", "StructuredDataList")
        datastore.put([0, 1, 2, 3, 4, 5], ref)
        assert datastore.get(ref) == [0, 1, 2, 3, 4, 5]
        self.assertStored(datastore, ref, [0, 1, 2, 3, 4, 5])
        assert datastore.get(ref, parameters={"slice": slice(1, 3)}) == [1, 2]

    def testPutGetNumpyWithSlice(self, datastore: Datastore) -> None:
        """Check that an array reads back equal and that a two-axis ``slice`` selects a block."""
        np = pytest.importorskip("numpy")
        ref = makeRef("image", "NumpyArray")
        array = np.arange(20.0).reshape(4, 5)
        datastore.put(array, ref)
        np.testing.assert_array_equal(datastore.get(ref), array)
        self.assertStored(datastore, ref, array)
        np.testing.assert_array_equal(
            datastore.get(ref, parameters={"slice": (slice(1, 3), slice(0, 2))}), array[1:3, 0:2]
        )

    def testPutGetArrowColumns(self, datastore: Datastore) -> None:
        """Check that an Arrow table reads back equal and that ``columns`` selects columns in order."""
        pa = pytest.importorskip("pyarrow")
        ref = makeRef("sources", "ArrowTable")
        table = pa.table({"ra": [1.0, 2.0], "dec": [3.0, 4.0], "flux": [5.0, 6.0]})
        datastore.put(table, ref)
        assert datastore.get(ref).equals(table)
        assert datastore.get(ref, parameters={"columns": ["dec", "ra"]}).column_names == ["dec", "ra"]

    def testPutGetDataframeColumns(self, datastore: Datastore) -> None:
        """Check that a DataFrame reads back equal and that ``columns`` selects columns."""
        pd = pytest.importorskip("pandas")
        ref = makeRef("frame", "DataFrame")
        frame = pd.DataFrame({"ra": [1.0, 2.0], "dec": [3.0, 4.0]})
        datastore.put(frame, ref)
        pd.testing.assert_frame_equal(datastore.get(ref), frame)
        assert list(datastore.get(ref, parameters={"columns": ["dec"]}).columns) == ["dec"]

    def testPutGetAstropyColumns(self, datastore: Datastore) -> None:
        """Check that an astropy Table reads back and that ``columns`` selects columns."""
        table_mod = pytest.importorskip("astropy.table")
        ref = makeRef("catalog", "AstropyTable")
        table = table_mod.Table({"ra": [1.0, 2.0], "dec": [3.0, 4.0]})
        datastore.put(table, ref)
        got = datastore.get(ref)
        assert list(got["ra"]) == [1.0, 2.0]
        assert datastore.get(ref, parameters={"columns": ["dec"]}).colnames == ["dec"]

    def testKnowsAndExistsFollowPutAndRemove(self, datastore: Datastore) -> None:
        """Check that `knows` (a record) and `exists` (the artifact) follow put and remove."""
        ref = makeRef("metrics", "StructuredDataDict")
        other = makeRef("metrics", "StructuredDataDict", visit=2)
        assert not datastore.knows(ref) and not datastore.exists(ref)
        datastore.put({"x": 1}, ref)
        assert datastore.knows(ref) and datastore.exists(ref)
        self.assertStored(datastore, ref, {"x": 1})
        assert datastore.knowsMany([ref, other]) == {ref: True, other: False}
        sameIdOtherType = DatasetRef(
            makeTestDatasetType("catalog", "StructuredDataDict"), dict(ref.dataId), id=ref.id, run=ref.run
        )
        assert not datastore.knows(sameIdOtherType) and not datastore.exists(sameIdOtherType)
        datastore.remove(ref)
        assert not datastore.knows(ref) and not datastore.exists(ref)

    # -- the spec's errors --

    def testGetMissingRaisesFileNotFound(self, datastore: Datastore) -> None:
        """Check that getting an unknown dataset raises `DatasetNotFoundError`, a FileNotFoundError."""
        ref = makeRef("metrics", "StructuredDataDict")
        with pytest.raises(FileNotFoundError, match="metrics"):
            datastore.get(ref)
        with pytest.raises(DatasetNotFoundError):
            datastore.get(ref)

    def testPutWrongTypeRaisesTypeError(self, datastore: Datastore) -> None:
        """Check that putting the wrong Python type raises `DatasetTypeMismatchError` and stores nothing."""
        ref = makeRef("metrics", "StructuredDataDict")
        with pytest.raises(TypeError, match="StructuredDataDict"):
            datastore.put([1, 2, 3], ref)
        with pytest.raises(DatasetTypeMismatchError):
            datastore.put("not a dict", ref)
        assert not datastore.exists(ref)

    def testSecondPutIsErrorAndKeepsFirst(self, datastore: Datastore) -> None:
        """Check that a second put of the same ref raises `DatasetExistsError` and keeps the first data."""
        ref = makeRef("metrics", "StructuredDataDict")
        datastore.put({"first": 1}, ref)
        with pytest.raises(DatasetExistsError, match="metrics"):
            datastore.put({"second": 2}, ref)
        assert datastore.get(ref) == {"first": 1}
        self.assertStored(datastore, ref, {"first": 1})

    def testRemoveTwiceRaisesFileNotFound(self, datastore: Datastore) -> None:
        """Check that removing a dataset twice, or getting it after removal, raises FileNotFoundError."""
        ref = makeRef("metrics", "StructuredDataDict")
        datastore.put({"x": 1}, ref)
        datastore.remove(ref)
        assert not datastore.exists(ref)
        self.assertNotStored(datastore, ref)
        with pytest.raises(FileNotFoundError):
            datastore.remove(ref)
        with pytest.raises(FileNotFoundError):
            datastore.get(ref)

    def testUnknownParameterIsErrorAndHarmless(self, datastore: Datastore) -> None:
        """Check that an unknown or malformed read parameter raises and leaves the dataset readable."""
        ref = makeRef("values", "StructuredDataList")
        datastore.put([1, 2, 3], ref)
        with pytest.raises(InvalidParameterError, match="bogus"):
            datastore.get(ref, parameters={"bogus": 1})
        with pytest.raises(ValueError):
            datastore.get(ref, parameters={"slice": "not a slice"})
        assert datastore.get(ref) == [1, 2, 3]

    def testGetUri(self, datastore: Datastore) -> None:
        """Check getUri: missing raises, predicted URIs are marked, real URIs are distinct and stable."""
        ref = makeRef("metrics", "StructuredDataDict")
        other = makeRef("metrics", "StructuredDataDict", visit=2)
        with pytest.raises(FileNotFoundError):
            datastore.getUri(ref)
        predicted = datastore.getUri(ref, predict=True)
        assert predicted.endswith("#predicted")
        datastore.put({"x": 1}, ref)
        datastore.put({"x": 2}, other)
        uri = datastore.getUri(ref)
        assert "#" not in uri
        assert uri != datastore.getUri(other)
        assert datastore.getUri(ref, predict=True) == uri

    def testStoredItemInfo(self, datastore: Datastore) -> None:
        """Check that stored item info exists only while the dataset does and cannot be added twice."""
        ref = makeRef("metrics", "StructuredDataDict")
        with pytest.raises(KeyError):
            datastore.getStoredItemInfo(ref)
        datastore.put({"x": 1}, ref)
        info = datastore.getStoredItemInfo(ref)
        with pytest.raises(KeyError):
            datastore.addStoredItemInfo(ref, info)
        datastore.remove(ref)
        with pytest.raises(KeyError):
            datastore.getStoredItemInfo(ref)

    # -- components --

    def testCompositeComponents(self, datastore: Datastore) -> None:
        """Check that a composite's components exist, read (with parameters) and go with the composite."""
        np = pytest.importorskip("numpy")
        from ..composites import MaskedImage

        ref = makeRef("calexp", "MaskedImage")
        image = np.arange(6.0).reshape(2, 3)
        mask = np.zeros((2, 3), dtype=np.int32)
        datastore.put(MaskedImage(image=image, mask=mask, metadata={"exptime": 30.0}), ref)
        imageRef = ref.makeComponentRef("image")
        assert datastore.exists(imageRef)
        np.testing.assert_array_equal(datastore.get(imageRef), image)
        np.testing.assert_array_equal(
            datastore.get(imageRef, parameters={"slice": (slice(0, 1),)}), image[0:1]
        )
        assert datastore.get(ref.makeComponentRef("metadata")) == {"exptime": 30.0}
        assert datastore.getUri(imageRef) != datastore.getUri(ref)
        whole = datastore.get(ref)
        np.testing.assert_array_equal(whole.mask, mask)
        datastore.remove(ref)
        for component in ref.components.values():
            assert not datastore.exists(component)
            with pytest.raises(FileNotFoundError):
                datastore.get(component)

    # -- transfer --

    def testTransfer(self, datastore: Datastore) -> None:
        """Check that transfer copies a dataset from another datastore and fails for a missing one."""
        source = self.makeDatastore()
        ref = makeRef("metrics", "StructuredDataDict")
        source.put({"x": 1}, ref)
        datastore.transfer(source, ref)
        assert datastore.get(ref) == {"x": 1}
        self.assertStored(datastore, ref, {"x": 1})
        missing = makeRef("metrics", "StructuredDataDict", visit=9)
        with pytest.raises(FileNotFoundError):
            datastore.transfer(source, missing)
        assert not datastore.exists(missing)

    # -- transactions --

    def testTransactionRollsBackPutsAndRemoves(self, datastore: Datastore) -> None:
        """Check that a failed transaction undoes its puts and its removes."""
        kept = makeRef("metrics", "StructuredDataDict", visit=1)
        datastore.put({"kept": True}, kept)
        undone = makeRef("metrics", "StructuredDataDict", visit=2)
        with pytest.raises(RuntimeError, match="boom"), datastore.transaction():
            datastore.put({"x": 1}, undone)
            datastore.remove(kept)
            raise RuntimeError("boom")
        assert not datastore.exists(undone)
        assert datastore.get(kept) == {"kept": True}
        self.assertNotStored(datastore, undone)
        self.assertStored(datastore, kept, {"kept": True})

    def testNestedTransactions(self, datastore: Datastore) -> None:
        """Check that a failed inner transaction undoes only its own puts and a failed outer one all."""
        outer = makeRef("metrics", "StructuredDataDict", visit=1)
        inner = makeRef("metrics", "StructuredDataDict", visit=2)
        failed = makeRef("metrics", "StructuredDataDict", visit=3)
        with pytest.raises(ValueError, match="outer fails"), datastore.transaction():
            datastore.put({"o": 1}, outer)
            with datastore.transaction():
                datastore.put({"i": 1}, inner)
            with pytest.raises(KeyError), datastore.transaction():
                datastore.put({"f": 1}, failed)
                raise KeyError("inner fails")
            assert datastore.exists(inner) and not datastore.exists(failed)
            raise ValueError("outer fails")
        assert not any(datastore.exists(r) for r in (outer, inner, failed))

    def testCommittedTransactionKeepsPuts(self, datastore: Datastore) -> None:
        """Check that a committed transaction keeps its puts."""
        ref = makeRef("metrics", "StructuredDataDict")
        with datastore.transaction():
            datastore.put({"x": 1}, ref)
        assert datastore.get(ref) == {"x": 1}
        self.assertStored(datastore, ref, {"x": 1})

    # -- registry protocol --

    def testRegistryIsTold(self) -> None:
        """Check that the registry is told of puts and removes, and not of rolled-back puts."""
        registry = InMemoryLocationRegistry()
        datastore = self.makeDatastore(registry=registry)
        ref = makeRef("metrics", "StructuredDataDict")
        datastore.put({"x": 1}, ref)
        assert datastore.name in registry.getDatasetLocations(ref)
        datastore.remove(ref)
        assert datastore.name not in registry.getDatasetLocations(ref)
        with pytest.raises(RuntimeError), datastore.transaction():
            datastore.put({"x": 2}, ref)
            raise RuntimeError("roll back")
        assert datastore.name not in registry.getDatasetLocations(ref)

    # -- bulk verbs --

    def testBulkVerbs(self, datastore: Datastore) -> None:
        """Check putMany, getMany (missing refs raise or are collected), existsMany and removeMany."""
        refs = [makeRef("metrics", "StructuredDataDict", visit=v) for v in range(5)]
        datastore.putMany([({"v": i}, ref) for i, ref in enumerate(refs)])
        assert datastore.getMany(refs) == {ref: {"v": i} for i, ref in enumerate(refs)}
        for i, ref in enumerate(refs):
            self.assertStored(datastore, ref, {"v": i})
        absent = [makeRef("metrics", "StructuredDataDict", visit=v) for v in (10, 11)]
        with pytest.raises(DatasetNotFoundError) as excinfo:
            datastore.getMany(refs + absent)
        for ref in absent:
            assert str(ref.id) in str(excinfo.value)
        missing: list[DatasetRef] = []
        found = datastore.getMany(refs + absent, missing=missing)
        assert set(found) == set(refs) and missing == absent
        assert datastore.existsMany(refs + absent) == {
            **{r: True for r in refs},
            **{r: False for r in absent},
        }
        with pytest.raises(DatasetNotFoundError):
            datastore.removeMany(refs[:2] + absent)
        assert datastore.existsMany(refs[:2]) == {refs[0]: False, refs[1]: False}
        datastore.removeMany(refs[2:])
        assert not any(datastore.existsMany(refs).values())
        for ref in refs:
            self.assertNotStored(datastore, ref)

    def testPutManyIsAllOrNothing(self, datastore: Datastore) -> None:
        """Check that putMany stores nothing when one of its refs is already stored."""
        existing = makeRef("metrics", "StructuredDataDict", visit=0)
        datastore.put({"v": 0}, existing)
        fresh = makeRef("metrics", "StructuredDataDict", visit=1)
        with pytest.raises(DatasetExistsError):
            datastore.putMany([({"v": 1}, fresh), ({"v": 2}, existing)])
        assert not datastore.exists(fresh)
        assert datastore.get(existing) == {"v": 0}
        self.assertNotStored(datastore, fresh)

    def testEqualRefRebuiltFindsDataset(self, datastore: Datastore) -> None:
        """Check that a ref rebuilt from the same dataset type, data ID, id and run finds the dataset."""
        ref = makeRef("metrics", "StructuredDataDict")
        datastore.put({"x": 1}, ref)
        rebuilt = DatasetRef(
            makeTestDatasetType("metrics", "StructuredDataDict"),
            dict(ref.dataId),
            id=uuid.UUID(str(ref.id)),
            run=ref.run,
        )
        assert datastore.exists(rebuilt)
        assert datastore.get(rebuilt) == {"x": 1}
