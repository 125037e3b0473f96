"""The datastore contract: the `Datastore` base class, its config, records, records storage and transactions."""

from . import bridge
from .base import Datastore, DatastoreConfig
from .bridge import *  # noqa: F403 -- the seams to what is outside a datastore; bridge.__all__ lists them
from .records import StoredItemInfo
from .transaction import DatastoreTransaction

__all__ = ["Datastore", "DatastoreConfig", "DatastoreTransaction", "StoredItemInfo"]
__all__ += bridge.__all__
