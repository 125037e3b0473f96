"""The registry's canonical data ID text: compact JSON with sorted keys, whatever the values."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from databutler import DatasetType
from databutler.registry.data_ids import decodeDataId, encodeDataId

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
