"""FileDatastore runs the datastore contract on a local root and on memory://, plus its own tests."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from databutler import FileDatastore
from databutler.testing import DatastoreTests


def makeFileDatastore(root: str, registry: Any = None, **extra: Any) -> FileDatastore:
    return FileDatastore(
        {"datastore": {"cls": "databutler.FileDatastore", "root": root, **extra}}, registry=registry
    )


class TestFileDatastoreLocal(DatastoreTests):
    @pytest.fixture(autouse=True)
    def _root(self, tmp_path: Path) -> None:
        self.tmpPath = tmp_path

    def makeDatastore(self, registry: Any = None) -> FileDatastore:
        return makeFileDatastore(str(self.tmpPath / uuid.uuid4().hex), registry)


class TestFileDatastoreMemory(DatastoreTests):
    def makeDatastore(self, registry: Any = None) -> FileDatastore:
        # fsspec's memory file system is one process-wide store: every datastore gets its own root.
        return makeFileDatastore(f"memory://databutler-tests/{uuid.uuid4().hex}", registry)
