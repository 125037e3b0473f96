"""Formatters: one module per file format.

Each module imports its library at the top, so a format's library is only needed when a
datastore is configured to use it. `Formatter` (in ``base``) is the contract.
"""

from .base import Formatter, checkPlain, fromPlain, toPlain

__all__ = ["Formatter", "checkPlain", "fromPlain", "toPlain"]
