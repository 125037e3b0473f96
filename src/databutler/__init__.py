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
    DatabutlerError,
    DataIdError,
    DatasetExistsError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    DatasetTooLargeError,
    DatasetTypeError,
    DatasetTypeMismatchError,
    DatastoreClassError,
    FormatterError,
    InvalidParameterError,
    MissingOptionalDependencyError,
    StorageClassConflictError,
    StorageClassError,
    StoredItemInfoExistsError,
    StoredItemInfoNotFoundError,
    TransactionError,
    UnknownComponentError,
    UnknownStorageClassError,
    UnsafePathError,
)
from .storage_class import COPY_MODES, StorageClass, StorageClassDelegate, StorageClassFactory

__version__ = "0.1.0"

__all__ = [
    "COPY_MODES",
    "Config",
    "ConfigError",
    "ConfigFileNotFoundError",
    "ConfigSubset",
    "DataIdError",
    "DatabutlerError",
    "DatasetExistsError",
    "DatasetIntegrityError",
    "DatasetLocationRegistry",
    "DatasetNotFoundError",
    "DatasetRef",
    "DatasetTooLargeError",
    "DatasetType",
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
    "MissingOptionalDependencyError",
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
