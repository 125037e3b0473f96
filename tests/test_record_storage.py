def test_membership_conditions_and_insert_new(storage: RecordStorage) -> None:
    table = storage.registerRecordTable(SPEC)
    table.insert([row("k1", "p/1"), row("k2", "p/2"), row("k3", "p/3")])
    assert sorted(r["key"] for r in table.fetch(owner="a", path=["p/1", "p/3", "p/9"])) == ["k1", "k3"]
    assert table.count(key=("k1", "k2")) == 2
    inserted = table.insertNew([row("k4", "p/4"), row("k5", "p/1"), row("k1", "p/6")])  # path, key taken
    assert [r["key"] for r in inserted] == ["k4"]
    assert table.delete(owner="a", key={"k1", "k4"}) == 2
    assert sorted(r["key"] for r in table.fetch()) == ["k2", "k3"]
