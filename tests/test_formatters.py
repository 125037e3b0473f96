"""Each formatter on its own: round trips, pushed-down parameters and the errors it raises."""

from __future__ import annotations

import dataclasses
import io
from collections import namedtuple
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from astropy.table import Table

from databutler import (
    ConfigError,
    DatasetTypeMismatchError,
    FitsFormatter,
    Formatter,
    FormatterError,
    InvalidParameterError,
    JsonFormatter,
    NpyFormatter,
    ParquetFormatter,
    PickleFormatter,
    StorageClass,
    StorageClassFactory,
    YamlFormatter,
)
from databutler.formatters import fromPlain, toPlain

FACTORY = StorageClassFactory.fromDefaults()


def sc(name: str) -> StorageClass:
    return FACTORY.getStorageClass(name)


def roundTrip(
    formatter: Formatter, obj: Any, storageClass: StorageClass, parameters: Any = None
) -> tuple[Any, Any]:
    """Write, then read back both from a buffer and from a stream."""
    stream = io.BytesIO()
    formatter.write(obj, stream, storageClass)
    data = stream.getvalue()
    fromBuffer = formatter.readBuffer(memoryview(bytearray(data)), storageClass, parameters or {})
    fromStream = formatter.readStream(io.BytesIO(data), storageClass, parameters or {})
    return fromBuffer, fromStream


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Exported:
    def __init__(self, value: int) -> None:
        self.value = value

    def toDict(self) -> dict[str, int]:
        return {"value": self.value}

    @classmethod
    def fromDict(cls, data: Mapping[str, int]) -> Exported:
        return cls(data["value"])


Pair = namedtuple("Pair", ["a", "b"])


@pytest.mark.parametrize("formatter", [JsonFormatter(), YamlFormatter()])
def test_text_formats_round_trip_plain_data(formatter: Formatter) -> None:
    data = {"a": 1, "b": [1.5, None, True], "c": {"d": "ünïcode"}}
    assert roundTrip(formatter, data, sc("StructuredDataDict")) == (data, data)
    assert roundTrip(formatter, [1, 2, 3], sc("StructuredDataList")) == ([1, 2, 3], [1, 2, 3])
    assert roundTrip(formatter, (1, 2), sc("Tuple")) == ((1, 2), (1, 2))
    assert roundTrip(formatter, "text", sc("String")) == ("text", "text")
    assert roundTrip(formatter, 7, sc("Integer")) == (7, 7)
    assert roundTrip(formatter, 2.0, sc("Float")) == (2.0, 2.0)


@pytest.mark.parametrize("formatter", [JsonFormatter(), YamlFormatter()])
def test_text_formats_round_trip_objects_that_export_a_dict(formatter: Formatter) -> None:
    pointClass = StorageClass("Point", pytype=Point)
    got, _ = roundTrip(formatter, Point(1.0, 2.0), pointClass)
    assert got == Point(1.0, 2.0)
    exportedClass = StorageClass("Exported", pytype=Exported)
    got, _ = roundTrip(formatter, Exported(3), exportedClass)
    assert isinstance(got, Exported) and got.value == 3
    pairClass = StorageClass("Pair", pytype=Pair)
    assert roundTrip(formatter, Pair(1, 2), pairClass)[0] == Pair(1, 2)
    with pytest.raises(DatasetTypeMismatchError, match="toDict"):
        formatter.write(object(), io.BytesIO(), sc("Object"))


def test_json_refuses_what_it_would_change() -> None:
    with pytest.raises(DatasetTypeMismatchError, match=r"key 1 \(int\)"):
        JsonFormatter().write({"a": {1: "x"}}, io.BytesIO(), sc("StructuredDataDict"))
    with pytest.raises(DatasetTypeMismatchError, match="key"):
        JsonFormatter().write([{(1, 2): 3}], io.BytesIO(), sc("StructuredDataList"))
    with pytest.raises(DatasetTypeMismatchError, match=r"tuple at \['shape'\]"):
        JsonFormatter().write({"shape": (4, 4)}, io.BytesIO(), sc("StructuredDataDict"))
    with pytest.raises(DatasetTypeMismatchError, match=r"tuple at \[1\]"):
        JsonFormatter().write((1, (2, 3)), io.BytesIO(), sc("Tuple"))
    with pytest.raises(TypeError):
        JsonFormatter().write({"a": {1, 2}}, io.BytesIO(), sc("StructuredDataDict"))


def test_yaml_keeps_int_keys_and_never_builds_objects() -> None:
    data = {1: "one", "nested": {2: [3]}}
    assert roundTrip(YamlFormatter(), data, sc("StructuredDataDict"))[0] == data
    with pytest.raises(DatasetTypeMismatchError, match="YAML would read the tuple"):
        YamlFormatter().write({"a": [(1, 2)]}, io.BytesIO(), sc("StructuredDataDict"))
    hostile = b"!!python/object/apply:os.system ['echo owned']"
    with pytest.raises(Exception, match="constructor"):
        YamlFormatter().readBuffer(memoryview(bytearray(hostile)), sc("StructuredDataDict"), {})


def test_fromPlain_errors() -> None:
    with pytest.raises(DatasetTypeMismatchError, match="StructuredDataDict"):
        fromPlain([1, 2], sc("StructuredDataDict"))
    with pytest.raises(DatasetTypeMismatchError, match="Point"):
        fromPlain({"z": 1}, StorageClass("Point", pytype=Point))
    assert fromPlain(3, sc("Float")) == 3.0 and isinstance(fromPlain(3, sc("Float")), float)
    assert toPlain((1, 2)) == [1, 2]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24.0).reshape(2, 3, 4),
        np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
        np.arange(20)[::3],
        np.array(5.0),
        np.zeros((0, 3), dtype=np.float32),
        np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", ">f8")]),
        np.array(["ab", "c"]),
    ],
)
def test_npy_round_trips(array: np.ndarray) -> None:
    fromBuffer, fromStream = roundTrip(NpyFormatter(), array, sc("NumpyArray"))
    for got in (fromBuffer, fromStream):
        np.testing.assert_array_equal(got, array)
        assert got.dtype == array.dtype and got.shape == array.shape
    assert fromBuffer.flags.writeable


def test_npy_files_are_what_numpy_writes() -> None:
    array = np.arange(12.0).reshape(3, 4)
    stream = io.BytesIO()
    NpyFormatter().write(array, stream, sc("NumpyArray"))
    reference = io.BytesIO()
    np.save(reference, array)
    assert stream.getvalue() == reference.getvalue()


def test_npy_errors() -> None:
    with pytest.raises(DatasetTypeMismatchError, match="object"):
        NpyFormatter().write(np.array([None, 1]), io.BytesIO(), sc("NumpyArray"))
    stream = io.BytesIO()
    np.save(stream, np.array([None, 1]), allow_pickle=True)
    with pytest.raises(DatasetTypeMismatchError, match="pickle"):
        NpyFormatter().readBuffer(memoryview(bytearray(stream.getvalue())), sc("NumpyArray"), {})
    stream = io.BytesIO()
    np.save(stream, np.arange(10.0))
    with pytest.raises(ValueError, match="header promises"):
        NpyFormatter().readBuffer(memoryview(bytearray(stream.getvalue()[:-8])), sc("NumpyArray"), {})
    with pytest.raises(ValueError):
        NpyFormatter().readBuffer(memoryview(bytearray(b"not numpy at all")), sc("NumpyArray"), {})


def test_parquet_arrow_tables_and_columns() -> None:
    table = pa.table({"ra": [1.0, 2.0], "dec": [3.0, 4.0], "flux": [5.0, 6.0]})
    for got in roundTrip(ParquetFormatter(), table, sc("ArrowTable")):
        assert got.equals(table) and got.schema.metadata is None
    for got in roundTrip(ParquetFormatter(), table, sc("ArrowTable"), {"columns": ["flux", "ra"]}):
        assert got.column_names == ["flux", "ra"]
    for got in roundTrip(ParquetFormatter(), table, sc("ArrowTable"), {"columns": "dec"}):
        assert got.column_names == ["dec"]
    for bad in (["nope"], 3, [1]):
        with pytest.raises(InvalidParameterError, match="columns"):
            roundTrip(ParquetFormatter(), table, sc("ArrowTable"), {"columns": bad})


def test_parquet_dataframes_keep_their_index() -> None:
    frame = pd.DataFrame({"ra": [1.0, 2.0], "band": ["g", "r"]}, index=pd.Index([10, 20], name="id"))
    for got in roundTrip(ParquetFormatter(), frame, sc("DataFrame")):
        pd.testing.assert_frame_equal(got, frame)
    for got in roundTrip(ParquetFormatter(), frame, sc("DataFrame"), {"columns": ["band"]}):
        pd.testing.assert_frame_equal(got, frame[["band"]])
    with pytest.raises(InvalidParameterError, match="id"):
        roundTrip(
            ParquetFormatter(), frame, sc("DataFrame"), {"columns": ["id"]}
        )  # the index is not a column
    with pytest.raises(DatasetTypeMismatchError, match="ParquetFormatter"):
        ParquetFormatter().write({"a": [1]}, io.BytesIO(), sc("StructuredDataDict"))
    with pytest.raises(pa.ArrowInvalid):
        ParquetFormatter().readBuffer(memoryview(bytearray(b"PAR1 nonsense")), sc("ArrowTable"), {})


def test_fits_tables_keep_units_and_metadata() -> None:
    table = Table({"ra": [1.0, 2.0], "name": ["a", "b"]}, meta={"EXPTIME": 30.0})
    table["ra"].unit = "deg"
    for got in roundTrip(FitsFormatter(), table, sc("AstropyTable")):
        assert list(got["ra"]) == [1.0, 2.0] and list(got["name"]) == ["a", "b"]
        assert str(got["ra"].unit) == "deg" and got.meta["EXPTIME"] == 30.0


def test_fits_images_come_back_in_native_byte_order() -> None:
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    for got in roundTrip(FitsFormatter(), image, sc("NumpyArray")):
        np.testing.assert_array_equal(got, image)
        assert got.dtype == np.float32 and got.dtype.isnative


def test_fits_errors() -> None:
    with pytest.raises(DatasetTypeMismatchError, match="FitsFormatter"):
        FitsFormatter().write({"a": 1}, io.BytesIO(), sc("StructuredDataDict"))
    with pytest.raises(DatasetTypeMismatchError, match="object"):
        FitsFormatter().write(np.array([None]), io.BytesIO(), sc("NumpyArray"))
    image = io.BytesIO()
    FitsFormatter().write(np.zeros(3), image, sc("NumpyArray"))
    with pytest.raises(ValueError, match="no table"):
        FitsFormatter().readBuffer(memoryview(bytearray(image.getvalue())), sc("AstropyTable"), {})
    table = io.BytesIO()
    FitsFormatter().write(Table({"a": [1]}), table, sc("AstropyTable"))
    with pytest.raises(ValueError, match="no primary image"):
        FitsFormatter().readBuffer(memoryview(bytearray(table.getvalue())), sc("NumpyArray"), {})
    with pytest.raises(OSError):
        FitsFormatter().readBuffer(memoryview(bytearray(b"SIMPLE nonsense")), sc("NumpyArray"), {})


def test_pickle_round_trips_anything() -> None:
    obj = {"point": Point(1, 2), "set": {1, 2}, "complex": 1j}
    assert roundTrip(PickleFormatter(), obj, sc("Object")) == (obj, obj)


def test_formatter_needs_a_read_method() -> None:
    class WriteOnly(Formatter):
        def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
            stream.write(b"x")

    with pytest.raises(NotImplementedError, match="neither"):
        WriteOnly().readBuffer(memoryview(b"x"), sc("Bytes"), {})
    with pytest.raises(NotImplementedError, match="neither"):
        WriteOnly().readStream(io.BytesIO(b"x"), sc("Bytes"), {})
    assert WriteOnly().name.endswith("WriteOnly") and repr(WriteOnly()) == "WriteOnly()"


def test_file_formats_by_extension_come_from_config() -> None:
    from databutler.formatters.extensions import FormatterRegistry

    formats = FormatterRegistry.fromDefaults()
    assert formats.extensions == (".json", ".yaml", ".yml", ".npy", ".parquet", ".fits")
    assert isinstance(formats.formatterFor("a/B.PARQUET"), ParquetFormatter)
    assert formats.formatterFor("x.yml") is formats.formatterFor("y.yaml")
    with pytest.raises(FormatterError, match=r"'\.txt' is not one of \.json.*fileFormats\.yaml"):
        formats.formatterFor("notes.txt")
    with pytest.raises(ConfigError, match="not a Formatter"):
        FormatterRegistry({"txt": "databutler.storage_class.StorageClass"}).formatterFor("a.txt")


class TextFormatter(Formatter):
    """A format added by one module and one config line."""

    extension = ".txt"

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Write the text as UTF-8."""
        stream.write(inMemoryDataset.encode())

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        """Read UTF-8 text."""
        return bytes(buffer).decode()


def test_a_new_file_format_is_one_module_and_one_config_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from databutler.script import files

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "fileFormats.yaml").write_text(f"fileFormats:\n  txt: {__name__}.TextFormatter\n")
    monkeypatch.setenv("DATABUTLER_CONFIG_PATH", str(configs))
    files.fileFormats.cache_clear()
    try:
        written = files.writeDataFile("hello", tmp_path / "note.txt")
        assert written.read_text() == "hello"
        assert files.readDataFile(written, sc("String")) == "hello"
        assert ".txt" in files.fileFormats().extensions and ".json" in files.fileFormats().extensions
    finally:
        files.fileFormats.cache_clear()
