"""`JsonFormatter`: dicts, lists, scalars and objects that export a dict, as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from ..exceptions import DatasetTypeMismatchError
from ..storage_class import StorageClass
from .base import Formatter, fromPlain, toPlain

__all__ = ["JsonFormatter"]


def _checkKeys(data: Any, path: str = "") -> None:
    """Refuse what JSON would silently change: non-str dict keys (``{1: x}`` reads back as ``{"1": x}``)."""
    stack = [(data, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise DatasetTypeMismatchError(
                        f"JSON keys must be str, but {where or 'the top level'} has key {key!r} "
                        f"({type(key).__name__}), which JSON would turn into a string; use YamlFormatter."
                    )
                if isinstance(value, dict | list | tuple):
                    stack.append((value, f"{where}[{key!r}]"))
        elif isinstance(node, list | tuple):
            stack.extend(
                (v, f"{where}[{i}]") for i, v in enumerate(node) if isinstance(v, dict | list | tuple)
            )


class JsonFormatter(Formatter):
    """Writes plain data as UTF-8 JSON; tuples are written as lists.

    Dict keys must be strings (anything else is refused rather than silently turned into a
    string). An object that is not plain data must export a dict with ``toDict()`` and, to be
    read back as itself, accept it in ``fromDict`` or its constructor.
    """

    extension = ".json"

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        data = toPlain(inMemoryDataset)
        _checkKeys(data)
        stream.write(json.dumps(data, ensure_ascii=False).encode("utf-8"))

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        return fromPlain(json.loads(bytes(buffer)), storageClass)
