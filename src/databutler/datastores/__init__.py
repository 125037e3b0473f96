"""Datastore implementations, one package each: ``memory``, ``file`` and ``chained``.

`InMemoryDatastore` is imported with this package; `FileDatastore` and `ChainedDatastore` are
imported on first use, so that a process that never touches files does not pay for fsspec.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .memory import InMemoryDatastore, InMemoryDatastoreStats

if TYPE_CHECKING:
    from .chained import ChainedDatastore
    from .file import FileDatastore

__all__ = ["ChainedDatastore", "FileDatastore", "InMemoryDatastore", "InMemoryDatastoreStats"]

_LAZY = {"ChainedDatastore": ".chained", "FileDatastore": ".file"}


def __getattr__(name: str) -> Any:
    moduleName = _LAZY.get(name)
    if moduleName is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(moduleName, __name__), name)
    globals()[name] = value
    return value
