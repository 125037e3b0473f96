"""`YamlFormatter`: dicts, lists, scalars and objects that export a dict, as YAML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ._plain import PlainDataFormatter
from .json import exportDefault

__all__ = ["YamlFormatter"]


class YamlFormatter(PlainDataFormatter):
    """Writes plain data as YAML with the safe dumper and reads it with the safe loader.

    Unlike JSON, YAML keeps non-string dict keys. Tuples inside the data are refused, as they
    would come back as lists. Nothing but plain data is ever constructed on read, so a YAML
    file cannot run code.
    """

    extension = ".yaml"

    formatName = "YAML"
    stringKeysOnly = False

    def dumps(self, data: Any) -> str:
        """Return ``data`` as YAML text, with the safe dumper (keys in their order)."""
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def loads(self, data: bytes) -> Any:
        """Parse UTF-8 YAML with the safe loader: nothing but plain data is constructed."""
        return yaml.safe_load(data.decode("utf-8"))

    def exportFile(self, inMemoryDataset: Any, path: Path) -> None:
        """Write YAML for people and other programs; arrays are written as lists, tuples as lists."""
        plain = json.loads(json.dumps(inMemoryDataset, default=exportDefault))
        path.write_text(yaml.safe_dump(plain, sort_keys=False), encoding="utf-8")
