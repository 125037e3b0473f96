"""What is put comes back exactly, or is refused at put: on every tier, for every storage class.

Round-trip properties (Hypothesis) per storage class through a memory-only repository, a
file-only repository and the default chain read back by a new Butler (its memory tier empty,
so the file tier answers); then one regression test per corruption or hang that was found.
"""

from __future__ import annotations

import enum
import io
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from astropy.table import Column, MaskedColumn, Table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from databutler import (
    Butler,
    ConflictingDatasetError,
    DatasetRef,
    DatasetTypeMismatchError,
    Formatter,
    JsonFormatter,
    MaskedImage,
    StorageClass,
    StorageClassFactory,
    UnstorableDatasetError,
    YamlFormatter,
)
from databutler.formatters.base import MAX_PLAIN_DEPTH, isPrevalidated

MEMORY = {"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore", "name": "mem"}}
FILE = {
    "datastore": {"cls": "databutler.datastores.file.FileDatastore", "name": "file", "root": "<butlerRoot>"}
}
STORAGE_CLASSES = (
    "StructuredDataDict",
    "StructuredDataList",
    "Tuple",
    "String",
    "Integer",
    "Float",
    "NumpyArray",
    "ArrowTable",
    "DataFrame",
    "AstropyTable",
    "MaskedImage",
)
FACTORY = StorageClassFactory.fromDefaults()
REFUSALS = (UnstorableDatasetError, DatasetTypeMismatchError)


# -- exact comparison -------------------------------------------------------------------------


def sameArray(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.dtype.kind in "mM":  # datetime64 / timedelta64: bit for bit, so NaT must stay NaT
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
        return
    assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


def samePlain(a: Any, b: Any) -> None:
    """Equal and of the same types all the way down; NaN equals NaN."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            samePlain(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            samePlain(x, y)
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b


def sameFrame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert type(a) is type(b)
    pd.testing.assert_frame_equal(a, b, check_exact=True, check_column_type=True, check_index_type=True)
    assert list(a.dtypes) == list(b.dtypes) and a.attrs == b.attrs
    for label in a.columns:
        if a[label].dtype == object:
            assert [type(v) for v in a[label]] == [type(v) for v in b[label]]


def sameAstropy(a: Table, b: Table) -> None:
    assert type(a) is type(b) and a.colnames == b.colnames
    samePlain(dict(a.meta), dict(b.meta))
    for name in a.colnames:
        x, y = a[name], b[name]
        assert type(x) is type(y) and x.dtype == y.dtype and x.shape == y.shape
        assert (x.unit, x.description, x.format, dict(x.meta)) == (
            y.unit,
            y.description,
            y.format,
            dict(y.meta),
        )
        if isinstance(x, MaskedColumn):  # what is under a mask is not data
            assert np.array_equal(x.mask, y.mask)
            x, y = x[~x.mask], y[~y.mask]
        sameArray(np.asarray(x.data), np.asarray(y.data))


def assertSame(a: Any, b: Any) -> None:
    if isinstance(a, np.ndarray):
        sameArray(a, b)
    elif isinstance(a, pa.Table):
        assert type(b) is pa.Table and a.schema.equals(b.schema, check_metadata=True)
        samePlain(a.to_pylist(), b.to_pylist())  # NaN-aware, unlike Table.equals
    elif isinstance(a, pd.DataFrame):
        sameFrame(a, b)
    elif isinstance(a, Table):
        sameAstropy(a, b)
    elif isinstance(a, MaskedImage):
        assert type(b) is MaskedImage
        sameArray(a.image, b.image)
        sameArray(a.mask, b.mask)
        samePlain(a.metadata, b.metadata)
    else:
        samePlain(a, b)


# -- the tiers --------------------------------------------------------------------------------


class Tiers:
    """Three repositories: memory only, file only, and the default chain read by a second Butler."""

    def __init__(
        self,
        root: Path,
        configs: Iterable[tuple[str, Mapping[str, Any] | None]] = (
            ("memory", MEMORY),
            ("file", FILE),
            ("chain", None),
        ),
        storageClasses: Iterable[str] = STORAGE_CLASSES,
    ) -> None:
        self.writers: dict[str, Butler] = {}
        self.readers: dict[str, Butler] = {}
        for name, config in configs:
            Butler.makeRepo(root / name, config)
            writer = Butler(root / name, run="run")
            for scName in storageClasses:
                writer.registerDatasetType(scName.lower(), ("exposure",), scName)
            self.writers[name] = writer
            # The chain is read by a new Butler: its memory tier is empty, so the file tier answers.
            self.readers[name] = Butler(root / name) if name == "chain" else writer
        self.count = 0

    def close(self) -> None:
        for butler in {id(b): b for b in [*self.writers.values(), *self.readers.values()]}.values():
            butler.close()

    def roundTrips(self, obj: Any, storageClass: str) -> dict[str, Any]:
        """Put ``obj`` in every tier; return what each gives back, or the refusal it raised."""
        self.count += 1
        out: dict[str, Any] = {}
        for name, writer in self.writers.items():
            try:
                ref = writer.put(obj, storageClass.lower(), exposure=self.count)
            except REFUSALS as exc:
                out[name] = exc
                assert not writer.registry.queryDatasets(
                    storageClass.lower(), where={"exposure": self.count}
                ), "a refused put left a registered dataset"
                continue
            out[name] = self.readers[name].get(ref)
        return out

    def check(self, obj: Any, storageClass: str) -> dict[str, Any]:
        """Every tier gives ``obj`` back exactly or refuses it; a storage class refusal is everywhere."""
        results = self.roundTrips(obj, storageClass)
        for name, result in results.items():
            if isinstance(result, Exception):
                continue
            try:
                assertSame(obj, result)
            except AssertionError as exc:
                raise AssertionError(
                    f"tier {name!r} changed the {storageClass}: {obj!r} -> {result!r}"
                ) from exc
        if isinstance(results["memory"], Exception):  # refused by the storage class: by every tier
            assert all(isinstance(r, Exception) for r in results.values()), results
        return results


@pytest.fixture(scope="module")
def tiers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiers]:
    t = Tiers(tmp_path_factory.mktemp("faithful"))
    yield t
    t.close()


PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies -------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
keys = st.text(max_size=6) | st.integers(-5, 5)
plain = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4) | st.tuples(inner, inner)
    ),
    max_leaves=12,
)
dtypes = (
    hnp.boolean_dtypes()
    | hnp.integer_dtypes(endianness="=")
    | hnp.unsigned_integer_dtypes(endianness="=")
    | hnp.floating_dtypes(endianness="=")
    | hnp.integer_dtypes(endianness=">")
    | hnp.complex_number_dtypes(endianness="=")
)
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4))
timeDtypes = hnp.datetime64_dtypes(endianness="?") | hnp.timedelta64_dtypes(endianness="?")


@st.composite
def timeArrays(draw: st.DrawFn) -> np.ndarray:
    """datetime64 / timedelta64 arrays of any unit and byte order, NaT (the smallest int64) included."""
    dtype = draw(timeDtypes)
    ints = draw(
        hnp.arrays(
            np.int64,
            hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
            elements=st.integers(-(2**63) + 1, 2**63 - 1) | st.just(-(2**63)),
        )
    )
    return ints.view(dtype.newbyteorder("=")).astype(dtype)  # same values, in the drawn byte order


columnDtypes = st.sampled_from(["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "?"])


@st.composite
def astropyTables(draw: st.DrawFn) -> Table:
    rows = draw(st.integers(0, 4))
    table = Table()
    for i in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["num", "str", "masked"]))
        if kind == "str":
            values = draw(st.lists(st.text(max_size=4), min_size=rows, max_size=rows))
            table[f"c{i}"] = Column(np.array(values, dtype="U4"))
        else:
            dtype = draw(columnDtypes)
            values = draw(hnp.arrays(dtype, rows))
            column = (
                Column(values) if kind == "num" else MaskedColumn(values, mask=draw(hnp.arrays("?", rows)))
            )
            if draw(st.booleans()):
                column.unit = draw(st.sampled_from(["m", "s", "adu"]))
            table[f"c{i}"] = column
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(["EXPTIME", "filter", "Observer", "NESTED", "LONGKEYWORD"]))
        table.meta[key] = draw(
            scalars.filter(lambda v: v is not None) | st.dictionaries(st.text(max_size=3), scalars)
        )
    return table


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(0, 4))
    data: dict[Any, Any] = {}
    for i in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["num", "str", "obj", "cat"]))
        if kind == "num":
            data[f"c{i}"] = draw(hnp.arrays(draw(columnDtypes), rows))
        elif kind == "str":
            texts = draw(st.lists(st.text(max_size=4) | st.none(), min_size=rows, max_size=rows))
            data[f"c{i}"] = pd.Series(texts, dtype=draw(st.sampled_from([object, "str"])))
        elif kind == "obj":
            data[f"c{i}"] = pd.Series(draw(st.lists(plain, min_size=rows, max_size=rows)), dtype=object)
        else:
            data[f"c{i}"] = pd.Categorical(
                draw(st.lists(st.sampled_from("abc"), min_size=rows, max_size=rows))
            )
    frame = pd.DataFrame(data)
    if draw(st.booleans()):
        frame.index = pd.Index(draw(st.lists(st.integers(-9, 9), min_size=rows, max_size=rows)), name="idx")
    return frame


SAMPLES: list[tuple[pa.DataType, Any]] = [
    (pa.int8(), -3), (pa.uint64(), 2**64 - 1), (pa.float16(), np.float16(1.5)), (pa.float64(), float("nan")),
    (pa.string(), "ü "), (pa.large_string(), "x"), (pa.bool_(), True), (pa.timestamp("s"), 1),
    (pa.timestamp("ns", tz="UTC"), 1), (pa.time32("s"), 1), (pa.date32(), 1), (pa.date64(), 86_400_000),
    (pa.list_(pa.int32()), [1]), (pa.large_list(pa.float32()), [1.5]), (pa.struct([("x", pa.int16())]), {"x": 1}),
    (pa.dictionary(pa.int8(), pa.string()), "a"), (pa.map_(pa.string(), pa.int64()), [("k", 1)]),
]  # fmt: skip


@st.composite
def arrowTables(draw: st.DrawFn) -> pa.Table:
    if draw(st.booleans()):  # a table made from pandas carries its own pandas metadata
        return pa.Table.from_pandas(pd.DataFrame({"p": [1, 2]})).append_column("q", pa.array([1, 2]))
    fields, columns = [], []
    for i in range(draw(st.integers(1, 3))):
        kind, sample = draw(st.sampled_from(SAMPLES))
        nullable = draw(st.booleans())
        fieldMeta = {"unit": "m"} if draw(st.booleans()) else None
        fields.append(pa.field(f"c{i}", kind, nullable=nullable, metadata=fieldMeta))
        values = [sample, None] if nullable else [sample, sample]
        if pa.types.is_dictionary(kind):
            columns.append(pa.array(values, pa.string()).dictionary_encode().cast(kind))
        else:
            columns.append(pa.array(values, kind))
    metadata = {b"origin": b"test"} if draw(st.booleans()) else None
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=metadata))


# -- the properties ---------------------------------------------------------------------------


@PROPERTY
@given(data=st.dictionaries(keys, plain, max_size=5))
def test_property_structured_data_dict(tiers: Tiers, data: dict[Any, Any]) -> None:
    tiers.check(data, "StructuredDataDict")


@PROPERTY
@given(data=st.lists(plain, max_size=5))
def test_property_structured_data_list(tiers: Tiers, data: list[Any]) -> None:
    tiers.check(data, "StructuredDataList")


@PROPERTY
@given(data=st.tuples(plain, plain) | st.tuples(scalars))
def test_property_tuple(tiers: Tiers, data: tuple[Any, ...]) -> None:
    tiers.check(data, "Tuple")


@PROPERTY
@given(data=st.text())
def test_property_string(tiers: Tiers, data: str) -> None:
    tiers.check(data, "String")


@PROPERTY
@given(data=st.integers(min_value=-(2**80), max_value=2**80) | st.booleans())
def test_property_integer(tiers: Tiers, data: int) -> None:
    tiers.check(data, "Integer")


@PROPERTY
@given(data=st.floats(allow_nan=True, allow_infinity=True))
def test_property_float(tiers: Tiers, data: float) -> None:
    tiers.check(data, "Float")


@PROPERTY
@given(data=arrays | timeArrays(), masked=st.booleans())
def test_property_numpy_array(tiers: Tiers, data: np.ndarray, masked: bool) -> None:
    obj = np.ma.MaskedArray(data, mask=np.zeros(data.shape, bool)) if masked else data
    results = tiers.check(obj, "NumpyArray")
    if masked:  # refused by the storage class, so by every tier
        assert all(isinstance(r, UnstorableDatasetError) for r in results.values())


@PROPERTY
@given(data=timeArrays())
def test_property_numpy_datetime_and_timedelta_are_stored_by_every_tier(
    tiers: Tiers, data: np.ndarray
) -> None:
    results = tiers.check(data, "NumpyArray")
    assert not any(isinstance(r, Exception) for r in results.values()), results


@PROPERTY
@given(data=arrowTables())
def test_property_arrow_table(tiers: Tiers, data: pa.Table) -> None:
    tiers.check(data, "ArrowTable")


@PROPERTY
@given(data=frames())
def test_property_data_frame(tiers: Tiers, data: pd.DataFrame) -> None:
    tiers.check(data, "DataFrame")


@PROPERTY
@given(data=astropyTables())
def test_property_astropy_table(tiers: Tiers, data: Table) -> None:
    tiers.check(data, "AstropyTable")


@PROPERTY
@given(image=arrays, metadata=st.dictionaries(st.text(max_size=5), plain, max_size=3))
def test_property_masked_image(tiers: Tiers, image: np.ndarray, metadata: dict[str, Any]) -> None:
    tiers.check(
        MaskedImage(image=image, mask=np.zeros(image.shape, np.int32), metadata=metadata), "MaskedImage"
    )


# -- regressions: each failed on the code before the fix ---------------------------------------


def putEverywhere(tiers: Tiers, obj: Any, storageClass: str) -> dict[str, Any]:
    return tiers.roundTrips(obj, storageClass)


def test_fits_int8_column_is_refused_not_read_back_as_bools(tiers: Tiers) -> None:
    table = Table({"flux": np.array([-5, 0, 7, -128, 127], dtype=np.int8)})
    results = tiers.check(table, "AstropyTable")
    assert isinstance(results["file"], UnstorableDatasetError) and isinstance(
        results["chain"], UnstorableDatasetError
    )
    assert "'flux'" in str(results["file"]) and "int16" in str(results["file"])


@pytest.mark.parametrize(
    "table, named",
    [
        (Table({"name": ["a ", "b"]}), "'name'"),
        (Table({"x": [1]}, meta={"NESTED": {"a": 1}}), "'NESTED'"),
        (Table({"x": [1]}, meta={"exptime": 30.0}), "'exptime'"),
        (Table({"x": [1]}, meta={"OBSERVER": "me  "}), "'OBSERVER'"),
        (Table({"x": MaskedColumn([1.5, 2.5], mask=[False, True])}), "'x'"),
    ],
)
def test_fits_refuses_what_it_would_change(tiers: Tiers, table: Table, named: str) -> None:
    results = tiers.check(table, "AstropyTable")
    assert isinstance(results["file"], UnstorableDatasetError) and named in str(results["file"])
    assertSame(table, results["memory"])


def test_fits_keeps_dtypes_byte_order_units_masks_and_flat_metadata(tiers: Tiers) -> None:
    table = Table(
        {
            "a": np.array([1, 2], dtype="<i4"),
            "b": np.array([1.5, np.nan], dtype=">f8"),
            "c": MaskedColumn(np.array([1, 2], dtype=np.int64), mask=[True, False]),
            "d": ["x", "y z"],
        },
        meta={"EXPTIME": 30.0, "FILTER": "r", "GOOD": True},
    )
    table["a"].unit = "adu"
    results = tiers.check(table, "AstropyTable")
    assert not any(isinstance(r, Exception) for r in results.values()), results


@pytest.mark.parametrize(
    "obj",
    [
        np.array(["2024-01-02T03:04:05", "NaT", "1677-09-22"], dtype="datetime64[s]"),
        np.array([1, -(2**63), 2**63 - 1], dtype=">m8[ns]").reshape(3, 1),
        np.asfortranarray(np.array([["NaT", "2000"], ["1970", "NaT"]], dtype="M8[D]")),
    ],
)
def test_numpy_datetime_and_timedelta_with_nat_round_trip_in_every_tier(tiers: Tiers, obj: Any) -> None:
    results = tiers.check(obj, "NumpyArray")  # failed: the npy formatter raised FormatterError
    assert not any(isinstance(r, Exception) for r in results.values()), results
    assert np.isnat(results["chain"]).any()


@pytest.mark.parametrize("obj", [np.ma.MaskedArray([1.0, 2.0], mask=[False, True]), np.matrix([[1, 2]])])
def test_array_subclasses_are_refused_by_every_tier(tiers: Tiers, obj: Any) -> None:
    results = putEverywhere(tiers, obj, "NumpyArray")
    assert all(isinstance(r, UnstorableDatasetError) for r in results.values()), results


def test_masked_array_is_refused_after_a_plain_array_of_the_same_type(tmp_path: Path) -> None:
    Butler.makeRepo(tmp_path, MEMORY)
    with Butler(tmp_path, run="run") as butler:
        butler.registerDatasetType("flat", ("exposure",), "NumpyArray")
        butler.put(np.arange(3.0), "flat", exposure=1)  # the in-memory fast path now knows the type
        with pytest.raises(UnstorableDatasetError, match="mask"):
            butler.put(np.ma.MaskedArray([1.0], mask=[True]), "flat", exposure=2)


class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    "data, fragment",
    [
        (OrderedDict(a=1), "OrderedDict"),
        ({"a": Color.RED}, "Color"),
        ({"a": np.float64(1.5)}, "float64"),
        ({"a": [np.int64(3)]}, "int64"),
        ({"a": "\ud800"}, "surrogate"),
        ({"a": (1, 2)}, "tuple"),
        ({"\x85": 1}, "NEL"),
    ],
)
@pytest.mark.parametrize("formatter", [JsonFormatter(), YamlFormatter()])
def test_text_formats_refuse_values_they_would_change(formatter: Formatter, data: Any, fragment: str) -> None:
    if fragment == "NEL" and isinstance(formatter, JsonFormatter):
        stream = io.BytesIO()  # JSON keeps it
        formatter.write(data, stream, FACTORY.getStorageClass("StructuredDataDict"))
        assert (
            formatter.readBuffer(
                memoryview(bytearray(stream.getvalue())), FACTORY.getStorageClass("StructuredDataDict"), {}
            )
            == data
        )
        return
    with pytest.raises(UnstorableDatasetError, match=fragment):
        formatter.validate(data, FACTORY.getStorageClass("StructuredDataDict"))


def _inThread(func: Any, timeout: float = 20.0) -> BaseException | None:
    """Run ``func`` in a daemon thread; return what it raised. Fails if it is still running."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            func()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert outcome, f"still running after {timeout} s: it hangs"
    return outcome[0]


def test_a_dict_that_contains_itself_is_refused_at_once(tmp_path: Path) -> None:
    Butler.makeRepo(tmp_path)
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    with Butler(tmp_path, run="run") as butler, Butler(tmp_path, run="other") as other:
        butler.registerDatasetType("metrics", ("exposure",), "StructuredDataDict")
        error = _inThread(lambda: butler.put(cyclic, "metrics", exposure=1))
        assert isinstance(error, UnstorableDatasetError) and "contains itself" in str(error)
        other.put({"fine": True}, "metrics", exposure=1)  # the repository is not locked
        assert butler.registry.queryDatasets("metrics", collections=["run"]) == []


def test_absurd_nesting_and_exponential_sharing_are_refused_at_once() -> None:
    storageClass = FACTORY.getStorageClass("StructuredDataList")
    deep: list[Any] = []
    node = deep
    for _ in range(MAX_PLAIN_DEPTH + 5):
        node.append([])
        node = node[0]
    with pytest.raises(UnstorableDatasetError, match="nested"):
        JsonFormatter().validate(deep, storageClass)
    shared: list[Any] = [1]
    for _ in range(90):  # 2**90 values once each reference is written out
        shared = [shared, shared]
    error = _inThread(lambda: JsonFormatter().validate(shared, storageClass))
    assert isinstance(error, UnstorableDatasetError) and "values" in str(error)


class BlockingFormatter(Formatter):
    """JSON-like formatter whose validation waits until the test lets it go on."""

    extension = ".txt"
    entered = threading.Event()
    release = threading.Event()

    def validate(self, inMemoryDataset: Any, storageClass: StorageClass) -> None:
        type(self).entered.set()
        assert type(self).release.wait(20)

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        stream.write(str(inMemoryDataset).encode())

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        return bytes(buffer).decode()


def test_another_writer_is_not_blocked_while_a_put_is_validated(tmp_path: Path) -> None:
    config = {"datastore": {**FILE["datastore"], "formatters": {"slow": f"{__name__}.BlockingFormatter"}}}
    Butler.makeRepo(tmp_path, config)
    with Butler(tmp_path, run="run") as slow, Butler(tmp_path, run="fast") as fast:
        slow.registerDatasetType("slow", ("exposure",), "String")
        fast.registerDatasetType("quick", ("exposure",), "StructuredDataDict")
        BlockingFormatter.entered.clear()
        BlockingFormatter.release.clear()
        thread = threading.Thread(target=lambda: slow.put("text", "slow", exposure=1), daemon=True)
        thread.start()
        try:
            assert BlockingFormatter.entered.wait(20), "the formatter's validate was never called"
            # The slow put is being validated: the registry must not be locked for other writers.
            fast.put({"x": 1}, "quick", exposure=1)
            assert fast.get("quick", exposure=1) == {"x": 1}
        finally:
            BlockingFormatter.release.set()
            thread.join(20)
        assert slow.get("slow", exposure=1) == "text"


class EncodeBlockingFormatter(BlockingFormatter):
    """Validates at once; its write (the encoding of the file) waits until the test lets it go on."""

    def validate(self, inMemoryDataset: Any, storageClass: StorageClass) -> None:
        return None

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        type(self).entered.set()
        assert type(self).release.wait(20)
        super().write(inMemoryDataset, stream, storageClass)


def _blockingRepo(root: Path, chained: bool = False) -> None:
    formatters = {"slow": f"{__name__}.EncodeBlockingFormatter"}
    fileTier = {"datastore": {**FILE["datastore"], "formatters": formatters}}
    if chained:  # a memory tier in front: the chain has its file child encode before the lock too
        children = [MEMORY, fileTier]
        fileTier = {
            "datastore": {"cls": "databutler.datastores.chained.ChainedDatastore", "datastores": children}
        }
    Butler.makeRepo(root, fileTier)


def _hidden(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(".*") if p.is_file())


@pytest.mark.parametrize(
    "verb, chained",
    [("put", False), ("putMany", False), ("put of a ref", False), ("put", True), ("putMany", True)],
)
def test_the_registry_is_not_locked_while_a_put_encodes_its_file(
    tmp_path: Path, verb: str, chained: bool
) -> None:
    import sqlite3

    _blockingRepo(tmp_path, chained)
    with Butler(tmp_path, run="run") as butler:
        butler.registerDatasetType("slow", ("exposure",), "String")
        ref = DatasetRef(butler.getDatasetType("slow"), {"exposure": 1}, run="run")
        doIt = {
            "put": lambda: butler.put("text", "slow", exposure=1),
            "putMany": lambda: butler.putMany([("text", "slow", {"exposure": 1})]),
            "put of a ref": lambda: butler.put("text", ref),
        }[verb]
        EncodeBlockingFormatter.entered.clear()
        EncodeBlockingFormatter.release.clear()
        failures: list[BaseException] = []

        def run() -> None:
            try:
                doIt()
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            assert EncodeBlockingFormatter.entered.wait(20), "the formatter's write was never called"
            # The put is encoding its file: another connection takes the registry's write lock
            # at once (it waited for the busy timeout, then failed, while the put held it).
            other = sqlite3.connect(tmp_path / "registry.sqlite3", timeout=0.5, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
            finally:
                other.close()
        finally:
            EncodeBlockingFormatter.release.set()
            thread.join(20)
        assert not failures, failures
        assert butler.get("slow", exposure=1) == "text"
        (stored,) = butler.registry.queryDatasets("slow", collections="run")
        assert butler.datastore.verify(stored)
        assert _hidden(tmp_path) == []  # the temporary file was renamed into place


def test_an_encoded_put_that_the_registry_refuses_leaves_no_file(tmp_path: Path) -> None:
    _blockingRepo(tmp_path)
    EncodeBlockingFormatter.release.set()
    with Butler(tmp_path, run="run") as butler:
        butler.registerDatasetType("slow", ("exposure",), "String")
        butler.put("one", "slow", exposure=1)
        with pytest.raises(ConflictingDatasetError):
            butler.put("two", "slow", exposure=1)  # encoded first, then refused by the registry
        with pytest.raises(ConflictingDatasetError):
            butler.putMany([("three", "slow", {"exposure": 2}), ("four", "slow", {"exposure": 1})])
        with pytest.raises(RuntimeError, match="undo"), butler.transaction():
            butler.put("five", "slow", exposure=3)
            raise RuntimeError("undo")
        with butler.transaction():  # a put inside an open transaction still encodes and renames
            butler.put("six", "slow", exposure=4)
        assert _hidden(tmp_path) == []
        assert [butler.get("slow", exposure=e) for e in (1, 4)] == ["one", "six"]
        assert butler.datastore.findOrphanFiles() == []
        assert len(list(tmp_path.rglob("*.txt"))) == 2


def test_parquet_keeps_an_arrow_tables_own_pandas_metadata_and_list_field_names(tiers: Tiers) -> None:
    table = pa.Table.from_pandas(pd.DataFrame({"a": [1, 2]})).append_column(
        "b", pa.array([[1], [2]], pa.large_list(pa.int64()))
    )
    results = tiers.check(table, "ArrowTable")
    assert not any(isinstance(r, Exception) for r in results.values()), results


@pytest.mark.parametrize(
    "obj, storageClass, fragment",
    [
        (pa.table({"t": pa.array([1], pa.time32("s"))}), "ArrowTable", "time32"),
        (pa.table({"d": pa.array([0], pa.date64())}), "ArrowTable", "date64"),
        (pd.DataFrame({"cells": [[1], [2]]}), "DataFrame", "'cells'"),
        (pd.DataFrame({"s": pd.Series(["a", float("nan")], dtype=object)}), "DataFrame", "'s'"),
    ],
)
def test_parquet_refuses_what_it_would_change(
    tiers: Tiers, obj: Any, storageClass: str, fragment: str
) -> None:
    results = tiers.check(obj, storageClass)
    assert isinstance(results["file"], UnstorableDatasetError) and fragment in str(results["file"])


def test_a_refused_component_leaves_nothing_behind(tiers: Tiers) -> None:
    image = MaskedImage(image=np.zeros(2), mask=np.zeros(2, np.int32), metadata={"k": (1, 2)})
    results = tiers.check(image, "MaskedImage")
    assert isinstance(results["file"], UnstorableDatasetError) and "tuple" in str(results["file"])


def test_fits_image_round_trips_and_refuses_bool(tmp_path: Path) -> None:
    from databutler.formatters.fits import FitsFormatter

    storageClass = FACTORY.getStorageClass("NumpyArray")
    for array in (np.arange(6, dtype=np.int8).reshape(2, 3), np.arange(3, dtype=">f4")):
        stream = io.BytesIO()
        FitsFormatter().write(array, stream, storageClass)
        sameArray(
            array, FitsFormatter().readBuffer(memoryview(bytearray(stream.getvalue())), storageClass, {})
        )
    with pytest.raises(UnstorableDatasetError):
        FitsFormatter().validate(np.array([True, False]), storageClass)


class CountingFormatter(Formatter):
    """Text formatter that counts its validations."""

    extension = ".txt"
    calls = 0

    def validate(self, inMemoryDataset: Any, storageClass: StorageClass) -> None:
        """Count, and refuse text with a NUL."""
        type(self).calls += 1
        if "\0" in inMemoryDataset:
            raise UnstorableDatasetError("no NUL")

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Validate unless the caller just did, then write UTF-8."""
        if not isPrevalidated(inMemoryDataset):
            self.validate(inMemoryDataset, storageClass)
        stream.write(inMemoryDataset.encode())

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        """Read UTF-8 text."""
        return bytes(buffer).decode()


def test_a_butler_put_validates_once_and_a_direct_write_validates_itself(tmp_path: Path) -> None:
    config = {"datastore": {**FILE["datastore"], "formatters": {"note": f"{__name__}.CountingFormatter"}}}
    Butler.makeRepo(tmp_path, config)
    with Butler(tmp_path, run="run") as butler:
        butler.registerDatasetType("note", ("exposure",), "String")
        CountingFormatter.calls = 0
        butler.put("text", "note", exposure=1)
        assert CountingFormatter.calls == 1
        with pytest.raises(UnstorableDatasetError):
            butler.put("a\0b", "note", exposure=2)
        assert butler.registry.queryDatasets("note", collections=["run"], where={"exposure": 2}) == []
    CountingFormatter.calls = 0
    CountingFormatter().write("text", io.BytesIO(), FACTORY.getStorageClass("String"))
    assert CountingFormatter.calls == 1


def test_a_chain_refuses_before_any_child_stores_or_tells_the_registry(tmp_path: Path) -> None:
    from databutler import ChainedDatastore, InMemoryLocationRegistry
    from databutler.testing import makeRef

    class RecordingRegistry(InMemoryLocationRegistry):
        def __init__(self) -> None:
            super().__init__()
            self.added: list[str] = []

        def addDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
            refs = list(refs)
            self.added.append(datastoreName)
            super().addDatasetLocations(datastoreName, refs)

    registry = RecordingRegistry()
    children = [
        {"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore", "name": "memory"}},
        {
            "datastore": {
                "cls": "databutler.datastores.file.FileDatastore",
                "name": "file",
                "root": str(tmp_path),
            }
        },
    ]
    chain = ChainedDatastore(
        {"datastore": {"cls": "databutler.ChainedDatastore", "name": "chain", "datastores": children}},
        registry=registry,
    )
    ref = makeRef("catalog", "AstropyTable")
    with pytest.raises(UnstorableDatasetError, match="int8"):
        chain.put(Table({"flux": np.array([-5, 7], dtype=np.int8)}), ref)
    # Refused before any child stored it: the registry was never told (not told, then untold).
    assert registry.added == [] and not chain.datastores[0].exists(ref) and not chain.exists(ref)
    chain.put(Table({"flux": np.array([-5, 7], dtype=np.int16)}), ref)
    assert chain.get(ref)["flux"].tolist() == [-5, 7] and registry.added == ["chain"]


# Bytes and Object have no default file format (pickle is never a default): tiers with pickle.
PICKLED = {
    "Bytes": "databutler.formatters.pickle.PickleFormatter",
    "Object": "databutler.formatters.pickle.PickleFormatter",
}
PICKLE_FILE = {"datastore": {**FILE["datastore"], "formatters": PICKLED}}
PICKLE_CHAIN = {
    "datastore": {
        "cls": "databutler.datastores.chained.ChainedDatastore",
        "datastores": [MEMORY, PICKLE_FILE],
    }
}


@pytest.fixture(scope="module")
def pickleTiers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiers]:
    configs = (("memory", MEMORY), ("file", PICKLE_FILE), ("chain", PICKLE_CHAIN))
    t = Tiers(tmp_path_factory.mktemp("pickled"), configs, PICKLED)
    yield t
    t.close()


@PROPERTY
@given(data=st.binary(max_size=64))
def test_property_bytes(pickleTiers: Tiers, data: bytes) -> None:
    results = pickleTiers.check(data, "Bytes")
    assert not any(isinstance(r, Exception) for r in results.values()), results


@PROPERTY
@given(data=plain | arrays)
def test_property_object(pickleTiers: Tiers, data: Any) -> None:
    results = pickleTiers.check(data, "Object")
    assert not any(isinstance(r, Exception) for r in results.values()), results
