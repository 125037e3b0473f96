"""ChainedDatastore runs the datastore contract, plus tiering, constraints and rollback."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from databutler import (
    ChainedDatastore,
    ConfigError,
    DatasetExistsError,
    DatasetNotFoundError,
    DatasetTooLargeError,
    DatasetTypeNotSupportedError,
    Datastore,
    FileDatastore,
    FormatterError,
    InMemoryDatastore,
    InMemoryLocationRegistry,
    JsonFormatter,
)
from databutler.testing import DatastoreTests, makeRef

MEMORY = "databutler.datastores.memory.InMemoryDatastore"
FILE = "databutler.datastores.file.FileDatastore"


def makeChain(
    root: Path,
    registry: Any = None,
    memory: dict[str, Any] | None = None,
    file: dict[str, Any] | None = None,
    **extra: Any,
) -> ChainedDatastore:
    children = [
        {"datastore": {"cls": MEMORY, "name": "memory", **(memory or {})}},
        {"datastore": {"cls": FILE, "name": "file", "root": str(root), **(file or {})}},
    ]
    return ChainedDatastore(
        {
            "datastore": {
                "cls": "databutler.ChainedDatastore",
                "name": "chain",
                "datastores": children,
                **extra,
            }
        },
        registry=registry,
    )


class TestChainedDatastoreContract(DatastoreTests):
    @pytest.fixture(autouse=True)
    def _root(self, tmp_path: Path) -> None:
        self.tmpPath = tmp_path

    def makeDatastore(self, registry: Any = None) -> ChainedDatastore:
        return makeChain(self.tmpPath / uuid.uuid4().hex, registry)


class TestChainedFileOnlyContract(DatastoreTests):
    """A chain whose memory tier rejects everything still meets the contract through its file tier."""

    @pytest.fixture(autouse=True)
    def _root(self, tmp_path: Path) -> None:
        self.tmpPath = tmp_path

    def makeDatastore(self, registry: Any = None) -> ChainedDatastore:
        everything = [
            "StructuredDataDict",
            "StructuredDataList",
            "NumpyArray",
            "ArrowTable",
            "DataFrame",
            "AstropyTable",
            "MaskedImage",
        ]
        return makeChain(
            self.tmpPath / uuid.uuid4().hex, registry, memory={"constraints": {"reject": everything}}
        )


def test_children_and_ephemerality(tmp_path: Path) -> None:
    chain = makeChain(tmp_path)
    assert [type(c) for c in chain.datastores] == [InMemoryDatastore, FileDatastore]
    assert chain.isEphemeral is False and ChainedDatastore.isEphemeral is False
    memoryOnly = ChainedDatastore(
        {
            "datastore": {
                "cls": "databutler.ChainedDatastore",
                "datastores": [{"cls": MEMORY}, {"cls": MEMORY}],
            }
        }
    )
    assert memoryOnly.isEphemeral is True
    assert isinstance(Datastore.fromConfig(chain.config), ChainedDatastore)


@pytest.mark.parametrize("datastores", [None, [], "memory", [{"name": "no cls"}], [42]])
def test_bad_children_config(datastores: Any) -> None:
    with pytest.raises(ConfigError, match="datastores"):
        ChainedDatastore({"datastore": {"cls": "databutler.ChainedDatastore", "datastores": datastores}})


@pytest.mark.parametrize("constraints", ["calexp", {"accept": "calexp"}, {"allow": ["x"]}, {"reject": [1]}])
def test_bad_constraints(tmp_path: Path, constraints: Any) -> None:
    with pytest.raises(ConfigError, match="constraints"):
        makeChain(tmp_path, memory={"constraints": constraints})


def test_put_goes_to_all_get_from_first(tmp_path: Path) -> None:
    chain = makeChain(tmp_path)
    memory, file = chain.datastores
    ref = makeRef("metrics", "StructuredDataDict")
    chain.put({"x": 1}, ref)
    assert memory.exists(ref) and file.exists(ref)
    assert chain.getUri(ref).startswith("file://")  # a persistent tier's URI first
    memory.remove(ref)
    assert chain.get(ref) == {"x": 1}
    assert chain.getUri(ref).startswith("file://")
    chain.remove(ref)
    assert not chain.exists(ref)
    with pytest.raises(DatasetNotFoundError, match="chain"):
        chain.remove(ref)
    with pytest.raises(DatasetNotFoundError):
        chain.getUri(ref)
    assert chain.getUri(ref, predict=True) == file.getUri(ref, predict=True)  # where it will be kept


def test_constraints_route_datasets(tmp_path: Path) -> None:
    chain = makeChain(
        tmp_path,
        memory={"constraints": {"accept": ["NumpyArray"], "reject": ["bigImage"]}},
        file={"constraints": {"reject": ["scratch"]}},
    )
    memory, file = chain.datastores
    small = makeRef("image", "NumpyArray")
    big = makeRef("bigImage", "NumpyArray")
    metrics = makeRef("metrics", "StructuredDataDict")
    scratch = makeRef("scratch", "NumpyArray")
    for ref in (small, big, metrics, scratch):
        chain.put(np.zeros(3) if ref is not metrics else {"a": 1}, ref)
    assert memory.exists(small) and file.exists(small)
    assert not memory.exists(big) and file.exists(big)
    assert not memory.exists(metrics) and file.exists(metrics)
    assert memory.exists(scratch) and not file.exists(scratch)
    nowhere = ChainedDatastore(
        {
            "datastore": {
                "cls": "databutler.ChainedDatastore",
                "datastores": [{"cls": MEMORY, "constraints": {"accept": ["NumpyArray"]}}],
            }
        }
    )
    with pytest.raises(DatasetTypeNotSupportedError, match="metrics"):
        nowhere.put({"a": 1}, metrics)
    assert not nowhere.exists(metrics)


class FailingFormatter(JsonFormatter):
    def write(self, inMemoryDataset: Any, stream: Any, storageClass: Any) -> None:
        stream.write(b'{"partial": ')
        raise OSError("disk full")


def test_failure_in_one_child_rolls_back_the_others(tmp_path: Path) -> None:
    chain = makeChain(tmp_path, file={"formatters": {"StructuredDataDict": f"{__name__}.FailingFormatter"}})
    memory, file = chain.datastores
    ref = makeRef("metrics", "StructuredDataDict")
    with pytest.raises(FormatterError, match=r"FailingFormatter.*disk full"):
        chain.put({"x": 1}, ref)
    assert not memory.exists(ref) and not file.exists(ref)
    # A child that already holds the ref: the others are left as they were.
    other = makeRef("values", "StructuredDataList")
    file.put([1], other)
    with pytest.raises(DatasetExistsError):
        chain.put([2], other)
    assert not memory.exists(other) and file.get(other) == [1]


def test_memory_tier_eviction_falls_through(tmp_path: Path) -> None:
    chain = makeChain(tmp_path, memory={"maxItems": 2})
    memory, file = chain.datastores
    refs = [makeRef("image", "NumpyArray", visit=v) for v in range(5)]
    for v, ref in enumerate(refs):
        chain.put(np.full(4, v), ref)
    assert len(memory) == 2
    assert not memory.exists(refs[0]) and file.exists(refs[0])
    for v, ref in enumerate(refs):
        np.testing.assert_array_equal(chain.get(ref), np.full(4, v))


def test_too_large_for_memory_tier_goes_to_file_tier(tmp_path: Path) -> None:
    registry = InMemoryLocationRegistry()
    chain = makeChain(tmp_path, registry=registry, memory={"maxBytes": 1024}, readThrough=True)
    memory, file = chain.datastores
    big = makeRef("image", "NumpyArray")
    chain.put(np.zeros(1000), big)  # 8000 bytes > the memory tier's maxBytes
    assert not memory.exists(big) and file.exists(big)
    assert registry.getDatasetLocations(big) == {"chain"}
    np.testing.assert_array_equal(chain.get(big), np.zeros(1000))
    assert not memory.exists(big)
    # With no other child to store it, the put fails and nothing is stored.
    memoryOnly = ChainedDatastore(
        {
            "datastore": {
                "cls": "databutler.ChainedDatastore",
                "datastores": [{"cls": MEMORY, "maxBytes": 1024}],
            }
        }
    )
    with pytest.raises(DatasetTooLargeError):
        memoryOnly.put(np.zeros(1000), big)
    assert not memoryOnly.exists(big)


def test_read_through_refills_memory_tier(tmp_path: Path) -> None:
    chain = makeChain(tmp_path, readThrough=True)
    memory, _ = chain.datastores
    ref = makeRef("metrics", "StructuredDataDict")
    chain.put({"x": 1}, ref)
    memory.remove(ref)
    assert chain.get(ref, parameters=None) == {"x": 1}
    assert memory.exists(ref)
    with pytest.raises(ConfigError, match="readThrough"):
        makeChain(tmp_path, readThrough="yes")


class ReadOnlyLocationRegistry(InMemoryLocationRegistry):
    """Refuses writes once ``readOnly`` is set, like a reader's read-only registry."""

    readOnly = False

    def addDatasetLocations(self, datastoreName: str, refs: Any) -> None:
        if self.readOnly:
            raise PermissionError("attempt to write a readonly database")
        super().addDatasetLocations(datastoreName, refs)


def test_read_through_does_not_write_to_the_registry(tmp_path: Path) -> None:
    registry = ReadOnlyLocationRegistry()
    chain = makeChain(tmp_path, registry=registry, readThrough=True)
    memory, _ = chain.datastores
    ref = makeRef("metrics", "StructuredDataDict")
    chain.put({"x": 1}, ref)
    memory.remove(ref)  # cold: only the file tier has it
    registry.readOnly = True
    assert chain.get(ref) == {"x": 1}
    assert memory.exists(ref)  # the chain already held it: nothing to tell the registry
    assert registry.getDatasetLocations(ref) == {"chain"}


def test_read_through_is_best_effort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = makeChain(tmp_path, readThrough=True)
    memory, _ = chain.datastores
    ref = makeRef("metrics", "StructuredDataDict")
    chain.put({"x": 1}, ref)
    memory.remove(ref)

    def failingAdopt(obj: Any, ref: Any, **options: Any) -> None:
        raise OSError("cache broken")

    monkeypatch.setattr(memory, "adopt", failingAdopt)
    assert chain.get(ref) == {"x": 1}
    assert not memory.exists(ref)


def test_tiers_do_not_alias(tmp_path: Path) -> None:
    chain = makeChain(tmp_path)
    memory, file = chain.datastores
    ref = makeRef("metrics", "StructuredDataDict")
    original = {"values": [1, 2, 3]}
    chain.put(original, ref)
    original["values"].append(4)
    fromMemory = chain.get(ref)
    assert fromMemory == {"values": [1, 2, 3]}
    fromMemory["values"].append(5)
    assert memory.get(ref) == {"values": [1, 2, 3]}
    assert file.get(ref) == {"values": [1, 2, 3]}
    arrayRef = makeRef("image", "NumpyArray")
    array = np.zeros(4)
    chain.put(array, arrayRef)
    array[0] = 99.0
    assert memory.get(arrayRef)[0] == 0.0 and file.get(arrayRef)[0] == 0.0
    assert not np.shares_memory(memory.get(arrayRef), file.get(arrayRef))


def test_registry_hears_the_chain(tmp_path: Path) -> None:
    registry = InMemoryLocationRegistry()
    chain = makeChain(
        tmp_path, registry=registry, memory={"maxItems": 1}, file={"constraints": {"reject": ["scratch"]}}
    )
    memory = chain.datastores[0]
    ref = makeRef("metrics", "StructuredDataDict")
    chain.put({"x": 1}, ref)
    assert registry.getDatasetLocations(ref) == {"chain"}
    memory.remove(ref)  # still in the file tier
    assert registry.getDatasetLocations(ref) == {"chain"}
    chain.remove(ref)
    assert registry.getDatasetLocations(ref) == frozenset()
    scratch = makeRef("scratch", "StructuredDataDict")
    chain.put({"s": 1}, scratch)  # only the memory tier takes it
    assert registry.getDatasetLocations(scratch) == {"chain"}
    chain.put({"y": 1}, makeRef("other", "StructuredDataDict"))  # evicts scratch from memory
    assert not chain.exists(scratch)
    assert registry.getDatasetLocations(scratch) == frozenset()


def test_stored_item_info_verbs(tmp_path: Path) -> None:
    chain = makeChain(tmp_path)
    memory, file = chain.datastores
    ref = makeRef("metrics", "StructuredDataDict")
    chain.put({"x": 1}, ref)
    assert chain.getStoredItemInfo(ref) == memory.getStoredItemInfo(ref)
    fileInfo = file.getStoredItemInfo(ref)
    chain.removeStoredItemInfo(ref)
    with pytest.raises(KeyError):
        chain.getStoredItemInfo(ref)
    with pytest.raises(KeyError):
        chain.removeStoredItemInfo(ref)
    file.addStoredItemInfo(ref, fileInfo)
    assert chain.getStoredItemInfo(ref) == fileInfo


def test_setConfigRoot(tmp_path: Path) -> None:
    from databutler import Config

    config = Config(
        {
            "datastore": {
                "cls": "databutler.ChainedDatastore",
                "datastores": [{"datastore": {"cls": MEMORY}}, {"datastore": {"cls": FILE, "name": "a"}}],
            }
        }
    )
    ChainedDatastore.setConfigRoot(str(tmp_path / "repo"), config, config.copy())
    assert config["datastore.datastores"][1]["datastore"]["root"] == str(tmp_path / "repo")
    assert "root" not in config["datastore.datastores"][0]["datastore"]
    chain = ChainedDatastore(config)
    assert chain.datastores[1].root.endswith("/repo")
    two = Config(
        {
            "datastore": {
                "cls": "databutler.ChainedDatastore",
                "datastores": [{"datastore": {"cls": FILE, "name": "a"}}, {"datastore": {"cls": FILE}}],
            }
        }
    )
    ChainedDatastore.setConfigRoot("/r", two, two.copy())
    assert [c["datastore"]["root"] for c in two["datastore.datastores"]] == ["/r/a", "/r/1"]


class CountingLocationRegistry(InMemoryLocationRegistry):
    """Counts the location calls it gets, as ``(verb, datastoreName, number of refs)``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, int]] = []

    def addDatasetLocations(self, datastoreName: str, refs: Any) -> None:
        refs = list(refs)
        self.calls.append(("add", datastoreName, len(refs)))
        super().addDatasetLocations(datastoreName, refs)

    def removeDatasetLocations(self, datastoreName: str, refs: Any) -> None:
        refs = list(refs)
        self.calls.append(("remove", datastoreName, len(refs)))
        super().removeDatasetLocations(datastoreName, refs)


def test_a_chain_put_tells_the_registry_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CountingLocationRegistry()
    chain = makeChain(tmp_path, registry=registry, readThrough=True)
    memory, file = chain.datastores
    ref = makeRef("metrics", "StructuredDataDict")
    chain.put({"x": 1}, ref)
    assert registry.calls == [("add", "chain", 1)]
    memory.remove(ref)
    assert chain.get(ref) == {"x": 1} and memory.exists(ref)  # read through: nothing to tell
    assert registry.calls == [("add", "chain", 1)]

    # A put that fails in the second child is undone in the first; the registry hears nothing.
    def failingPut(obj: Any, ref: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(file, "put", failingPut)
    other = makeRef("metrics", "StructuredDataDict")
    with pytest.raises(OSError, match="disk full"):
        chain.put({"y": 2}, other)
    assert not chain.exists(other) and not memory.exists(other)
    assert [call for call in registry.calls if call[0] == "add"] == [("add", "chain", 1)]


def test_declared_optional_verbs_children_verify_close(tmp_path: Path) -> None:
    chain = makeChain(tmp_path)
    memory, file = chain.children
    assert list(chain.children) == chain.datastores and memory.children == () and file.children == ()
    ref = makeRef("metrics", "StructuredDataDict")
    chain.put({"a": 1}, ref)
    assert memory.verify(ref) is True  # the default: a full read
    assert chain.verify(ref) is True and file.verify(ref) is True
    missing = makeRef("metrics", "StructuredDataDict")
    with pytest.raises(DatasetNotFoundError):
        memory.verify(missing)
    chain.close()  # closes the file tier's records database too
    memory.close()  # a no-op by default, and harmless twice


def test_chain_knows_a_file_deleted_behind_its_back_but_it_does_not_exist(tmp_path: Path) -> None:
    registry = InMemoryLocationRegistry()
    chain = makeChain(tmp_path, registry, memory={"constraints": {"reject": ["metrics"]}})
    memory, file = chain.children
    ref = makeRef("metrics", "StructuredDataDict")
    chain.put({"a": 1}, ref)
    uri = chain.getUri(ref)
    Path(uri.removeprefix("file://")).unlink()
    assert chain.knows(ref) and not chain.exists(ref)
    assert not memory.knows(ref) and file.knows(ref)
    assert chain.getUri(ref) == uri  # where it was recorded, not a probe
    chain.remove(ref)  # clears the record, and tells the registry the chain has it no more
    assert not chain.knows(ref) and chain.name not in registry.getDatasetLocations(ref)
