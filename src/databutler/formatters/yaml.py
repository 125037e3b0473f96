"""`YamlFormatter`: dicts, lists, scalars and objects that export a dict, as YAML."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import yaml

from ..storage_class import StorageClass
from .base import Formatter, fromPlain, isPrevalidated, toCheckedPlain, toPlain
from .json import exportDefault

__all__ = ["YamlFormatter"]


class YamlFormatter(Formatter):
    """Writes plain data as YAML with the safe dumper and reads it with the safe loader.

    Unlike JSON, YAML keeps non-string dict keys. Tuples inside the data are refused, as they
    would come back as lists. Nothing but plain data is ever constructed on read, so a YAML
    file cannot run code.
    """

    extension = ".yaml"

    def validate(self, inMemoryDataset: Any, storageClass: StorageClass) -> None:
        """Refuse what YAML would change (see `toCheckedPlain`).

        Raises
        ------
        UnstorableDatasetError
            Tuples inside the data, subclasses of plain types, cycles, absurd nesting.
        DatasetTypeMismatchError
            The object is not plain data and exports no dict.
        """
        self._plain(inMemoryDataset, storageClass)

    @staticmethod
    def _plain(inMemoryDataset: Any, storageClass: StorageClass) -> Any:
        return toCheckedPlain(inMemoryDataset, storageClass, "YAML", stringKeysOnly=False)

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Write the object as plain data with YAML's safe dumper, after `validate`.

        Raises
        ------
        UnstorableDatasetError
            The data holds what YAML would change (see `validate`).
        """
        data = (
            toPlain(inMemoryDataset)
            if isPrevalidated(inMemoryDataset)
            else self._plain(inMemoryDataset, storageClass)
        )
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        stream.write(text.encode("utf-8"))

    def exportFile(self, inMemoryDataset: Any, path: Path) -> None:
        """Write YAML for people and other programs; arrays are written as lists, tuples as lists."""
        plain = json.loads(json.dumps(inMemoryDataset, default=exportDefault))
        path.write_text(yaml.safe_dump(plain, sort_keys=False), encoding="utf-8")

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        """Parse the YAML with the safe loader and rebuild the storage class's type from it."""
        return fromPlain(yaml.safe_load(bytes(buffer).decode("utf-8")), storageClass)
