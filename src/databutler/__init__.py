"""databutler: name a dataset by what it is; databutler stores and finds it.

The public API is re-exported here; ``__all__`` is sorted and pinned by a test. Every name but
the exceptions is loaded from its module on first use, so ``import databutler`` (and with it
``databutler --help``) loads neither YAML, the configuration machinery nor SQLAlchemy.
"""

from typing import TYPE_CHECKING

from . import exceptions as _exceptions
from ._lazy import lazyGetattr
from .exceptions import *  # noqa: F403 -- every error is public; exceptions.__all__ is their one list

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .butler import Butler
    from .butler_config import ButlerConfig
    from .composites import MaskedImage
    from .config import Config, ConfigSubset
    from .dataset_ref import DatasetRef
    from .dataset_type import DatasetType
    from .datastore import (
        DatasetLocationRegistry,
        Datastore,
        DatastoreConfig,
        DatastoreTransaction,
        InMemoryLocationRegistry,
        InMemoryRecordStorage,
        RecordField,
        RecordStorage,
        RecordTable,
        RecordTableSpec,
        StoredItemInfo,
    )
    from .datastores import InMemoryDatastore, InMemoryDatastoreStats
    from .datastores.chained import ChainedDatastore
    from .datastores.file import FileDatastore, StoredFileInfo
    from .formatters.base import Formatter
    from .formatters.fits import FitsFormatter
    from .formatters.json import JsonFormatter
    from .formatters.npy import NpyFormatter
    from .formatters.parquet import ParquetFormatter
    from .formatters.pickle import PickleFormatter
    from .formatters.yaml import YamlFormatter
    from .ingest import FileDataset
    from .registry import Registry, RegistryConfig, SqlRegistry
    from .storage_class import COPY_MODES, StorageClass, StorageClassDelegate, StorageClassFactory

_LAZY_MODULES = {
    ".butler": ("Butler",),
    ".butler_config": ("ButlerConfig",),
    ".composites": ("MaskedImage",),
    ".config": ("Config", "ConfigSubset"),
    ".dataset_ref": ("DatasetRef",),
    ".dataset_type": ("DatasetType",),
    ".datastore": (
        "DatasetLocationRegistry", "Datastore", "DatastoreConfig", "DatastoreTransaction",
        "InMemoryLocationRegistry", "InMemoryRecordStorage", "RecordField", "RecordStorage",
        "RecordTable", "RecordTableSpec", "StoredItemInfo",
    ),
    ".datastores": ("InMemoryDatastore", "InMemoryDatastoreStats"),
    ".datastores.chained": ("ChainedDatastore",),
    ".datastores.file": ("FileDatastore", "StoredFileInfo"),
    ".formatters.base": ("Formatter",),
    ".formatters.fits": ("FitsFormatter",),
    ".formatters.json": ("JsonFormatter",),
    ".formatters.npy": ("NpyFormatter",),
    ".formatters.parquet": ("ParquetFormatter",),
    ".formatters.pickle": ("PickleFormatter",),
    ".formatters.yaml": ("YamlFormatter",),
    ".ingest": ("FileDataset",),
    ".registry": ("Registry", "RegistryConfig", "SqlRegistry"),
    ".storage_class": ("COPY_MODES", "StorageClass", "StorageClassDelegate", "StorageClassFactory"),
}  # fmt: skip
_LAZY = {name: module for module, names in _LAZY_MODULES.items() for name in names}
"""Public names imported from their module on first use (all but the exceptions), so that
``import databutler`` -- which every ``databutler.*`` import and the command line run first --
loads nothing a command does not use."""


__getattr__ = lazyGetattr(globals(), _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# Plain sorted() order, as tests/test_public_api.py pins it (not ruff's constants-first order):
# the lazily imported names, then every error.
__all__ = [  # noqa: RUF022
    "Butler",
    "ButlerConfig",
    "COPY_MODES",
    "ChainedDatastore",
    "Config",
    "ConfigSubset",
    "DatasetLocationRegistry",
    "DatasetRef",
    "DatasetType",
    "Datastore",
    "DatastoreConfig",
    "DatastoreTransaction",
    "FileDataset",
    "FileDatastore",
    "FitsFormatter",
    "Formatter",
    "InMemoryDatastore",
    "InMemoryDatastoreStats",
    "InMemoryLocationRegistry",
    "InMemoryRecordStorage",
    "JsonFormatter",
    "MaskedImage",
    "NpyFormatter",
    "ParquetFormatter",
    "PickleFormatter",
    "RecordField",
    "RecordStorage",
    "RecordTable",
    "RecordTableSpec",
    "Registry",
    "RegistryConfig",
    "SqlRegistry",
    "StorageClass",
    "StorageClassDelegate",
    "StorageClassFactory",
    "StoredFileInfo",
    "StoredItemInfo",
    "YamlFormatter",
]
__all__ += _exceptions.__all__
__all__.sort()
