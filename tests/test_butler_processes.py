"""What one process sees of another's changes: get, exists and getUri agree.

Each Butler has a memory tier of its own; a dataset another process removes must not be
returned from it while `exists` says it is gone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from databutler import Butler, DatasetNotFoundError

REMOVE = r"""
import sys, uuid
from databutler import Butler

with Butler(sys.argv[1]) as butler:
    butler.removeDatasets([butler.registry.getDataset(uuid.UUID(sys.argv[2]))])
"""


def test_a_dataset_another_process_removed_is_neither_got_nor_said_to_exist(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    Butler.makeRepo(root)
    with Butler(root, run="run") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        ref = butler.put({"a": 1}, "metrics", visit=1)
        kept = butler.put({"b": 2}, "metrics", visit=2)
        assert butler.get(ref) == {"a": 1}  # now in this process's memory tier
        subprocess.run([sys.executable, "-c", REMOVE, str(root), str(ref.id)], check=True, timeout=120)
        assert not butler.exists(ref)
        with pytest.raises(DatasetNotFoundError, match="removed, perhaps by another process"):
            butler.get(ref)
        with pytest.raises(DatasetNotFoundError):
            butler.getUri(ref)
        with pytest.raises(DatasetNotFoundError):
            butler.get("metrics", visit=1)
        assert butler.exists(kept) and butler.get(kept) == {"b": 2}


def test_a_ref_put_in_an_open_transaction_can_be_got_in_it(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    Butler.makeRepo(root)
    with Butler(root, run="run") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        with butler.transaction():
            ref = butler.put({"a": 1}, "metrics", visit=1)
            assert butler.get(ref) == {"a": 1} and butler.exists(ref)
