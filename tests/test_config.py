"""Config, ConfigSubset, DatastoreConfig and the defaults search path."""

from __future__ import annotations

from pathlib import Path

import pytest

from databutler import (
    Config,
    ConfigError,
    ConfigFileNotFoundError,
    ConfigSubset,
    Datastore,
    DatastoreClassError,
    DatastoreConfig,
    InMemoryDatastore,
)
from databutler.config import CONFIG_PATH_ENV, configSearchPath


def test_dotted_keys_read_write_delete() -> None:
    config = Config({"datastore": {"cls": "a.B", "limits": {"maxItems": 3}}})
    assert config["datastore.cls"] == "a.B"
    assert config["datastore"]["limits"]["maxItems"] == 3
    assert config["datastore", "limits", "maxItems"] == 3
    config["datastore.limits.maxBytes"] = 10
    config["new.deep.key"] = "v"
    assert config.toDict()["new"] == {"deep": {"key": "v"}}
    assert "datastore.limits.maxBytes" in config
    assert "datastore.nope" not in config
    del config["datastore.limits"]
    assert "datastore.limits" not in config
    with pytest.raises(KeyError):
        config["datastore.limits.maxItems"]
    with pytest.raises(ConfigError, match="empty part"):
        config["datastore..cls"]


def test_tuple_keys_reach_names_with_dots() -> None:
    config = Config()
    config["copyMode", "calexp.wcs"] = "copy"
    assert config["copyMode"]["calexp.wcs"] == "copy"
    assert config.toDict() == {"copyMode": {"calexp.wcs": "copy"}}


def test_nested_view_writes_through() -> None:
    config = Config({"a": {"b": 1}})
    view = config["a"]
    view["c"] = 2
    assert config["a.c"] == 2


def test_copy_is_deep_and_keeps_class() -> None:
    config = DatastoreConfig({"datastore": {"cls": "x.Y", "nested": {"v": [1, 2]}}})
    copied = config.copy()
    assert type(copied) is DatastoreConfig
    copied["nested.v"].append(3)
    assert config["nested.v"] == [1, 2]


def test_update_and_mergeDefaults() -> None:
    config = Config({"a": {"b": 1, "c": 2}})
    config.update({"a": {"c": 20, "d": 30}})
    assert config.toDict() == {"a": {"b": 1, "c": 20, "d": 30}}
    config.mergeDefaults({"a": {"b": 100, "e": 5}, "f": 6})
    assert config.toDict() == {"a": {"b": 1, "c": 20, "d": 30, "e": 5}, "f": 6}


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = Config({"datastore": {"cls": "x.Y", "maxItems": 5}})
    path = tmp_path / "c.yaml"
    config.dumpToFile(path)
    again = Config(path)
    assert again == config
    assert again.configFile == path
    assert "maxItems: 5" in (config.dump() or "")
    assert config.names() == ["datastore.cls", "datastore.maxItems"]


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileNotFoundError, match=r"nope\.yaml"):
        Config(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError):
        Config(str(tmp_path / "nope.yaml"))


def test_malformed_yaml_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("datastore: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        Config(path)
    path.write_text("- a list\n- at top\n")
    with pytest.raises(ConfigError, match="mapping"):
        Config(path)


def test_bad_source_type() -> None:
    with pytest.raises(TypeError):
        Config(42)  # type: ignore[arg-type]


def test_datastore_config_requires_cls(tmp_path: Path) -> None:
    path = tmp_path / "noCls.yaml"
    path.write_text("datastore:\n  name: x\n")
    with pytest.raises(ConfigError, match=r"noCls.yaml.*'cls'"):
        DatastoreConfig(path)
    with pytest.raises(ConfigError, match="cls"):
        Datastore.fromConfig({"datastore": {"name": "x"}})


def test_fromConfig_bad_class_names() -> None:
    with pytest.raises(DatastoreClassError, match="nosuchmodule"):
        Datastore.fromConfig({"datastore": {"cls": "nosuchmodule.Store"}})
    with pytest.raises(DatastoreClassError, match="NoSuchClass"):
        Datastore.fromConfig({"datastore": {"cls": "databutler.NoSuchClass"}})
    with pytest.raises(DatastoreClassError, match="not a Datastore"):
        Datastore.fromConfig({"datastore": {"cls": "databutler.Config"}})
    with pytest.raises(TypeError):  # DatastoreClassError is also a TypeError
        Datastore.fromConfig({"datastore": {"cls": "collections.OrderedDict"}})


def test_fromConfig_reads_yaml_path(tmp_path: Path) -> None:
    path = tmp_path / "ds.yaml"
    path.write_text("datastore:\n  cls: databutler.datastores.in_memory.InMemoryDatastore\n  maxItems: 7\n")
    store = Datastore.fromConfig(str(path))
    assert isinstance(store, InMemoryDatastore)
    assert store.maxItems == 7
    store2 = InMemoryDatastore(str(path))
    assert store2.maxItems == 7


def test_packaged_defaults_are_merged() -> None:
    store = InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore", "maxItems": 3}})
    assert store.config["maxItems"] == 3
    assert "expireSeconds" in store.config  # from configs/datastores/inMemoryDatastore.yaml
    assert (Path(configSearchPath()[-1]) / InMemoryDatastore.defaultConfigFile).is_file()


def test_config_path_env_overrides_packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "datastores").mkdir()
    (tmp_path / "datastores" / "inMemoryDatastore.yaml").write_text("datastore:\n  maxItems: 42\n")
    monkeypatch.setenv(CONFIG_PATH_ENV, str(tmp_path))
    store = InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore"}})
    assert store.maxItems == 42
    assert store.config["expireSeconds"] is None  # still filled from the packaged file
    given = InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore", "maxItems": 5}})
    assert given.maxItems == 5


def test_subset_defaults_file_absolute_and_missing(tmp_path: Path) -> None:
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("thing:\n  colour: blue\n  size: 2\n")

    class ThingConfig(ConfigSubset):
        component = "thing"
        requiredKeys = ("colour",)
        defaultConfigFile = str(defaults)

    config = ThingConfig({"thing": {"size": 3}})
    assert config.toDict() == {"size": 3, "colour": "blue"}

    class MissingDefaults(ConfigSubset):
        component = "thing"
        defaultConfigFile = "no/such/file.yaml"

    with pytest.raises(ConfigFileNotFoundError, match=r"no/such/file.yaml"):
        MissingDefaults({})


def test_bad_inmemory_options_are_config_errors() -> None:
    base = {"cls": "databutler.InMemoryDatastore"}
    for key, value in [
        ("maxItems", -1),
        ("maxItems", "ten"),
        ("maxBytes", "lots"),
        ("expireSeconds", 0),
        ("copyMode", "shallow"),
        ("copyMode", {"calexp": "nope"}),
    ]:
        with pytest.raises(ConfigError, match=key):
            InMemoryDatastore({"datastore": {**base, key: value}})
    store = InMemoryDatastore({"datastore": {**base, "maxBytes": "1.5 MiB"}})
    assert store.maxBytes == int(1.5 * 2**20)
