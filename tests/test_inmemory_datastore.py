"""InMemoryDatastore runs the datastore contract, plus what is particular to it."""

from __future__ import annotations

from typing import Any

from databutler import InMemoryDatastore
from databutler.testing import DatastoreTests


class TestInMemoryDatastoreContract(DatastoreTests):
    def makeDatastore(self, registry: Any = None) -> InMemoryDatastore:
        return InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore"}}, registry=registry)
