"""File templates: hostile dataset type names, data ID values and runs never leave the root."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from databutler import (
    ConfigError,
    DatasetRef,
    DatasetType,
    DatasetTypeError,
    FileDatastore,
    FileTemplateError,
    StorageClassFactory,
    StoredFileInfo,
    UnsafePathError,
)
from databutler.datastores.file._templates import FileTemplate, FileTemplates, checkRelativePath
from databutler.testing import makeRef

FACTORY = StorageClassFactory.fromDefaults()
BAND_TYPE = DatasetType("coadd", ("band", "tract"), "StructuredDataDict")

HOSTILE_VALUES = [
    "..",
    ".",
    "../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "C:\\Windows",
    "nul\x00byte",
    "new\nline",
    "tab\there",
    " leading space",
    ".hidden",
    "\uff0e\uff0e",  # full-width dots: NFKC '..'
    "a\uff0fb",  # full-width solidus: NFKC '/'
    "a\u2215b",  # division slash, looks like '/'
    "a\u2044b",  # fraction slash
    "evil\u202etxt.exe",  # right-to-left override
    "zero\u200bwidth",
    "\ufb01le",  # 'fi' ligature, not NFKC-normal
    "%2e%2e",
    "a:b",
    "x" * 201,
]


def makeStore(root: Path, **extra: object) -> FileDatastore:
    return FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(root), **extra}})


def filesUnder(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "sqlite3" not in p.name
    )


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_data_id_value_is_refused(tmp_path: Path, value: str) -> None:
    store = makeStore(tmp_path / "root")
    ref = DatasetRef(BAND_TYPE, {"band": value, "tract": 1}, run="run")
    with pytest.raises(UnsafePathError, match="band"):
        store.put({"x": 1}, ref)
    with pytest.raises(UnsafePathError):
        store.getUri(ref, predict=True)
    assert not store.exists(ref)
    assert filesUnder(tmp_path / "root") == []
    assert sorted(os.listdir(tmp_path)) == ["root"]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_value_in_named_field_is_refused(tmp_path: Path, value: str) -> None:
    store = makeStore(tmp_path / "root", templates={"coadd": "{run}/{band}/{tract:04d}"})
    ref = DatasetRef(BAND_TYPE, {"band": value, "tract": 1}, run="run")
    with pytest.raises(UnsafePathError):
        store.put({"x": 1}, ref)
    assert filesUnder(tmp_path / "root") == []


@pytest.mark.parametrize(
    "run", ["../up", "/abs", "a//b", "a/./b", "a/../b", "a/", "run\x00", "r\u202eun", "a\\b"]
)
def test_hostile_run_is_refused(tmp_path: Path, run: str) -> None:
    store = makeStore(tmp_path / "root")
    ref = makeRef("metrics", "StructuredDataDict", run=run)
    with pytest.raises(UnsafePathError, match="Run"):
        store.put({"x": 1}, ref)
    assert filesUnder(tmp_path / "root") == []


def test_dataset_type_names_are_identifiers() -> None:
    for name in ("../x", "a/b", "/abs", "a\x00", "\uff0e\uff0e", "a.b.c"):
        with pytest.raises(DatasetTypeError):
            DatasetType(name, ("visit",), "StructuredDataDict")


def test_safe_values_make_readable_paths(tmp_path: Path) -> None:
    store = makeStore(tmp_path / "root", templates={"coadd": "{run}/{datasetType}/{band}/{tract:05d}"})
    ref = DatasetRef(BAND_TYPE, {"band": "HSC-R2", "tract": 42}, run="u/someone/run-1")
    store.put({"x": 1}, ref)
    assert filesUnder(tmp_path / "root") == ["u/someone/run-1/coadd/HSC-R2/00042.json"]
    unicodeRef = DatasetRef(BAND_TYPE, {"band": "Ångström", "tract": -3}, run="run")
    store.put({"x": 2}, unicodeRef)
    assert store.get(unicodeRef) == {"x": 2}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(min_size=1, max_size=40), run=st.text(min_size=1, max_size=20))
def test_any_text_stays_inside_root_or_is_refused(tmp_path: Path, value: str, run: str) -> None:
    root = tmp_path / "fuzz"
    store = makeStore(root, templates={"coadd": "{run}/{band}/{datasetType}_{dataId}_{id}"})
    ref = DatasetRef(BAND_TYPE, {"band": value, "tract": 1}, run=run)
    try:
        uri = store.getUri(ref, predict=True)
    except UnsafePathError:
        return
    path = Path(uri.removeprefix("file://").removesuffix("#predicted"))
    resolved = os.path.realpath(path)
    assert resolved.startswith(os.path.realpath(root) + os.sep)
    assert os.path.normpath(str(path)) == str(path)
    store.put({"v": value}, ref)
    assert store.get(ref) == {"v": value}
    assert os.path.isfile(resolved)


@pytest.mark.parametrize(
    "template",
    [
        "",
        "/abs/{run}",
        "{run}/../{id}",
        "{run}//{id}",
        "./{id}",
        "{0}",
        "{}",
        "{a.b}",
        "{a[0]}",
        "a\\{id}",
        ".hidden/{id}",
        "{run}/a b/{id}",
        "{run",
        "{run}/\uff0e\uff0e/{id}",
    ],
)
def test_bad_templates_are_config_errors(template: str) -> None:
    with pytest.raises(FileTemplateError):
        FileTemplate(template)
    with pytest.raises(ConfigError):
        FileTemplates({"default": template})


def test_template_needs_fields_the_ref_has(tmp_path: Path) -> None:
    store = makeStore(tmp_path / "root", templates={"default": "{run}/{visit}/{id}"})
    with pytest.raises(FileTemplateError, match=r"\{visit\}.*band"):
        store.put({"x": 1}, DatasetRef(BAND_TYPE, {"band": "r", "tract": 1}, run="run"))
    with pytest.raises(FileTemplateError, match="has no run"):
        store.put({"x": 1}, makeRef("metrics", "StructuredDataDict", run=None))
    with pytest.raises(FileTemplateError, match="!r"):
        FileTemplate("{visit!r}").render(makeRef("metrics", "StructuredDataDict"))
    with pytest.raises(FileTemplateError, match="cannot format"):
        FileTemplate("{band:05d}").render(DatasetRef(BAND_TYPE, {"band": "r", "tract": 1}))
    noRun = makeStore(tmp_path / "other", templates={"default": "{datasetType}/{dataId}_{id}"})
    ref = makeRef("metrics", "StructuredDataDict", run=None)
    noRun.put({"x": 1}, ref)
    assert noRun.get(ref) == {"x": 1}


def test_template_lookup_order() -> None:
    templates = FileTemplates({"default": "d/{id}", "NumpyArray": "sc/{id}", "flat": "dt/{id}"})
    ident = uuid.uuid4()
    flat = DatasetRef(DatasetType("flat", ("visit",), "NumpyArray"), {"visit": 1}, id=ident)
    bias = DatasetRef(DatasetType("bias", ("visit",), "NumpyArray"), {"visit": 1}, id=ident)
    other = DatasetRef(DatasetType("other", ("visit",), "StructuredDataDict"), {"visit": 1}, id=ident)
    assert templates.render(flat) == f"dt/{ident}"
    assert templates.render(bias) == f"sc/{ident}"
    assert templates.render(other) == f"d/{ident}"
    assert FileTemplate("{run}/{id}").fields == {"run", "id"}
    with pytest.raises(FileTemplateError, match="map names"):
        FileTemplates(["{id}"])  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["", "/abs", "../x", "a/../../x", "a//b", "a/./b", "a\\b", "a\x00b", "a/"])
def test_checkRelativePath(path: str) -> None:
    with pytest.raises(UnsafePathError):
        checkRelativePath(path)


def test_recorded_paths_are_checked(tmp_path: Path) -> None:
    store = makeStore(tmp_path / "root")
    ref = makeRef("metrics", "StructuredDataDict")
    info = StoredFileInfo(
        0.0,
        FACTORY.getStorageClass("StructuredDataDict"),
        path="../../outside.json",
        formatter="databutler.formatters.json.JsonFormatter",
        fileSize=2,
    )
    with pytest.raises(UnsafePathError):
        store.addStoredItemInfo(ref, info)
    assert not store.exists(ref)


def test_renderers_kept_per_dataset_type_and_run_render_each_ref_afresh() -> None:
    """`FileTemplates.render` keeps one renderer per (dataset type, run): every ref still gets its own path."""
    template = "{run}/{datasetType}_{tract:04d}/x{datasetType}{band}_{dataId}/{id}"
    templates = FileTemplates({"default": template})
    other = DatasetType("other", ("band", "tract"), "StructuredDataDict")
    seen = set()
    for run in ("a/b", "c"):
        for datasetType in (BAND_TYPE, other):
            for tract, band in ((1, "g"), (2, "r"), (12345, "g")):
                ref = DatasetRef(datasetType, {"band": band, "tract": tract}, run=run)
                path = templates.render(ref)
                assert path == FileTemplates({"default": template}).render(ref)  # a new one: nothing kept
                name = datasetType.name
                assert path == f"{run}/{name}_{tract:04d}/x{name}{band}_band-{band}_tract-{tract}/{ref.id}"
                seen.add(path)
    assert len(seen) == 12
    for _ in range(2):  # a refusal is not kept: each ref of an unsafe run is refused
        with pytest.raises(UnsafePathError, match="Run name part"):
            templates.render(DatasetRef(BAND_TYPE, {"band": "g", "tract": 1}, run="bad/.run"))
    for band in ("../up", ".hidden"):  # the per-ref fields are checked for each ref
        with pytest.raises(UnsafePathError):
            templates.render(DatasetRef(BAND_TYPE, {"band": band, "tract": 1}, run="c"))
