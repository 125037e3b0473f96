"""databutler: name a dataset by what it is; databutler stores and finds it.

The public API is re-exported here; ``__all__`` is sorted and pinned by a test.
"""

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
    StoredItemInfo,
)
from .datastores import InMemoryDatastore, InMemoryDatastoreStats
from .exceptions import (
    ConfigError,
    ConfigFileNotFoundError,
    ConflictingDatasetError,
    DatabutlerError,
    DataIdError,
    DatasetExistsError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    DatasetTooLargeError,
    DatasetTypeConflictError,
    DatasetTypeError,
    DatasetTypeMismatchError,
    DatastoreClassError,
    FormatterError,
    InvalidParameterError,
    MissingDatasetError,
    MissingDatasetTypeError,
    MissingOptionalDependencyError,
    MissingRegistryError,
    MissingRunError,
    RegistryError,
    StorageClassConflictError,
    StorageClassError,
    StoredItemInfoExistsError,
    StoredItemInfoNotFoundError,
    TransactionError,
    UnknownComponentError,
    UnknownStorageClassError,
    UnsafePathError,
)
from .registry import RegistryConfig, SqlRegistry
from .storage_class import COPY_MODES, StorageClass, StorageClassDelegate, StorageClassFactory

__version__ = "0.1.0"

__all__ = [
    "COPY_MODES",
    "Config",
    "ConfigError",
    "ConfigFileNotFoundError",
    "ConfigSubset",
    "ConflictingDatasetError",
    "DataIdError",
    "DatabutlerError",
    "DatasetExistsError",
    "DatasetIntegrityError",
    "DatasetLocationRegistry",
    "DatasetNotFoundError",
    "DatasetRef",
    "DatasetTooLargeError",
    "DatasetType",
    "DatasetTypeConflictError",
    "DatasetTypeError",
    "DatasetTypeMismatchError",
    "Datastore",
    "DatastoreClassError",
    "DatastoreConfig",
    "DatastoreTransaction",
    "FormatterError",
    "InMemoryDatastore",
    "InMemoryDatastoreStats",
    "InMemoryLocationRegistry",
    "InvalidParameterError",
    "MaskedImage",
    "MissingDatasetError",
    "MissingDatasetTypeError",
    "MissingOptionalDependencyError",
    "MissingRegistryError",
    "MissingRunError",
    "RegistryConfig",
    "RegistryError",
    "SqlRegistry",
    "StorageClass",
    "StorageClassConflictError",
    "StorageClassDelegate",
    "StorageClassError",
    "StorageClassFactory",
    "StoredItemInfo",
    "StoredItemInfoExistsError",
    "StoredItemInfoNotFoundError",
    "TransactionError",
    "UnknownComponentError",
    "UnknownStorageClassError",
    "UnsafePathError",
]
