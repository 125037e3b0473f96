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


def testQueryDatasetsOnSqliteLoadsNeitherPostgresqlNorRich(tmp_path: Path) -> None:
    """A read-only command on a SQLite repository, output piped: no PostgreSQL dialect, no rich."""
    root = tmp_path / "repo"
    setup = (
        "from databutler import Butler\n"
        f"Butler.makeRepo({str(root)!r})\n"
        f"with Butler({str(root)!r}, run='r') as b:\n"
        "    b.registerDatasetType('metrics', ('visit',), 'StructuredDataDict')\n"
        "    b.put({'a': 1}, 'metrics', {'visit': 1})\n"
    )
    subprocess.run([sys.executable, "-c", setup], check=True)
    probe = (
        "import sys\nfrom databutler.cli import cli\n"
        f"try:\n    cli(['query-datasets', {str(root)!r}], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "import json\nprint(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    modules = set(json.loads(out.splitlines()[-1]))
    assert "metrics" in out and "visit=1" in out  # the table was printed
    assert not {m for m in modules if m.startswith("sqlalchemy.dialects.postgresql")}
    assert "rich" not in modules
