"""FileDatastore on s3:// against a real S3-compatible HTTP endpoint on loopback (moto's server)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto.server import ThreadedMotoServer

from databutler import ConfigError, DatasetIntegrityError, FileDatastore
from databutler.testing import DatastoreTests, makeRef

BUCKET = "databutler-tests"


def _freePort() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3Endpoint() -> Iterator[str]:
    """Start moto's S3 server on 127.0.0.1 for this module and create the test bucket."""
    port = _freePort()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def _options(endpoint: str) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }


def makeS3Datastore(endpoint: str, recordsDir: Path, registry: Any = None, **extra: Any) -> FileDatastore:
    return FileDatastore(
        {
            "datastore": {
                "cls": "databutler.FileDatastore",
                "root": f"s3://{BUCKET}/{uuid.uuid4().hex}",
                "storageOptions": _options(endpoint),
                "records": {"db": f"sqlite:///{recordsDir / uuid.uuid4().hex}.sqlite3"},
                **extra,
            }
        },
        registry=registry,
    )


class TestFileDatastoreS3(DatastoreTests):
    @pytest.fixture(autouse=True)
    def _endpoint(self, s3Endpoint: str, tmp_path: Path) -> None:
        self.endpoint = s3Endpoint
        self.tmpPath = tmp_path

    def makeDatastore(self, registry: Any = None) -> FileDatastore:
        return makeS3Datastore(self.endpoint, self.tmpPath, registry)


def test_uris_are_s3_and_files_are_objects(s3Endpoint: str, tmp_path: Path) -> None:
    store = makeS3Datastore(s3Endpoint, tmp_path)
    ref = makeRef("image", "NumpyArray")
    store.put(np.arange(10.0), ref)
    uri = store.getUri(ref)
    assert uri.startswith(f"s3://{BUCKET}/") and uri.endswith(".npy")
    key = uri.removeprefix("s3://")
    assert store.fs.info(key)["size"] == store.getStoredItemInfo(ref).fileSize
    assert not [k for k in store.fs.find(store.rootPath) if ".tmp-" in k]  # no temp objects left
    store.fs.pipe_file(key, b"\x93NUMPY" + b"\0" * (store.getStoredItemInfo(ref).fileSize - 6))
    with pytest.raises(DatasetIntegrityError, match=f"s3://{key}"):
        store.get(ref)


def test_parquet_columns_over_s3(s3Endpoint: str, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    store = makeS3Datastore(s3Endpoint, tmp_path, checksum=False)
    ref = makeRef("sources", "ArrowTable")
    table = pa.table({"a": [1, 2], "b": [3, 4]})
    store.put(table, ref)
    assert store.get(ref, parameters={"columns": ["b"]}).equals(table.select(["b"]))


def test_remote_root_needs_a_records_db(s3Endpoint: str) -> None:
    config = {
        "cls": "databutler.FileDatastore",
        "root": f"s3://{BUCKET}/x",
        "storageOptions": _options(s3Endpoint),
    }
    with pytest.raises(ConfigError, match=r"records\.db"):
        FileDatastore({"datastore": config})


def test_leftover_temporary_objects_are_removed(s3Endpoint: str, tmp_path: Path) -> None:
    store = makeS3Datastore(s3Endpoint, tmp_path)
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"x": 1}, ref)
    leftover = f"{store.rootPath}/run/.metrics.json.tmp-{uuid.uuid4().hex}"
    store.fs.pipe_file(leftover, b"{")
    assert store.removeLeftoverFiles() == []
    assert store.removeLeftoverFiles(olderThan=0) == [f"s3://{leftover}"]
    assert store.get(ref) == {"x": 1}


def test_repository_with_its_datasets_in_a_bucket(s3Endpoint: str, tmp_path: Path) -> None:
    """A repository root is a local folder; its file tier can live at an S3 URI (end to end)."""
    from databutler import Butler

    bucketRoot = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    with pytest.raises(ConfigError, match="a repository root is a local folder"):
        Butler.makeRepo(bucketRoot)
    Butler.makeRepo(
        tmp_path / "repo", {"datastore": {"root": bucketRoot, "storageOptions": _options(s3Endpoint)}}
    )
    with Butler(tmp_path / "repo", run="night1") as butler:
        butler.registerDatasetType("flat", ("visit",), "NumpyArray")
        ref = butler.put(np.arange(6.0), "flat", visit=1)
    with Butler(tmp_path / "repo", collections=["night1"]) as fresh:  # its memory tier is empty
        uri = fresh.getUri(ref)
        assert uri.startswith(bucketRoot + "/night1/flat/")
        assert fresh.get("flat", visit=1).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert not list((tmp_path / "repo").rglob("*.npy"))  # nothing landed in the local folder
