"""The registry's canonical data ID text: compact JSON with sorted keys, whatever the values."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from databutler import DatasetRef, DatasetType
from databutler.dimensions.universe import DimensionUniverse
from databutler.exceptions import DataIdError
from databutler.registry.data_ids import RefDataIdEncoder, decodeDataId, encodeDataId

DIMS = ("visit", "detector", "band", "day_obs")
TYPE = DatasetType("metrics", DIMS, "StructuredDataDict")
# Storable text: no NUL (PostgreSQL refuses it) and no lone surrogates (category Cs: no UTF-8).
storableText = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), min_size=1, max_size=40
)
values = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), storableText)


@given(st.fixed_dictionaries({key: values for key in DIMS}))
def test_encoded_data_id_is_canonical_json_and_round_trips(dataId: dict[str, int | str]) -> None:
    _, encoded = encodeDataId(TYPE, dataId)
    assert encoded == json.dumps(dataId, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    assert dict(decodeDataId(encoded)) == dataId


# RefDataIdEncoder: the registry's bulk path for refs, which must give what the whole way gives.
UNIVERSE = DimensionUniverse.default()
REF_TYPE = DatasetType("raw", ("instrument", "visit", "detector", "band"), "StructuredDataDict")
anyValue = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.text(min_size=1, max_size=600),
    st.sampled_from(["12", " 7 ", "x\x00y", "\ud800", "a" * 513, "é" * 600]),
)


def _wholeWay(dataId: Mapping[str, object]) -> tuple[dict[str, object], str] | str:
    """What `encodeDataId` of the coerced data ID gives, or the message of its error."""
    try:
        normalized, text = encodeDataId(
            REF_TYPE, UNIVERSE.coerceDataId(dataId, f"Data ID of {REF_TYPE.name!r}:")
        )
    except DataIdError as exc:
        return str(exc)
    return dict(normalized), text


@given(st.fixed_dictionaries({key: anyValue for key in REF_TYPE.dimensions}))
def test_ref_encoder_gives_what_coercing_then_encoding_gives(given: dict[str, object]) -> None:
    try:
        ref = DatasetRef(REF_TYPE, given)
    except DataIdError:
        return  # not a ref's data ID
    encoder = RefDataIdEncoder(REF_TYPE, UNIVERSE)
    expected = _wholeWay(ref.dataId)
    try:
        normalized, text = encoder.encode(ref.dataId)
    except DataIdError as exc:
        assert str(exc) == expected
    else:
        assert (dict(normalized), text) == expected


def test_ref_encoder_keeps_a_ref_data_id_that_needs_nothing_and_coerces_one_that_does() -> None:
    encoder = RefDataIdEncoder(REF_TYPE, UNIVERSE)
    ref = DatasetRef(REF_TYPE, {"instrument": "Cam", "visit": 12, "detector": 3, "band": "g"})
    normalized, text = encoder.encode(ref.dataId)
    assert normalized is ref.dataId
    assert text == '{"band":"g","detector":3,"instrument":"Cam","visit":12}'
    # An int for a str dimension is a ref's data ID but becomes text in the registry.
    odd = DatasetRef(REF_TYPE, {"instrument": 7, "visit": 12, "detector": 3, "band": "g"})
    normalized, text = encoder.encode(odd.dataId)
    assert dict(normalized) == {"instrument": "7", "visit": 12, "detector": 3, "band": "g"}
    assert text == '{"band":"g","detector":3,"instrument":"7","visit":12}'


def test_ref_encoder_refuses_what_the_registry_cannot_store() -> None:
    encoder = RefDataIdEncoder(REF_TYPE, UNIVERSE)
    for dataId, message in (
        ({"instrument": "Cam", "visit": 2**63, "detector": 3, "band": "g"}, "64-bit"),
        ({"instrument": "C\x00m", "visit": 1, "detector": 3, "band": "g"}, "NUL"),
        ({"instrument": "C" * 513, "visit": 1, "detector": 3, "band": "g"}, "at most 512"),
        ({"instrument": "é" * 500, "visit": 1, "detector": 3, "band": "é" * 500}, "bytes as JSON"),
    ):
        with pytest.raises(DataIdError, match=message):
            encoder.encode(DatasetRef(REF_TYPE, dataId).dataId)
