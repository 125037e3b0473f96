"""The dimension universe (`DimensionUniverse`), value coercion and dimension records."""

from .records import DimensionRecord, Timespan
from .universe import FIELD_TYPES, VALUE_TYPES, Dimension, DimensionUniverse

__all__ = ["FIELD_TYPES", "VALUE_TYPES", "Dimension", "DimensionRecord", "DimensionUniverse", "Timespan"]
