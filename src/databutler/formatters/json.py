"""`JsonFormatter`: dicts, lists, scalars and objects that export a dict, as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from ..storage_class import StorageClass
from .base import Formatter, fromPlain, isPrevalidated, toCheckedPlain, toPlain

__all__ = ["JsonFormatter", "exportDefault"]


def exportDefault(obj: Any) -> Any:
    """Turn what JSON cannot write into lists for an exported file: arrays and NumPy scalars.

    Raises
    ------
    TypeError
        ``obj`` has no ``tolist()``.
    """
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


class JsonFormatter(Formatter):
    """Writes plain data as UTF-8 JSON.

    What JSON would silently change is refused: dict keys that are not strings and tuples
    inside the data (a dataset that is itself a tuple, storage class ``Tuple``, is written as a
    list and read back as a tuple). An object that is not plain data must export a dict with
    ``toDict()`` and, to be read back as itself, accept it in ``fromDict`` or its constructor.
    """

    extension = ".json"

    def validate(self, inMemoryDataset: Any, storageClass: StorageClass) -> None:
        """Refuse what JSON would change (see `toCheckedPlain`).

        Raises
        ------
        UnstorableDatasetError
            Non-string keys, tuples inside the data, subclasses of plain types, cycles, absurd nesting.
        DatasetTypeMismatchError
            The object is not plain data and exports no dict.
        """
        self._plain(inMemoryDataset, storageClass)

    @staticmethod
    def _plain(inMemoryDataset: Any, storageClass: StorageClass) -> Any:
        return toCheckedPlain(inMemoryDataset, storageClass, "JSON", stringKeysOnly=True)

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Write the object as plain data in UTF-8 JSON, after `validate`.

        Raises
        ------
        UnstorableDatasetError
            The data holds what JSON would change (see `validate`).
        """
        data = (
            toPlain(inMemoryDataset)
            if isPrevalidated(inMemoryDataset)
            else self._plain(inMemoryDataset, storageClass)
        )
        stream.write(json.dumps(data, ensure_ascii=False).encode("utf-8"))

    def exportFile(self, inMemoryDataset: Any, path: Path) -> None:
        """Write indented JSON for people and other programs; arrays are written as lists."""
        text = json.dumps(inMemoryDataset, default=exportDefault, indent=2) + "\n"
        path.write_text(text, encoding="utf-8")

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        """Parse the JSON and rebuild the storage class's type from the plain data."""
        return fromPlain(json.loads(bytes(buffer)), storageClass)
