"""Datastore implementations, one package each: ``memory``, ``file`` and ``chained``.

`InMemoryDatastore` is imported with this package; `FileDatastore` and `ChainedDatastore` are
imported on first use, so that a process that never touches files does not pay for fsspec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazyGetattr
from .memory import InMemoryDatastore, InMemoryDatastoreStats

if TYPE_CHECKING:
    from .chained import ChainedDatastore
    from .file import FileDatastore

__all__ = ["ChainedDatastore", "FileDatastore", "InMemoryDatastore", "InMemoryDatastoreStats"]

_LAZY = {"ChainedDatastore": ".chained", "FileDatastore": ".file"}


__getattr__ = lazyGetattr(globals(), _LAZY)
