"""StorageClass, StorageClassFactory and the delegates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from databutler import (
    InvalidParameterError,
    MissingOptionalDependencyError,
    StorageClass,
    StorageClassConflictError,
    StorageClassDelegate,
    StorageClassError,
    StorageClassFactory,
    UnknownComponentError,
    UnknownStorageClassError,
)


@dataclass
class Exposure:
    image: Any
    wcs: Any
    extra: Any = None


class WithGetters:
    def __init__(self) -> None:
        self._psf = "psf-model"

    def getPsf(self) -> str:
        return self._psf


def test_pytype_from_dotted_name_is_lazy() -> None:
    sc = StorageClass("Arr", pytype="numpy.ndarray")
    assert sc._pytype is None
    assert sc.pytype is np.ndarray
    assert sc.validateInstance(np.zeros(2))
    assert not sc.validateInstance([1, 2])


def test_missing_optional_library_is_clear() -> None:
    sc = StorageClass("Fancy", pytype="notinstalledlib.Table")
    with pytest.raises(MissingOptionalDependencyError, match="notinstalledlib"):
        sc.validateInstance(object())
    with pytest.raises(ImportError):
        sc.pytype  # noqa: B018
    sc2 = StorageClass("Arrow2", pytype="pyarrow.NotAThing")
    with pytest.raises(StorageClassError, match="NotAThing"):
        sc2.pytype  # noqa: B018


def test_default_pytype_is_object_and_delegate_is_base() -> None:
    sc = StorageClass("Anything")
    assert sc.pytype is object
    assert sc.validateInstance(3)
    assert type(sc.delegate()) is StorageClassDelegate
    assert sc.delegate() is sc.delegate()


def test_bad_definitions() -> None:
    with pytest.raises(StorageClassError):
        StorageClass("not valid")
    with pytest.raises(StorageClassError, match="copyMode"):
        StorageClass("X", copyMode="sometimes")
    with pytest.raises(StorageClassError, match="component"):
        StorageClass("X", components={"a": "NotAStorageClass"})  # type: ignore[dict-item]
    with pytest.raises(StorageClassError):
        StorageClass("X", parameters="slice")
    bad = StorageClass("X", delegate="databutler.Config")
    with pytest.raises(StorageClassError, match="not a StorageClassDelegate"):
        bad.delegate()


def test_default_delegate_reads_attribute_getter_and_key() -> None:
    image = StorageClass("Img", pytype=list)
    sc = StorageClass("Exposure", pytype=Exposure, components={"image": image, "wcs": StorageClass("W")})
    delegate = sc.delegate()
    exposure = Exposure(image=[1, 2], wcs="tan")
    assert delegate.getComponent(exposure, "image") == [1, 2]
    assert delegate.disassemble(exposure) == {"image": [1, 2], "wcs": "tan"}
    assert delegate.assemble({"image": [3], "wcs": "sin"}) == Exposure(image=[3], wcs="sin")
    with pytest.raises(UnknownComponentError, match="nope"):
        delegate.getComponent(exposure, "nope")

    mapping = StorageClass("Dicty", pytype=dict, components={"wcs": StorageClass("W")})
    assert mapping.delegate().getComponent({"wcs": 5}, "wcs") == 5

    getters = StorageClass("Getters", pytype=WithGetters, components={"psf": StorageClass("P")})
    assert getters.delegate().getComponent(WithGetters(), "psf") == "psf-model"
    with pytest.raises(UnknownComponentError, match="psf"):
        getters.delegate().getComponent(object(), "psf")


def test_unknown_parameter_names_it_and_the_accepted_ones() -> None:
    factory = StorageClassFactory.fromDefaults()
    delegate = factory.getStorageClass("NumpyArray").delegate()
    with pytest.raises(InvalidParameterError, match=r"colour.*accepted: slice"):
        delegate.handleParameters(np.zeros(3), {"colour": "red"})
    with pytest.raises(InvalidParameterError, match="mapping"):
        delegate.handleParameters(np.zeros(3), ["slice"])  # type: ignore[arg-type]
    np.testing.assert_array_equal(delegate.handleParameters(np.arange(5), {"slice": "1:3"}), [1, 2])
    np.testing.assert_array_equal(delegate.handleParameters(np.arange(5), {"slice": [0, 4, 2]}), [0, 2])
    with pytest.raises(InvalidParameterError):
        delegate.handleParameters(np.arange(5), {"slice": 2.5})
    # A declared parameter whose delegate does not implement it is an error, not ignored.
    undeclared = StorageClass("P", parameters=["zoom"])
    with pytest.raises(InvalidParameterError, match="does not implement"):
        undeclared.delegate().handleParameters([1], {"zoom": 2})


def test_table_column_parameters() -> None:
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    table_mod = pytest.importorskip("astropy.table")
    factory = StorageClassFactory.fromDefaults()
    frame = pd.DataFrame({"a": [1], "b": [2]})
    table = pa.table({"a": [1], "b": [2]})
    astro = table_mod.Table({"a": [1], "b": [2]})
    for name, obj in [("DataFrame", frame), ("ArrowTable", table), ("AstropyTable", astro)]:
        delegate = factory.getStorageClass(name).delegate()
        assert delegate.getSize(obj) > 0
        with pytest.raises(InvalidParameterError, match=r"\['zz'\]"):
            delegate.handleParameters(obj, {"columns": ["zz"]})
        with pytest.raises(InvalidParameterError, match="list of names"):
            delegate.handleParameters(obj, {"columns": [1]})
        subset = delegate.handleParameters(obj, {"columns": "b"})
        assert len(subset) == 1


def test_factory_register_lookup_and_conflicts() -> None:
    factory = StorageClassFactory()
    sc = StorageClass("Thing", pytype=dict)
    factory.registerStorageClass(sc)
    factory.registerStorageClass(StorageClass("Thing", pytype=dict))  # identical: no-op
    assert "Thing" in factory and sc in factory
    assert factory.getStorageClass("Thing") is sc
    with pytest.raises(StorageClassConflictError, match="Thing"):
        factory.registerStorageClass(StorageClass("Thing", pytype=list))
    with pytest.raises(UnknownStorageClassError, match=r"Nope.*known: Thing"):
        factory.getStorageClass("Nope")
    with pytest.raises(KeyError):
        factory.getStorageClass("Nope")
    factory.registerStorageClass(StorageClass("Thing", pytype=list), replace=True)
    assert factory.getStorageClass("Thing").pytype is list


def test_packaged_storage_classes() -> None:
    factory = StorageClassFactory.fromDefaults()
    for name in [
        "StructuredDataDict",
        "StructuredDataList",
        "NumpyArray",
        "ArrowTable",
        "DataFrame",
        "AstropyTable",
        "MaskedImage",
    ]:
        assert name in factory
    assert factory.getStorageClass("StructuredDataList").parameters == {"slice"}
    assert factory.getStorageClass("NumpyArray").parameters == {"slice"}
    for name in ["ArrowTable", "DataFrame", "AstropyTable"]:
        assert factory.getStorageClass(name).parameters == {"columns"}
    composite = factory.getStorageClass("MaskedImage")
    assert composite.isComposite()
    assert composite.components["image"] is factory.getStorageClass("NumpyArray")


def test_addFromConfig_yaml(tmp_path: Path) -> None:
    path = tmp_path / "sc.yaml"
    path.write_text(
        "storageClasses:\n"
        "  Calexp:\n"
        "    pytype: dict\n"
        "    components: {image: Pixels, meta: StructuredDataDict}\n"
        "  Pixels: numpy.ndarray\n"
    )
    factory = StorageClassFactory.fromDefaults()
    factory.addFromConfig(path)
    assert factory.getStorageClass("Calexp").components["image"] is factory.getStorageClass("Pixels")
    bad = tmp_path / "bad.yaml"
    bad.write_text("storageClasses:\n  Broken:\n    components: {x: Undefined}\n")
    with pytest.raises(StorageClassError, match=r"Broken.*Undefined"):
        factory.addFromConfig(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("storageClasses:\n  Typo:\n    pytpe: dict\n")
    with pytest.raises(StorageClassError, match="pytpe"):
        factory.addFromConfig(typo)
    loop = tmp_path / "loop.yaml"
    loop.write_text("storageClasses:\n  A: {components: {b: B}}\n  B: {components: {a: A}}\n")
    with pytest.raises(StorageClassError, match="contains itself"):
        factory.addFromConfig(loop)


def test_sizes_are_estimated() -> None:
    delegate = StorageClass("D", pytype=dict).delegate()
    small = delegate.getSize({"a": 1})
    big = delegate.getSize({"a": list(range(1000))})
    assert big > small + 8000
    arr = np.zeros(1000)
    assert StorageClassFactory.fromDefaults().getStorageClass("NumpyArray").delegate().getSize(arr) >= 8000
    # Bounded: a huge container is not walked forever.
    huge = [[i] for i in range(100_000)]
    assert delegate.getSize(huge) > 0
