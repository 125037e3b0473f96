"""Every error databutler raises, in one tree.

Each error is also the builtin exception the spec promises, so code can catch
either the databutler name or the builtin::

    DatabutlerError
    ├── ConfigError (ValueError)
    │   ├── ConfigFileNotFoundError (FileNotFoundError)
    │   ├── DatastoreClassError (TypeError)
    │   └── FileTemplateError (ValueError)
    ├── StorageClassError (ValueError)
    │   ├── UnknownStorageClassError (KeyError)
    │   ├── StorageClassConflictError (ValueError)
    │   ├── MissingOptionalDependencyError (ImportError)
    │   ├── UnknownComponentError (KeyError)
    │   └── InvalidParameterError (ValueError)
    ├── DatasetTypeError (ValueError)
    │   └── DataIdError (ValueError)
    ├── DatasetTypeMismatchError (TypeError)
    │   └── UnstorableDatasetError (TypeError)
    ├── DatasetNotFoundError (FileNotFoundError)
    │   └── DatasetFileMissingError
    ├── DatasetExistsError (ValueError)
    ├── StoredItemInfoExistsError (KeyError)
    ├── StoredItemInfoNotFoundError (KeyError)
    ├── RecordConflictError (KeyError)
    ├── DatasetIntegrityError (ValueError)
    ├── FormatterError (ValueError)
    ├── DatasetTooLargeError (ValueError)
    ├── DatasetTypeNotSupportedError (ValueError)
    ├── TransactionError (RuntimeError)
    ├── RegistryError (RuntimeError)
    │   ├── DatasetTypeConflictError (ValueError)
    │   ├── MissingDatasetTypeError (KeyError)
    │   ├── MissingRunError (KeyError)
    │   ├── MissingDatasetError (KeyError)
    │   ├── MissingRegistryError (FileNotFoundError)
    │   ├── ForeignRegistryError (ValueError)
    │   ├── ConflictingDatasetError (ValueError)
    │   ├── ConflictingRecordError (ValueError)
    │   ├── CollectionError (ValueError)
    │   ├── InvalidQueryError (ValueError)
    │   ├── DatabaseAccessError
    │   ├── DatabaseLockedError (TimeoutError)
    │   ├── DatabaseFullError (OSError)
    │   ├── DatabaseDamagedError
    │   └── DatabaseValueError (ValueError)
    ├── UnsafePathError (ValueError)
    ├── IngestError (ValueError)
    ├── ArtifactError (ValueError)
    │   └── ArtifactExistsError (FileExistsError)
    ├── ExportError (ValueError)
    │   └── ManifestError
    ├── RepositoryExistsError (FileExistsError)
    ├── ReadOnlyRepositoryError (PermissionError)
    ├── NoDefaultRunError (TypeError)
    ├── RunNameError (ValueError, TypeError)
    ├── ArgumentTypeError (TypeError)
    └── AmbiguousDatasetError (LookupError)

`KeyError` subclasses override ``__str__`` so their message is printed as
written rather than quoted.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AmbiguousDatasetError",
    "ArgumentTypeError",
    "ArtifactError",
    "ArtifactExistsError",
    "CollectionError",
    "ConfigError",
    "ConfigFileNotFoundError",
    "ConflictingDatasetError",
    "ConflictingRecordError",
    "DataIdError",
    "DatabaseAccessError",
    "DatabaseDamagedError",
    "DatabaseFullError",
    "DatabaseLockedError",
    "DatabaseValueError",
    "DatabutlerError",
    "DatasetExistsError",
    "DatasetFileMissingError",
    "DatasetIntegrityError",
    "DatasetNotFoundError",
    "DatasetTooLargeError",
    "DatasetTypeConflictError",
    "DatasetTypeError",
    "DatasetTypeMismatchError",
    "DatasetTypeNotSupportedError",
    "DatastoreClassError",
    "ExportError",
    "FileTemplateError",
    "ForeignRegistryError",
    "FormatterError",
    "IngestError",
    "InvalidParameterError",
    "InvalidQueryError",
    "ManifestError",
    "MapUnitError",
    "MissingDatasetError",
    "MissingDatasetTypeError",
    "MissingOptionalDependencyError",
    "MissingRegistryError",
    "MissingRunError",
    "NoDefaultRunError",
    "ReadOnlyRepositoryError",
    "RecordConflictError",
    "RegistryError",
    "RepositoryExistsError",
    "RunNameError",
    "StorageClassConflictError",
    "StorageClassError",
    "StoredItemInfoExistsError",
    "StoredItemInfoNotFoundError",
    "TransactionError",
    "UnknownComponentError",
    "UnknownStorageClassError",
    "UnsafePathError",
    "UnstorableDatasetError",
]


class DatabutlerError(Exception):
    """Base class of every error raised by databutler."""


class _PlainKeyError(KeyError):
    """A KeyError whose message is shown as written, not repr-quoted."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# -- configuration ---------------------------------------------------------------------------


class ConfigError(DatabutlerError, ValueError):
    """A configuration file or mapping is malformed or lacks a required key."""


class ConfigFileNotFoundError(ConfigError, FileNotFoundError):
    """A configuration file could not be found on the search path."""


class DatastoreClassError(ConfigError, TypeError):
    """``datastore.cls`` names something that cannot be imported or is not a Datastore."""


class FileTemplateError(ConfigError):
    """A file template is malformed, or uses a field that a dataset does not have."""


# -- storage classes -------------------------------------------------------------------------


class StorageClassError(DatabutlerError, ValueError):
    """A storage class is malformed or used inconsistently."""


class UnknownStorageClassError(StorageClassError, _PlainKeyError):
    """No storage class of that name is known to the factory."""


class StorageClassConflictError(StorageClassError):
    """A storage class of that name is already registered with a different definition."""


class MissingOptionalDependencyError(StorageClassError, ImportError):
    """A storage class needs an optional library that is not installed."""


class UnknownComponentError(StorageClassError, _PlainKeyError):
    """A component name is not one the storage class declares."""


class InvalidParameterError(StorageClassError):
    """A read parameter is unknown to the storage class or has a bad value."""


# -- dataset types and refs ------------------------------------------------------------------


class DatasetTypeError(DatabutlerError, ValueError):
    """A dataset type name or definition is invalid."""


class DataIdError(DatasetTypeError):
    """A data ID does not match the dimensions of its dataset type."""


class DatasetTypeMismatchError(DatabutlerError, TypeError):
    """An object does not match the storage class of the dataset it is stored as."""


class UnstorableDatasetError(DatasetTypeMismatchError):
    """A storage class or file format cannot hold this object exactly, so it is refused at put.

    Raised before anything is written or registered; the message names the part (column,
    key, dtype) that would not come back as it is and what to do instead.
    """


# -- datastores ------------------------------------------------------------------------------


class DatasetNotFoundError(DatabutlerError, FileNotFoundError):
    """The requested dataset is not in the datastore (never stored, removed, evicted or expired)."""


class DatasetFileMissingError(DatasetNotFoundError):
    """A dataset is recorded in the datastore, but its file is gone.

    The file was deleted or moved behind the datastore's back; the message names it.
    """


class DatasetExistsError(DatabutlerError, ValueError):
    """A dataset with this id is already stored; remove it first to replace it."""


class StoredItemInfoExistsError(DatabutlerError, _PlainKeyError):
    """Stored-item information for this dataset is already recorded."""


class StoredItemInfoNotFoundError(DatabutlerError, _PlainKeyError):
    """No stored-item information is recorded for this dataset."""


class RecordConflictError(DatabutlerError, _PlainKeyError):
    """A datastore record has the key (or a unique value, such as a path) of one already stored."""


class DatasetIntegrityError(DatabutlerError, ValueError):
    """A stored file no longer matches the checksum or size recorded when it was written."""


class FormatterError(DatabutlerError, ValueError):
    """A formatter failed to read or write a dataset."""


class DatasetTooLargeError(DatabutlerError, ValueError):
    """A dataset is larger on its own than the datastore's ``maxBytes`` limit."""


class DatasetTypeNotSupportedError(DatabutlerError, ValueError):
    """No datastore (no child of a chain) accepts this dataset type or storage class."""


class TransactionError(DatabutlerError, RuntimeError):
    """A transaction was used incorrectly or could not be rolled back cleanly."""


class UnsafePathError(DatabutlerError, ValueError):
    """A dataset type name or data ID value would make a path outside the datastore root."""


class IngestError(DatabutlerError, ValueError):
    """A file to ingest is missing, not a regular file, or cannot be transferred as asked."""


class ArtifactError(DatabutlerError, ValueError):
    """Stored files cannot be retrieved as asked (an unknown transfer mode, a datastore without files)."""


class ArtifactExistsError(ArtifactError, FileExistsError):
    """A retrieved file would replace one at the destination; pass ``overwrite=True`` to allow it."""


class ExportError(DatabutlerError, ValueError):
    """An export cannot be written (its destination exists, nothing keeps files) or read back."""


class ManifestError(ExportError):
    """An export's manifest is malformed, of another version, or names absurd sizes or checksums."""


# -- registry --------------------------------------------------------------------------------


class RegistryError(DatabutlerError, RuntimeError):
    """Base class of registry errors."""


class DatasetTypeConflictError(RegistryError, ValueError):
    """A dataset type of that name is registered with a different definition."""


class MissingDatasetTypeError(RegistryError, _PlainKeyError):
    """No dataset type of that name is registered."""


class MissingRunError(RegistryError, _PlainKeyError):
    """No run of that name is registered."""


class MissingDatasetError(RegistryError, _PlainKeyError):
    """No dataset with that id is registered."""


class MissingRegistryError(RegistryError, FileNotFoundError):
    """The database does not exist or holds no registry (open it with ``create=True`` to make one)."""


class ForeignRegistryError(RegistryError, ValueError):
    """A registry already belongs to another data repository (their ids differ)."""


class ConflictingDatasetError(RegistryError, ValueError):
    """A dataset with the same type, data ID and run already exists."""


class DatabaseAccessError(RegistryError):
    """The registry database could not be reached, opened, read or written.

    A refused or lost connection, a file that cannot be opened, an I/O error; the message
    names the database and gives the database's own reason.
    """


class DatabaseLockedError(RegistryError, TimeoutError):
    """The registry database stayed locked by another writer for longer than the busy timeout.

    The message names the database and, where the database can tell, who holds the lock.
    """


class DatabaseFullError(RegistryError, OSError):
    """The disk holding the registry database is full (or the database reached a size limit)."""


class DatabaseDamagedError(RegistryError):
    """The registry database file is damaged, or is not a database at all."""


class DatabaseValueError(RegistryError, ValueError):
    """The registry database refused a value it cannot store (e.g. a NUL character on PostgreSQL)."""


# -- butler ----------------------------------------------------------------------------------


class CollectionError(RegistryError, ValueError):
    """A collection cannot be made or changed that way: a chain cycle, a name taken by another type."""


class ConflictingRecordError(RegistryError, ValueError):
    """A dimension record with the same key but other values exists."""


class InvalidQueryError(RegistryError, ValueError):
    """A query expression does not parse, names something that does not exist, or misses a bind value."""


class RepositoryExistsError(DatabutlerError, FileExistsError):
    """A data repository (its ``butler.yaml``) already exists where a new one was to be made."""


class ReadOnlyRepositoryError(DatabutlerError, PermissionError):
    """A write was asked of a repository, registry or datastore opened read-only."""


class NoDefaultRunError(DatabutlerError, TypeError):
    """A write needs a run, but none was given and the Butler was opened without one."""


class RunNameError(DatabutlerError, ValueError, TypeError):
    """A run name is not a non-empty str of storable text (UTF-8, no NUL) of at most 128 characters."""


class ArgumentTypeError(DatabutlerError, TypeError):
    """An argument is not of a type the call accepts (a DatasetRef, a dataset type name, ...)."""


class AmbiguousDatasetError(DatabutlerError, LookupError):
    """A dataset type and data ID match datasets in several runs and no collections say which."""


class MapUnitError(DatabutlerError, RuntimeError):
    """Units of a `Butler.map` failed; the others were merged. ``failures`` lists what failed.

    Attributes
    ----------
    failures : list of UnitFailure
        Each failed unit's data ID, error and traceback.
    result : MapResult
        What the map did merge.
    """

    def __init__(self, message: str, failures: list[Any], result: Any) -> None:
        super().__init__(message)
        self.failures = failures
        self.result = result
