"""`PickleFormatter`: any picklable object. Never a default; configure it knowingly.

Reading a pickle runs code chosen by whoever wrote the file, so only read files you trust.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import IO, Any

from ..storage_class import StorageClass
from .base import Formatter

__all__ = ["PickleFormatter"]


class PickleFormatter(Formatter):
    """Writes any picklable object with the highest pickle protocol.

    Not in any default configuration: a user opts in per storage class or dataset type, e.g.
    ``formatters: {Object: databutler.formatters.pickle.PickleFormatter}``.
    """

    extension = ".pickle"
    canRunCode = True

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Pickle the object with the highest protocol."""
        pickle.dump(inMemoryDataset, stream, protocol=pickle.HIGHEST_PROTOCOL)

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        """Unpickle the object (this runs code from the file: opt-in only)."""
        return pickle.loads(buffer)
