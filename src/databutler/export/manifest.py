"""The export manifest: what an export holds, written as YAML or JSON and read back with suspicion.

An export is a folder (or a zip file) with one manifest, ``export.yaml`` or ``export.json``, and
the datasets' files under the paths the manifest names. The manifest (version 1) is a mapping::

    databutlerExport: 1
    dimensions: {visit: {type: int, requires: [instrument], ...}, ...}   # definitions used
    dimensionRecords: {instrument: [{instrument: HSC, visitMax: 999}], ...}
    datasetTypes: [{name: calexp, dimensions: [instrument, visit], storageClass: ...}]
    collections: [{name: run1, type: RUN}, {name: chain, type: CHAINED, children: [run1]}]
    datasets:
      - datasetType: calexp
        run: run1
        refs:
          - id: 2f9c...
            dataId: {instrument: HSC, visit: 1}
            files: [{path: run1/calexp/..., formatter: ..., storageClass: ..., component: null,
                     fileSize: 1234, checksum: "xxh3_128:..."}]

`readManifest` trusts nothing in it: YAML is read with the safe loader (no Python objects are
ever built from tags), every field is type-checked, paths must be normalized relative paths
that stay inside the export, sizes must be non-negative integers no bigger than `MAX_FILE_SIZE`,
and checksums must name a known algorithm. A manifest that fails any check raises
`ManifestError` (or `UnsafePathError` for a path) before anything is imported.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..datastores.file._io import CHECKSUM_ALGORITHMS
from ..datastores.file._templates import checkRelativePath
from ..exceptions import ManifestError, UnsafePathError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAMES",
    "MAX_FILE_SIZE",
    "ExportedDataset",
    "ExportedFile",
    "Manifest",
    "dumpManifest",
    "readManifest",
]

FORMAT_VERSION = 1
"""The manifest version this code writes and reads."""

MANIFEST_NAMES = {"yaml": "export.yaml", "json": "export.json"}
"""The manifest's file name in an export, by format."""

MAX_FILE_SIZE = 1 << 44
"""16 TiB: a manifest naming a bigger file is refused as absurd before any byte is read."""

_CHECKSUM = re.compile(r"^([a-z0-9_]+):([0-9a-f]{8,128})$")


@dataclass(frozen=True, slots=True)
class ExportedFile:
    """One file of an exported dataset, as the manifest names it."""

    path: str
    formatter: str
    storageClass: str
    component: str | None
    fileSize: int
    checksum: str | None

    def toDict(self) -> dict[str, Any]:
        """Return the manifest entry."""
        return {
            "path": self.path,
            "formatter": self.formatter,
            "storageClass": self.storageClass,
            "component": self.component,
            "fileSize": self.fileSize,
            "checksum": self.checksum,
        }


@dataclass(frozen=True, slots=True)
class ExportedDataset:
    """One exported dataset: its type, run, id, data ID and files."""

    datasetType: str
    run: str
    id: uuid.UUID
    dataId: dict[str, Any]
    files: tuple[ExportedFile, ...]


@dataclass(slots=True)
class Manifest:
    """Everything an export holds, in the order an import adds it."""

    dimensions: dict[str, Any] = field(default_factory=dict)
    dimensionRecords: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    datasetTypes: list[dict[str, Any]] = field(default_factory=list)
    collections: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[ExportedDataset] = field(default_factory=list)

    def toDict(self) -> dict[str, Any]:
        """Return the manifest as plain data (str, int, float, None, lists and dicts only)."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for dataset in self.datasets:
            groups.setdefault((dataset.datasetType, dataset.run), []).append(
                {
                    "id": str(dataset.id),
                    "dataId": dataset.dataId,
                    "files": [f.toDict() for f in dataset.files],
                }
            )
        return {
            "databutlerExport": FORMAT_VERSION,
            "dimensions": self.dimensions,
            "dimensionRecords": self.dimensionRecords,
            "datasetTypes": self.datasetTypes,
            "collections": self.collections,
            "datasets": [
                {"datasetType": typeName, "run": run, "refs": refs}
                for (typeName, run), refs in groups.items()
            ],
        }

    def paths(self) -> list[str]:
        """Return every file path the manifest names, in order."""
        return [f.path for dataset in self.datasets for f in dataset.files]


def dumpManifest(manifest: Manifest, manifestFormat: str) -> bytes:
    """Return the manifest's text, encoded, as YAML (``"yaml"``) or JSON (``"json"``)."""
    data = manifest.toDict()
    if manifestFormat == "json":
        return json.dumps(data, separators=(",", ":")).encode()
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when PyYAML was built with it
    return yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=None).encode()


def readManifest(text: bytes, manifestFormat: str, where: str) -> Manifest:
    """Parse and check a manifest's text (``where`` names it in messages).

    Raises
    ------
    ManifestError
        It is not valid YAML/JSON, not version 1, or a field is missing or of the wrong type,
        a size is negative or absurd, or a checksum is malformed.
    UnsafePathError
        A file path is absolute, climbs out with ``..`` or is not normalized.
    """
    try:
        if manifestFormat == "json":
            data = json.loads(text)
        else:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # never the unsafe loader
            data = yaml.load(text, Loader=loader)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ManifestError(
            f"Export manifest {where} is not valid {manifestFormat.upper()}: {first}."
        ) from exc
    top = _mapping(data, f"the manifest {where}", where)
    version = top.get("databutlerExport")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ManifestError(
            f"Export manifest {where} has databutlerExport: {version!r}; this databutler reads version "
            f"{FORMAT_VERSION} only (is it a databutler export?)."
        )
    manifest = Manifest(
        dimensions=dict(_mapping(top.get("dimensions", {}), "dimensions", where)),
        dimensionRecords={},
        datasetTypes=[],
        collections=[],
    )
    for element, records in _mapping(top.get("dimensionRecords", {}), "dimensionRecords", where).items():
        manifest.dimensionRecords[_str(element, "a dimension name", where)] = [
            dict(_mapping(r, f"a {element!r} record", where)) for r in _list(records, element, where)
        ]
    for entry in _list(top.get("datasetTypes", []), "datasetTypes", where):
        entry = _mapping(entry, "a dataset type", where)
        name = _str(entry.get("name"), "a dataset type's name", where)
        dimensions = [
            _str(d, f"a dimension of {name!r}", where) for d in _list(entry.get("dimensions"), name, where)
        ]
        storageClass = _str(entry.get("storageClass"), f"the storage class of {name!r}", where)
        manifest.datasetTypes.append({"name": name, "dimensions": dimensions, "storageClass": storageClass})
    for entry in _list(top.get("collections", []), "collections", where):
        entry = _mapping(entry, "a collection", where)
        name = _str(entry.get("name"), "a collection's name", where)
        kind = _str(entry.get("type"), f"the type of collection {name!r}", where)
        collection: dict[str, Any] = {"name": name, "type": kind}
        if kind == "CHAINED":
            collection["children"] = [
                _str(c, f"a child of {name!r}", where) for c in _list(entry.get("children"), name, where)
            ]
        elif kind != "RUN":
            raise ManifestError(
                f"Export manifest {where}: collection {name!r} has type {kind!r}; this databutler imports "
                "RUN and CHAINED collections."
            )
        manifest.collections.append(collection)
    folders: set[str] = set()  # folder prefixes of paths found safe
    for group in _list(top.get("datasets", []), "datasets", where):
        group = _mapping(group, "a dataset group", where)
        typeName = _str(group.get("datasetType"), "a dataset group's datasetType", where)
        run = _str(group.get("run"), f"the run of the {typeName!r} datasets", where)
        for ref in _list(group.get("refs"), f"the {typeName!r} refs", where):
            dataset = _plainDataset(ref, typeName, run, folders)
            if dataset is None:  # something is off: the full checks say what
                dataset = _dataset(_mapping(ref, f"a {typeName!r} dataset", where), typeName, run, where)
            manifest.datasets.append(dataset)
    return manifest


def _plainDataset(entry: Any, typeName: str, run: str, folders: set[str]) -> ExportedDataset | None:
    """Return the dataset of a well-formed entry, or `None` for `_dataset` to check it and say what is wrong.

    The fast path of `readManifest`: the same checks as `_dataset`, on exact types, with no
    message built unless one is needed. It accepts only entries `_dataset` accepts, and makes
    the same `ExportedDataset` of them; a path is checked in full (`checkRelativePath`) the
    first time its folder is met, after which only its last part needs checking.
    """
    if type(entry) is not dict:
        return None
    rawId, dataId, rawFiles = entry.get("id"), entry.get("dataId"), entry.get("files")
    if type(rawId) is not str or type(dataId) is not dict or type(rawFiles) is not list or not rawFiles:
        return None
    try:
        datasetId = uuid.UUID(rawId)
    except ValueError:
        return None
    for key, value in dataId.items():
        if type(key) is not str or (type(value) is not int and type(value) is not str):
            return None
    files = []
    for raw in rawFiles:
        if type(raw) is not dict:
            return None
        path, size, checksum = raw.get("path"), raw.get("fileSize"), raw.get("checksum")
        formatter, storageClass = raw.get("formatter"), raw.get("storageClass")
        component = raw.get("component")
        if (
            type(path) is not str
            or type(size) is not int
            or not 0 <= size <= MAX_FILE_SIZE
            or type(formatter) is not str
            or not formatter
            or type(storageClass) is not str
            or not storageClass
            or (component is not None and (type(component) is not str or not component))
            or (checksum is not None and not _knownChecksum(checksum))
            or not _safePath(path, folders)
        ):
            return None
        files.append(ExportedFile(path, formatter, storageClass, component, size, checksum))
    return ExportedDataset(typeName, run, datasetId, dict(dataId), tuple(files))


def _knownChecksum(checksum: Any) -> bool:
    match = _CHECKSUM.match(checksum) if type(checksum) is str else None
    return match is not None and match.group(1) in CHECKSUM_ALGORITHMS


def _safePath(path: str, folders: set[str]) -> bool:
    """Whether `checkRelativePath` accepts ``path``; ``folders`` holds the folder prefixes it accepted.

    A prefix (``"a/b/"``, or ``""`` at the top) is in ``folders`` only once a path under it
    passed in full, so its parts are safe; then only the last part is checked, as
    `checkRelativePath` checks each part (not empty, ``.`` or ``..``; no backslash or NUL).
    """
    cut = path.rfind("/") + 1
    prefix, name = path[:cut], path[cut:]
    if prefix in folders:
        return name not in ("", ".", "..") and "\\" not in name and "\x00" not in name
    try:
        checkRelativePath(path)
    except UnsafePathError:
        return False
    folders.add(prefix)
    return True


def _dataset(entry: Mapping[str, Any], typeName: str, run: str, where: str) -> ExportedDataset:
    rawId = entry.get("id")
    try:
        datasetId = uuid.UUID(_str(rawId, f"a {typeName!r} dataset id", where))
    except ValueError as exc:
        raise ManifestError(
            f"Export manifest {where}: dataset id {rawId!r} of {typeName!r} is not a UUID."
        ) from exc
    what = f"dataset {datasetId} ({typeName!r})"
    dataId = dict(_mapping(entry.get("dataId"), f"the data ID of {what}", where))
    for key, value in dataId.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, int | str):
            raise ManifestError(
                f"Export manifest {where}: the data ID of {what} has {key!r}: {value!r}; data ID values "
                "must be integers or strings."
            )
    files = []
    for raw in _list(entry.get("files"), f"the files of {what}", where):
        raw = _mapping(raw, f"a file of {what}", where)
        path = _str(raw.get("path"), f"a file path of {what}", where)
        try:
            checkRelativePath(path)
        except UnsafePathError as exc:
            raise UnsafePathError(
                f"Export manifest {where}: file {path!r} of {what} is not a relative path inside the export "
                "(absolute, with '..' or not normalized); refusing to import it."
            ) from exc
        size = raw.get("fileSize")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_FILE_SIZE:
            raise ManifestError(
                f"Export manifest {where}: file {path!r} of {what} has fileSize {size!r}; it must be a whole "
                f"number of bytes from 0 to {MAX_FILE_SIZE}."
            )
        checksum = raw.get("checksum")
        if checksum is not None:
            match = _CHECKSUM.match(checksum) if isinstance(checksum, str) else None
            if match is None or match.group(1) not in CHECKSUM_ALGORITHMS:
                raise ManifestError(
                    f"Export manifest {where}: file {path!r} of {what} has checksum {checksum!r}; expected "
                    f"'<algorithm>:<hex>' with an algorithm of {list(CHECKSUM_ALGORITHMS)}."
                )
        component = raw.get("component")
        if component is not None:
            component = _str(component, f"the component of file {path!r}", where)
        files.append(
            ExportedFile(
                path=path,
                formatter=_str(raw.get("formatter"), f"the formatter of file {path!r}", where),
                storageClass=_str(raw.get("storageClass"), f"the storage class of file {path!r}", where),
                component=component,
                fileSize=size,
                checksum=checksum,
            )
        )
    if not files:
        raise ManifestError(f"Export manifest {where}: {what} names no file.")
    return ExportedDataset(typeName, run, datasetId, dataId, tuple(files))


def _mapping(value: Any, what: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ManifestError(f"Export manifest {where}: {what} must be a mapping, not {_shown(value)}.")
    return value


def _list(value: Any, what: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ManifestError(f"Export manifest {where}: {what} must be a list, not {_shown(value)}.")
    return value


def _str(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ManifestError(
            f"Export manifest {where}: {what} must be a non-empty string, not {_shown(value)}."
        )
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def recordToManifest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Return a dimension record's values as manifest data (timespans as ISO 8601 pairs)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, tuple) and len(value) == 2:  # a Timespan
            out[key] = [_isoOrNone(value[0]), _isoOrNone(value[1])]
        elif isinstance(value, datetime.datetime):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


def recordFromManifest(
    values: Mapping[str, Any], fieldTypes: Mapping[str, str], element: str, where: str
) -> dict[str, Any]:
    """Return manifest record values as `insertDimensionData` takes them (timespans parsed back).

    Raises
    ------
    ManifestError
        A timespan is not a pair of ISO 8601 times (or nulls).
    """
    out = dict(values)
    for key, kind in fieldTypes.items():
        if kind != "timespan" or out.get(key) is None:
            continue
        pair = out[key]
        try:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError("not a pair")
            out[key] = tuple(None if t is None else datetime.datetime.fromisoformat(t) for t in pair)
        except (TypeError, ValueError) as exc:
            raise ManifestError(
                f"Export manifest {where}: the {key!r} of a {element!r} record is {pair!r}; expected a pair of "
                "ISO 8601 times or nulls."
            ) from exc
    return out


def _isoOrNone(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat()
