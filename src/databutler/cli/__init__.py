"""The ``databutler`` command line: click commands over the plain functions in `databutler.script`."""

from .main import cli

__all__ = ["cli"]
