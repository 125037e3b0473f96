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
from .repo import (
    RepoStats,
    VerifyReport,
    createRepo,
    dumpConfig,
    registerDatasetType,
    repoStats,
    verifyDatasets,
)

__all__ = [
    "GetResult",
    "RepoStats",
    "TransferResult",
    "VerifyReport",
    "createRepo",
    "dumpConfig",
    "getDataset",
    "putDataset",
    "queryDatasets",
    "registerDatasetType",
    "removeDatasets",
    "repoStats",
    "transferDatasets",
    "verifyDatasets",
]
