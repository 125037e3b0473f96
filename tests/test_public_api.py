"""The public API is pinned: adding or removing a name is a deliberate change to this list."""

import databutler

EXPECTED = [
    "AmbiguousDatasetError",
    "Butler",
    "ButlerConfig",
    "COPY_MODES",
    "ChainedDatastore",
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
    "DatasetTypeNotSupportedError",
    "Datastore",
    "DatastoreClassError",
    "DatastoreConfig",
    "DatastoreTransaction",
    "FileDatastore",
    "FileTemplateError",
    "FitsFormatter",
    "ForeignRegistryError",
    "Formatter",
    "FormatterError",
    "InMemoryDatastore",
    "InMemoryDatastoreStats",
    "InMemoryLocationRegistry",
    "InvalidParameterError",
    "InvalidQueryError",
    "JsonFormatter",
    "MaskedImage",
    "MissingDatasetError",
    "MissingDatasetTypeError",
    "MissingOptionalDependencyError",
    "MissingRegistryError",
    "MissingRunError",
    "NoDefaultRunError",
    "NpyFormatter",
    "ParquetFormatter",
    "PickleFormatter",
    "ReadOnlyRepositoryError",
    "RegistryConfig",
    "RegistryError",
    "RepositoryExistsError",
    "SqlRegistry",
    "StorageClass",
    "StorageClassConflictError",
    "StorageClassDelegate",
    "StorageClassError",
    "StorageClassFactory",
    "StoredFileInfo",
    "StoredItemInfo",
    "StoredItemInfoExistsError",
    "StoredItemInfoNotFoundError",
    "TransactionError",
    "UnknownComponentError",
    "UnknownStorageClassError",
    "UnsafePathError",
    "YamlFormatter",
]


def test_all_is_sorted_and_pinned() -> None:
    assert databutler.__all__ == sorted(databutler.__all__)
    assert databutler.__all__ == EXPECTED


def test_every_name_resolves() -> None:
    for name in databutler.__all__:
        assert getattr(databutler, name) is not None
