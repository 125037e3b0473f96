"""`JsonFormatter`: dicts, lists, scalars and objects that export a dict, as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._plain import PlainDataFormatter

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


class JsonFormatter(PlainDataFormatter):
    """Writes plain data as UTF-8 JSON.

    What JSON would silently change is refused: dict keys that are not strings and tuples
    inside the data (a dataset that is itself a tuple, storage class ``Tuple``, is written as a
    list and read back as a tuple). An object that is not plain data must export a dict with
    ``toDict()`` and, to be read back as itself, accept it in ``fromDict`` or its constructor.
    """

    extension = ".json"

    formatName = "JSON"
    stringKeysOnly = True

    def dumps(self, data: Any) -> str:
        """Return ``data`` as compact JSON text (non-ASCII kept as it is)."""
        return json.dumps(data, ensure_ascii=False)

    def loads(self, data: bytes) -> Any:
        """Parse JSON (UTF-8, -16 or -32, as `json.loads` detects it)."""
        return json.loads(data)

    def exportFile(self, inMemoryDataset: Any, path: Path) -> None:
        """Write indented JSON for people and other programs; arrays are written as lists."""
        text = json.dumps(inMemoryDataset, default=exportDefault, indent=2) + "\n"
        path.write_text(text, encoding="utf-8")
