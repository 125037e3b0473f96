"""Lazy package attributes (PEP 562): a public name is imported from its module on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazyGetattr"]


def lazyGetattr(namespace: dict[str, Any], lazy: Mapping[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` that imports ``name`` from module ``lazy[name]`` on first use.

    Parameters
    ----------
    namespace : dict
        The package's ``globals()``: its ``__name__`` anchors relative module names, and each
        name is stored in it once imported, so later lookups do not come back here.
    lazy : mapping
        Public name → the module that defines it (relative, e.g. ``".butler"``, or absolute).

    Returns
    -------
    getattr : callable
        The package's ``__getattr__``; a name not in ``lazy`` raises `AttributeError`.
    """
    packageName = namespace["__name__"]

    def getLazyAttribute(name: str) -> Any:
        moduleName = lazy.get(name)
        if moduleName is None:
            raise AttributeError(f"module {packageName!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(moduleName, packageName), name)
        namespace[name] = value
        return value

    return getLazyAttribute
