"""One definition each: the root placeholder, resolving a datastore class from config, the progress
bar; `Butler.makeRepo` and `Butler.transferFrom` are methods of their own."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest

from databutler import (
    Butler,
    ConfigError,
    DatastoreClassError,
    FileDatastore,
    InMemoryDatastore,
    butler_config,
    config,
    transfer,
)
from databutler.datastore import Datastore
from databutler.datastores.chained import ChainedDatastore
from databutler.progress import progressBar
from databutler.registry import databases


def test_one_root_placeholder() -> None:
    assert config.ROOT_PLACEHOLDER == "<butlerRoot>"
    assert databases.ROOT_PLACEHOLDER is config.ROOT_PLACEHOLDER
    assert butler_config.BUTLER_ROOT_TOKEN is config.ROOT_PLACEHOLDER


def test_a_user_root_is_kept_and_the_placeholder_is_replaced(tmp_path: Path) -> None:
    section = {"datastore": {"cls": "databutler.FileDatastore", "root": config.ROOT_PLACEHOLDER}}
    full = config.Config(section)
    FileDatastore.setConfigRoot("/somewhere", full, full.copy())
    assert full["datastore.root"] == "/somewhere"
    mine = config.Config({"datastore": {"cls": "databutler.FileDatastore", "root": "/mine"}})
    FileDatastore.setConfigRoot("/somewhere", mine, mine.copy())
    assert mine["datastore.root"] == "/mine"


def test_class_from_config() -> None:
    assert Datastore.classFromConfig("databutler.InMemoryDatastore") is InMemoryDatastore
    with pytest.raises(DatastoreClassError, match=r"datastore\.cls: 'databutler\.Config' is not a Datastore"):
        Datastore.classFromConfig("databutler.Config")
    with pytest.raises(DatastoreClassError, match=r"cannot import 'nowhere\.Store'"):
        Datastore.classFromConfig("nowhere.Store", "datastore.datastores[1].cls")
    with pytest.raises(DatastoreClassError, match="must be a dotted class name, not 3"):
        Datastore.classFromConfig(3)


def test_every_resolver_goes_through_class_from_config(tmp_path: Path) -> None:
    badChild = {"datastore": {"cls": "databutler.ChainedDatastore", "datastores": [{"cls": "nowhere.Store"}]}}
    with pytest.raises(DatastoreClassError, match=r"datastore\.datastores\[0\]\.cls: cannot import"):
        ChainedDatastore.validateConfig(badChild)
    with pytest.raises(DatastoreClassError, match=r"cannot import 'nowhere\.Store'"):
        Datastore.fromConfig({"datastore": {"cls": "nowhere.Store"}})
    with pytest.raises(ConfigError, match="not a Datastore subclass"):
        Butler.makeRepo(tmp_path / "repo", {"datastore": {"cls": "databutler.Config"}})
    assert not (tmp_path / "repo" / "butler.yaml").exists()


def test_make_repo_and_transfer_from_are_methods() -> None:
    for name in ("makeRepo", "transferFrom"):
        method = inspect.getattr_static(Butler, name)
        function = method.__func__ if isinstance(method, staticmethod) else method
        assert function.__qualname__ == f"Butler.{name}" and "Raises" in (function.__doc__ or "")
    assert list(inspect.signature(Butler.transferFrom).parameters) == ["self", "source", "refs", "progress"]
    assert transfer.progressBar is progressBar  # the one bar, still importable where it was


def test_progress_bar_shown_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    with progressBar("Copying things", 3, enabled=False) as advance:
        advance()
    assert capsys.readouterr().err == ""
    with progressBar("Copying things", 3, enabled=True, unit="files") as advance:
        advance()
        advance(2)
    err = capsys.readouterr().err
    assert "Copying things" in err and "3/3" in err and "files" in err


def test_stored_item_info_is_typed_per_datastore() -> None:
    from databutler import StoredFileInfo, StoredItemInfo

    def infoType(cls: type) -> object:
        (base,) = [b for b in getattr(cls, "__orig_bases__", ()) if typing.get_origin(b) is Datastore]
        return typing.get_args(base)[0]

    assert infoType(FileDatastore) is StoredFileInfo
    assert infoType(InMemoryDatastore) is StoredItemInfo
    assert infoType(ChainedDatastore) is object  # whatever its children record
    assert inspect.signature(Datastore.getStoredItemInfo).return_annotation == "InfoT"
