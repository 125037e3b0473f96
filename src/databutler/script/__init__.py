"""Plain, typed functions behind the ``databutler`` commands, one per command.

Tests and other programs call these directly; `databutler.cli` only parses arguments and
prints what they return.
"""

from .collections import (
    associateDatasets,
    certifyCalibrations,
    parseTime,
    removeCollections,
    removeDatasetType,
    removeRuns,
)
from .datasets import (
    GetResult,
    TransferResult,
    getDataset,
    putDataset,
    queryDatasets,
    removeDatasets,
    transferDatasets,
)
from .exchange import exportRepo, importRepo
from .queries import (
    collectionChain,
    datasetUris,
    queryCollections,
    queryDataIds,
    queryDatasetTypes,
    queryDimensionRecords,
)
from .repo import (
    CleanupReport,
    RepoStats,
    VerifyReport,
    cleanupRepo,
    createRepo,
    dumpConfig,
    findOrphans,
    registerDatasetType,
    repoStats,
    validateConfig,
    verifyDatasets,
)

__all__ = [
    "CleanupReport",
    "GetResult",
    "RepoStats",
    "TransferResult",
    "VerifyReport",
    "associateDatasets",
    "certifyCalibrations",
    "cleanupRepo",
    "collectionChain",
    "createRepo",
    "datasetUris",
    "dumpConfig",
    "exportRepo",
    "findOrphans",
    "getDataset",
    "importRepo",
    "parseTime",
    "putDataset",
    "queryCollections",
    "queryDataIds",
    "queryDatasetTypes",
    "queryDatasets",
    "queryDimensionRecords",
    "registerDatasetType",
    "removeCollections",
    "removeDatasetType",
    "removeDatasets",
    "removeRuns",
    "repoStats",
    "transferDatasets",
    "validateConfig",
    "verifyDatasets",
]
