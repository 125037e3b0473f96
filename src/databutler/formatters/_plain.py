"""`PlainDataFormatter`: what the JSON and YAML formatters share (plain data, checked first)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any, ClassVar

from ..storage_class import StorageClass
from .base import Formatter, fromPlain, isPrevalidated, toCheckedPlain, toPlain

__all__ = ["PlainDataFormatter"]


class PlainDataFormatter(Formatter):
    """Writes plain data (dicts, lists, scalars, objects exporting a dict) as text; a base class.

    A subclass names its format (`formatName`), says whether only string keys survive it
    (`stringKeysOnly`), and turns plain data into text and back (`dumps`, `loads`).
    """

    formatName: ClassVar[str] = ""
    """The format's name, for messages (``"JSON"``)."""

    stringKeysOnly: ClassVar[bool] = True
    """Whether the format keeps only string dict keys (JSON), so others are refused."""

    def validate(self, inMemoryDataset: Any, storageClass: StorageClass) -> None:
        """Refuse what the format would change (see `toCheckedPlain`).

        Raises
        ------
        UnstorableDatasetError
            Keys the format cannot keep, tuples inside the data, subclasses of plain types,
            cycles, absurd nesting.
        DatasetTypeMismatchError
            The object is not plain data and exports no dict.
        """
        self._plain(inMemoryDataset, storageClass)

    def _plain(self, inMemoryDataset: Any, storageClass: StorageClass) -> Any:
        return toCheckedPlain(
            inMemoryDataset, storageClass, self.formatName, stringKeysOnly=self.stringKeysOnly
        )

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Write the object as plain data in UTF-8 text, after `validate`.

        Raises
        ------
        UnstorableDatasetError
            The data holds what the format would change (see `validate`).
        """
        data = (
            toPlain(inMemoryDataset)
            if isPrevalidated(inMemoryDataset)
            else self._plain(inMemoryDataset, storageClass)
        )
        stream.write(self.dumps(data).encode("utf-8"))

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        """Parse the text and rebuild the storage class's type from the plain data."""
        return fromPlain(self.loads(bytes(buffer)), storageClass)

    def dumps(self, data: Any) -> str:
        """Return plain ``data`` as the format's text."""
        raise NotImplementedError

    def loads(self, data: bytes) -> Any:
        """Return the plain data that the file's bytes ``data`` hold."""
        raise NotImplementedError
