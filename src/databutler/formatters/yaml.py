"""`YamlFormatter`: dicts, lists, scalars and objects that export a dict, as YAML."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import yaml

from ..storage_class import StorageClass
from .base import Formatter, fromPlain, toPlain

__all__ = ["YamlFormatter"]


class _Dumper(yaml.SafeDumper):
    """The safe dumper, writing tuples as lists."""


_Dumper.add_representer(tuple, _Dumper.represent_list)


class YamlFormatter(Formatter):
    """Writes plain data as YAML with the safe dumper and reads it with the safe loader.

    Unlike JSON, YAML keeps non-string dict keys. Nothing but plain data is ever constructed on
    read, so a YAML file cannot run code.
    """

    extension = ".yaml"

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        text = yaml.dump(toPlain(inMemoryDataset), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
        stream.write(text.encode("utf-8"))

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        return fromPlain(yaml.safe_load(bytes(buffer).decode("utf-8")), storageClass)
