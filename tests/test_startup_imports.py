"""Start-up cost: importing databutler, and the CLI, loads no heavy library until it is needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("sqlalchemy", "fsspec", "rich", "numpy", "lark")


def _importedBy(code: str) -> set[str]:
    """Return which of HEAVY a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1])) & set(HEAVY)


def testImportButlerLoadsNoHeavyLibrary() -> None:
    assert _importedBy("from databutler import Butler") == set()


def testCliModuleLoadsNoHeavyLibrary() -> None:
    assert _importedBy("from databutler.cli import cli") == set()


def testCliHelpLoadsNoHeavyLibrary() -> None:
    code = (
        "from databutler.cli import cli\n"
        "try:\n    cli(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    assert _importedBy(code) == set()


def testOpenLoadsSqlalchemyButNotParser(tmp_path: Path) -> None:
    code = (
        "from databutler import Butler\n"
        f"Butler.makeRepo({str(tmp_path / 'repo')!r})\n"
        f"butler = Butler({str(tmp_path / 'repo')!r}, writeable=False)\n"
        "import sys\nassert 'lark' not in sys.modules, 'lark loaded at open'\n"
        "from databutler.registry.queries import parseExpression\n"
        "parseExpression(\"instrument = 'X'\")"
    )
    assert {"sqlalchemy", "lark"} <= _importedBy(code)
