"""Every code block of README.md and docs/*.md runs in the test suite (Sybil).

pytest collects README.md and every ``*.md`` under docs/ (``testpaths`` in pyproject.toml), so
a new page is tested without any wiring. Each page runs in a fresh empty folder, its blocks in
order, sharing one Python namespace. How each kind of block is checked is in
docs/contributing.md; in short:

- ``python``: executed;
- ``sh``: run by bash (``set -euo pipefail``) with this environment's ``databutler`` and
  ``python`` first on the PATH;
- ``yaml``: one document, a configuration, loaded by `ButlerConfig`, which checks every key
  (``storageClasses`` are loaded by a `StorageClassFactory` too);
- ``text``: output or a listing, shown as it is;
- any other fence, or one without a language, fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from sybil import Document, Example, Region, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser

LANGUAGES = ("python", "sh", "yaml", "text")
"""The fence languages a docs page may use."""

_FENCE = re.compile(r"^(?P<fence>```+|~~~+)(?P<info>[^\n`]*)$", re.MULTILINE)
_BIN = str(Path(sys.executable).parent)


def _setup(namespace: dict[str, Any]) -> None:
    namespace["_startedIn"] = os.getcwd()
    namespace["_folder"] = tempfile.mkdtemp(prefix="databutler-docs-")
    os.chdir(namespace["_folder"])


def _teardown(namespace: dict[str, Any]) -> None:
    os.chdir(namespace["_startedIn"])
    shutil.rmtree(namespace["_folder"], ignore_errors=True)


def _runShell(example: Example) -> None:
    env = {**os.environ, "PATH": _BIN + os.pathsep + os.environ.get("PATH", "")}
    script = "set -euo pipefail\n" + str(example.parsed)
    done = subprocess.run(
        ["bash", "-c", script], cwd=os.getcwd(), env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise AssertionError(
            f"sh block at line {example.line} of {example.path} exited {done.returncode}:\n"
            f"{done.stdout}{done.stderr}"
        )


def _checkYaml(example: Example) -> None:
    text = str(example.parsed)
    documents = list(yaml.safe_load_all(text))
    if len(documents) != 1:
        raise AssertionError(
            f"yaml block at line {example.line} of {example.path} holds {len(documents)} documents; "
            "give each its own block."
        )
    data = documents[0]
    if not isinstance(data, dict):
        raise AssertionError(
            f"yaml block at line {example.line} of {example.path} is not a mapping; docs YAML "
            "blocks are configurations (use a text block for anything else)."
        )
    from databutler.butler_config import ButlerConfig

    ButlerConfig(data)  # every key checked against what its component accepts
    if "storageClasses" in data:
        from databutler import StorageClassFactory

        StorageClassFactory.fromDefaults().addFromConfig({"storageClasses": data["storageClasses"]})


def _languages(document: Document) -> Iterator[Region]:
    """Yield a failing region for each fence whose language is not one of `LANGUAGES`."""
    opening: re.Match[str] | None = None
    for match in _FENCE.finditer(document.text):
        if opening is not None:
            if match["fence"] == opening["fence"] and not match["info"].strip():
                opening = None
            continue
        opening = match
        language = match["info"].strip()
        if language not in LANGUAGES:
            yield Region(match.start(), match.end(), language, _refuseLanguage)


def _refuseLanguage(example: Example) -> None:
    raise AssertionError(
        f"Code block at line {example.line} of {example.path} has language {example.parsed!r}; "
        f"use one of {', '.join(LANGUAGES)} (see docs/contributing.md)."
    )


DOCS = Sybil(
    parsers=[
        _languages,
        PythonCodeBlockParser(),
        CodeBlockParser("sh", _runShell),
        CodeBlockParser("yaml", _checkYaml),
    ],
    patterns=["*.md"],
    setup=_setup,
    teardown=_teardown,
)
"""How every page is parsed and run."""

pytest_collect_file = DOCS.pytest()
