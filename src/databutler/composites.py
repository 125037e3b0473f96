"""Composite types shipped with databutler, usable with no code of their own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MaskedImage"]


@dataclass
class MaskedImage:
    """An image with a mask of the same shape and free-form metadata.

    Its storage class ``MaskedImage`` declares the components ``image``, ``mask`` (both
    ``NumpyArray``) and ``metadata`` (``StructuredDataDict``), read by the default delegate as
    attributes; ``assemble`` calls ``MaskedImage(**components)``.
    """

    image: Any
    mask: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
