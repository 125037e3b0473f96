"""Reusable contract tests: an implementation's test class inherits the mixin and says how to build it.

`DatastoreTests` for datastores, `RegistryTests` for registries.
"""

from .datastore_tests import DatastoreTests, makeRef, makeTestDatasetType, readBack
from .registry_tests import RegistryTests

__all__ = ["DatastoreTests", "RegistryTests", "makeRef", "makeTestDatasetType", "readBack"]
