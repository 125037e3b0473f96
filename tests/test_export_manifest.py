"""readManifest trusts nothing: malformed text, other versions, unsafe paths, absurd sizes, bad checksums."""

from __future__ import annotations

import collections
import copy
import json
from typing import Any

import pytest
import yaml

from databutler import ExportError, ManifestError, UnsafePathError
from databutler.export import readManifest

GOOD: dict[str, Any] = {
    "databutlerExport": 1,
    "dimensions": {"visit": {"type": "int"}},
    "dimensionRecords": {},
    "datasetTypes": [{"name": "m", "dimensions": ["visit"], "storageClass": "StructuredDataDict"}],
    "collections": [{"name": "r", "type": "RUN"}],
    "datasets": [
        {
            "datasetType": "m",
            "run": "r",
            "refs": [
                {
                    "id": "f1287480-c5da-51e3-a713-a39f5748fd2d",
                    "dataId": {"visit": 1},
                    "files": [
                        {
                            "path": "r/m/m_1.json",
                            "formatter": "databutler.formatters.json.JsonFormatter",
                            "storageClass": "StructuredDataDict",
                            "component": None,
                            "fileSize": 8,
                            "checksum": "xxh3_128:8f1c29f50aa952dbd475f930065b4b4f",
                        }
                    ],
                }
            ],
        }
    ],
}


def withFile(**changes: Any) -> bytes:
    data = copy.deepcopy(GOOD)
    data["datasets"][0]["refs"][0]["files"][0].update(changes)
    return json.dumps(data).encode()


def test_a_good_manifest_reads_in_both_formats() -> None:
    fromJson = readManifest(json.dumps(GOOD).encode(), "json", "x")
    fromYaml = readManifest(yaml.safe_dump(GOOD).encode(), "yaml", "x")
    assert fromJson.datasets == fromYaml.datasets
    assert fromJson.paths() == ["r/m/m_1.json"]


@pytest.mark.parametrize(
    "path", ["../escape.json", "/etc/passwd", "r/../../escape.json", "r/./m.json", "r//m.json", "", "a\\b"]
)
def test_paths_that_leave_the_export_are_refused(path: str) -> None:
    with pytest.raises((UnsafePathError, ManifestError)):
        readManifest(withFile(path=path), "json", "x")


@pytest.mark.parametrize("size", [-1, 1 << 60, "8", 8.5, True, None])
def test_absurd_sizes_are_refused(size: Any) -> None:
    with pytest.raises(ManifestError, match="fileSize"):
        readManifest(withFile(fileSize=size), "json", "x")


@pytest.mark.parametrize("checksum", ["md5:abc", "xxh3_128:XYZ", 12, "nocolon"])
def test_malformed_checksums_are_refused(checksum: Any) -> None:
    with pytest.raises(ManifestError, match="checksum"):
        readManifest(withFile(checksum=checksum), "json", "x")


@pytest.mark.parametrize(
    "text, manifestFormat",
    [
        (b"{not json", "json"),
        (b"key: [unclosed", "yaml"),
        (b"- just\n- a list\n", "yaml"),
        (b"databutlerExport: 2\n", "yaml"),
        (b"", "yaml"),
        (json.dumps({**GOOD, "datasets": "many"}).encode(), "json"),
        (json.dumps({**GOOD, "collections": [{"name": "t", "type": "TAGGED"}]}).encode(), "json"),
    ],
)
def test_malformed_manifests_raise_manifest_errors(text: bytes, manifestFormat: str) -> None:
    with pytest.raises(ManifestError) as info:
        readManifest(text, manifestFormat, "x")
    assert isinstance(info.value, ExportError) and isinstance(info.value, ValueError)


def test_yaml_python_tags_are_never_constructed() -> None:
    hostile = b"databutlerExport: !!python/object/apply:os.system ['touch /tmp/pwned-by-manifest']\n"
    with pytest.raises(ManifestError, match="not valid YAML"):
        readManifest(hostile, "yaml", "x")


def test_a_bad_dataset_id_or_data_id_is_refused() -> None:
    data = copy.deepcopy(GOOD)
    data["datasets"][0]["refs"][0]["id"] = "not-a-uuid"
    with pytest.raises(ManifestError, match="UUID"):
        readManifest(json.dumps(data).encode(), "json", "x")
    data = copy.deepcopy(GOOD)
    data["datasets"][0]["refs"][0]["dataId"] = {"visit": [1, 2]}
    with pytest.raises(ManifestError, match="data ID"):
        readManifest(json.dumps(data).encode(), "json", "x")


def withTwoFiles(first: str, second: str) -> bytes:
    """A manifest of two datasets: the first with a safe path, the second with ``second``."""
    data = copy.deepcopy(GOOD)
    refs = data["datasets"][0]["refs"]
    refs.append(copy.deepcopy(refs[0]))
    refs[1]["id"] = "0b6b3c6e-37a4-4bd2-9f80-6a3d1c1b1d4e"
    refs[1]["dataId"] = {"visit": 2}
    refs[0]["files"][0]["path"] = first
    refs[1]["files"][0]["path"] = second
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    "first, second",
    [
        ("r/m/m_1.json", "r/m/.."),
        ("r/m/m_1.json", "r/m/."),
        ("r/m/m_1.json", "r/m/"),
        ("r/m/m_1.json", "r/m/a\\b"),
        ("r/m/m_1.json", "r/m/a\x00b"),
        ("r/m/m_1.json", "/r/m/m_2.json"),
        ("r/m/m_1.json", "r/m//m_2.json"),
        ("top.json", "/top.json"),
        ("top.json", ".."),
        ("top.json", "r/../../x.json"),
    ],
)
def test_a_hostile_path_is_refused_in_a_folder_already_found_safe(first: str, second: str) -> None:
    # The fast path checks a folder once; every later path in it must still be refused if unsafe.
    assert len(readManifest(withTwoFiles(first, "r/m/m_2.json"), "json", "x").datasets) == 2
    with pytest.raises((UnsafePathError, ManifestError)):
        readManifest(withTwoFiles(first, second), "json", "x")


def test_the_fast_path_reads_what_the_full_checks_read() -> None:
    from databutler.export.manifest import _dataset, _plainDataset

    entry = copy.deepcopy(GOOD["datasets"][0]["refs"][0])
    entry["files"].append(
        {**entry["files"][0], "path": "r/m/m_1/wcs.json", "component": "wcs", "checksum": None}
    )
    plain = _plainDataset(entry, "m", "r", set())
    assert plain is not None and plain == _dataset(entry, "m", "r", "x")
    assert [f.component for f in plain.files] == [None, "wcs"]
    # What the fast path leaves (not exactly a dict here), the full checks read the same;
    # what they refuse (a bool for a size), the fast path leaves to them too.
    mapping = collections.OrderedDict(entry)
    assert _plainDataset(mapping, "m", "r", set()) is None
    assert _dataset(mapping, "m", "r", "x") == plain
    entry["files"][0]["fileSize"] = True
    assert _plainDataset(entry, "m", "r", set()) is None
    with pytest.raises(ManifestError, match="fileSize"):
        _dataset(entry, "m", "r", "x")
