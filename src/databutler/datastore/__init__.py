"""The datastore contract: the `Datastore` base class, its config, records and transactions."""

from .base import Datastore, DatastoreConfig
from .bridge import DatasetLocationRegistry, InMemoryLocationRegistry
from .records import StoredItemInfo
from .transaction import DatastoreTransaction

__all__ = [
    "DatasetLocationRegistry",
    "Datastore",
    "DatastoreConfig",
    "DatastoreTransaction",
    "InMemoryLocationRegistry",
    "StoredItemInfo",
]
