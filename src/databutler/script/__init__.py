"""Plain, typed functions behind the ``databutler`` commands, one per command.

Tests and other programs call these directly; `databutler.cli` only parses arguments and
prints what they return.
"""

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
    "cleanupRepo",
    "collectionChain",
    "createRepo",
    "datasetUris",
    "dumpConfig",
    "exportRepo",
    "findOrphans",
    "getDataset",
    "importRepo",
    "putDataset",
    "queryCollections",
    "queryDataIds",
    "queryDatasetTypes",
    "queryDatasets",
    "queryDimensionRecords",
    "registerDatasetType",
    "removeDatasets",
    "repoStats",
    "transferDatasets",
    "validateConfig",
    "verifyDatasets",
]
