"""The datastore contract: the `Datastore` base class, its config, records, records storage and transactions."""

from .base import Datastore, DatastoreConfig
from .bridge import (
    DatasetLocationRegistry,
    InMemoryLocationRegistry,
    InMemoryRecordStorage,
    RecordField,
    RecordStorage,
    RecordStorageProvider,
    RecordTable,
    RecordTableSpec,
)
from .records import StoredItemInfo
from .transaction import DatastoreTransaction

__all__ = [
    "DatasetLocationRegistry",
    "Datastore",
    "DatastoreConfig",
    "DatastoreTransaction",
    "InMemoryLocationRegistry",
    "InMemoryRecordStorage",
    "RecordField",
    "RecordStorage",
    "RecordStorageProvider",
    "RecordTable",
    "RecordTableSpec",
    "StoredItemInfo",
]
