"""The contract suite's white-box read-back hook catches a datastore that keeps records but loses artifacts.

`LosingFileDatastore` is broken on purpose: it answers `get` and `exists` from an in-process
cache and its files are gone right after each put. Every black-box verb still looks right, so
the suite run without the hook passes; with the hook (the default), it fails.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from databutler import DatasetRef, FileDatastore
from databutler.datastore.base import Datastore
from databutler.testing import DatastoreTests

BROKEN = f"{__name__}.LosingFileDatastore"


class LosingFileDatastore(FileDatastore):
    """Keeps its records and an in-process copy of every dataset, but loses the files."""

    def __init__(self, config: Any, registry: Any = None) -> None:
        super().__init__(config, registry)
        self.cache: dict[uuid.UUID, Any] = {}

    def put(self, inMemoryDataset: Any, ref: DatasetRef) -> None:
        super().put(inMemoryDataset, ref)
        self.cache[ref.id] = copy.deepcopy(inMemoryDataset)
        for info in (self.files.lookup(ref) or {}).values():
            if info.formatter is not None:
                self.fs.rm(self.files.fullPath(info.path))

    def get(self, ref: DatasetRef, parameters: Mapping[str, Any] | None = None) -> Any:
        if ref.id in self.cache and self.knows(ref):
            delegate = ref.datasetType.storageClass.delegate()
            delegate.checkParameters(parameters)
            return delegate.handleParameters(copy.deepcopy(self.cache[ref.id]), parameters)
        return super().get(ref, parameters)

    def exists(self, ref: DatasetRef) -> bool:
        return self.knows(ref)


class LosingStoreSuite(DatastoreTests):
    def __init__(self, root: Path) -> None:
        self.root = root

    def makeDatastore(self, registry: Any = None) -> Datastore:
        root = str(self.root / uuid.uuid4().hex)
        return Datastore.fromConfig({"datastore": {"cls": BROKEN, "root": root}}, registry=registry)


class BlackBoxSuite(LosingStoreSuite):
    """The same suite with the hook made black-box (read through `get`): it is fooled."""

    def readArtifact(self, datastore: Datastore, ref: DatasetRef) -> Any:
        return datastore.get(ref) if datastore.exists(ref) else None


CHECKS = [
    "testPutGetDict",
    "testPutGetListWithSlice",
    "testPutGetNumpyWithSlice",
    "testSecondPutIsErrorAndKeepsFirst",
    "testCommittedTransactionKeepsPuts",
    "testBulkVerbs",
    "testKnowsAndExistsFollowPutAndRemove",
]


@pytest.mark.parametrize("check", CHECKS)
def test_read_back_hook_catches_lost_artifacts(tmp_path: Path, check: str) -> None:
    blackBox = BlackBoxSuite(tmp_path)
    getattr(blackBox, check)(blackBox.makeDatastore())  # every verb looks right from outside
    suite = LosingStoreSuite(tmp_path)
    with pytest.raises(AssertionError, match="artifact is not really there"):
        getattr(suite, check)(suite.makeDatastore())


def test_read_back_hook_names_what_it_does_not_know() -> None:
    class Unknown(DatastoreTests):
        pass

    with pytest.raises(NotImplementedError, match=r"override DatastoreTests\.readArtifact"):
        Unknown().readArtifact(object(), None)  # type: ignore[arg-type]
