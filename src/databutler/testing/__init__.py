"""Reusable contract tests: any datastore's test class inherits `DatastoreTests` and says how to build it."""

from .datastore_tests import DatastoreTests, makeRef, makeTestDatasetType

__all__ = ["DatastoreTests", "makeRef", "makeTestDatasetType"]
