"""The docs-testing mechanism itself: every page is collected, and a broken block fails.

The blocks of README.md and docs/*.md run as tests of their own (see the top-level
conftest.py and docs/contributing.md); these tests check that nothing escapes that net.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _docsConftest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docsConftest", ROOT / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _evaluate(tmp_path: Path, text: str) -> None:
    """Run every block of a page holding ``text`` the way the suite runs docs pages."""
    page = tmp_path / "page.md"
    page.write_text(text)
    document = _docsConftest().DOCS.parse(page)
    examples = list(document)
    assert examples, "no block was found"
    for example in examples:
        example.evaluate()


def test_every_docs_page_and_the_readme_are_collected() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    collected = {line.split("::")[0] for line in done.stdout.splitlines() if "::line:" in line}
    pages = {"README.md"} | {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md") if "```" in p.read_text()}
    assert pages <= collected, sorted(pages - collected)


def test_a_working_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _evaluate(
        tmp_path,
        "```python\nfrom databutler import Butler\nButler.makeRepo('repo')\n```\n\n"
        "```sh\ndatabutler query-datasets repo\n```\n\n"
        "```yaml\ndatastore: {templates: {default: '{run}/{id}'}}\n```\n\n"
        "```text\nrepo/\n  butler.yaml\n```\n",
    )
    assert (tmp_path / "repo" / "butler.yaml").is_file()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("```python\nraise RuntimeError('broken example')\n```\n", "broken example"),
        ("```sh\ndatabutler query-datasets no-such-repo\n```\n", "exited 1"),
        ("```sh\nfalse | true\n```\n", "exited 1"),  # pipefail
        ("```yaml\nregisty: {db: 'sqlite://'}\n```\n", "registy"),
        ("```yaml\ndatastore: {templatse: {}}\n```\n", "templatse"),
        ("```yaml\nregistry: {}\n---\ndatastore: {}\n```\n", "2 documents"),
        ("```yaml\n- a\n```\n", "not a mapping"),
        ("```yaml\na: [1\n```\n", "expected"),
        ("```\nls\n```\n", "has language ''"),
        ("```bash\nls\n```\n", "has language 'bash'"),
    ],
)
def test_a_broken_block_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, match: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match=match):
        _evaluate(tmp_path, text)
