"""What a datastore records about one stored dataset."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ..storage_class import StorageClass

__all__ = ["StoredItemInfo"]


@dataclass(frozen=True, slots=True)
class StoredItemInfo:
    """Internal information an in-memory datastore keeps about a stored dataset.

    Parameters
    ----------
    timestamp : float
        When the dataset was stored, in seconds since the epoch (`time.time`).
    storageClass : StorageClass
        The storage class the dataset is held as (for a component, the component's).
    parentID : uuid.UUID, optional
        For a component, the id of the composite it is read from.
    """

    timestamp: float
    storageClass: StorageClass
    parentID: uuid.UUID | None = None
