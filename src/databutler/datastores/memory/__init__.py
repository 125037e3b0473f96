"""InMemoryDatastore: a process-local store, also the fast tier of a chain.

The package's private modules:

- ``_datastore``: `InMemoryDatastore`, the `Datastore` verbs;
- ``_entries``: the entry table (limits, eviction, expiry, statistics);
- ``_ownership``: copy policies (who owns a stored object).
"""

from ._datastore import InMemoryDatastore
from ._entries import InMemoryDatastoreStats

__all__ = ["InMemoryDatastore", "InMemoryDatastoreStats"]
