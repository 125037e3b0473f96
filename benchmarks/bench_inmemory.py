"""Benchmark InMemoryDatastore against a plain dict measured in the same run.

Prints tables of µs per operation, the ratio to a plain dict keyed by the same DatasetRef, and
the bytes the store adds per dataset (tracemalloc). Targets (ratios to the dict): get ≤ 6x,
exists ≤ 4x, put ≤ 15x, remove ≤ 15x in ``reference`` mode; ≤ 200 bytes per dataset beyond the
object and its ref; frozen numpy get ≤ 8x; getMany/existsMany per ref ≤ half the single verb.

Usage: ``python benchmarks/bench_inmemory.py [--quick]`` (``--quick`` shrinks every N).
"""

from __future__ import annotations

import argparse
import copy
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from databutler import DatasetRef, DatasetType, Datastore, InMemoryDatastore

DIMS = ("visit", "detector")
Row = tuple[str, float, float | None, str]  # operation, µs/op, baseline µs/op, target note


def makeStore(**options: Any) -> InMemoryDatastore:
    return InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore", **options}})


def makeRefs(name: str, storageClass: str, n: int) -> list[DatasetRef]:
    datasetType = DatasetType(name, DIMS, storageClass)
    return [DatasetRef(datasetType, {"visit": i // 100, "detector": i % 100}) for i in range(n)]


def perOp(
    fn: Callable[[], object], n: int, repeat: int = 3, setup: Callable[[], object] | None = None
) -> float:
    """Best-of-``repeat`` µs per operation of ``fn`` (which does ``n`` operations)."""
    best = float("inf")
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        gc.disable()
        start = time.perf_counter_ns()
        fn()
        elapsed = time.perf_counter_ns() - start
        gc.enable()
        best = min(best, elapsed / n / 1000)
    return best


def printTable(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    print(f"  {'operation':<34}{'µs/op':>10}{'dict µs/op':>12}{'ratio':>8}  target")
    for name, value, base, target in rows:
        ratio = f"{value / base:7.2f}x" if base else "       "
        baseText = f"{base:12.3f}" if base else " " * 12
        verdict = ""
        if target and base:
            limit = float(target.strip("x≤ "))
            verdict = f"≤ {limit:g}x  {'ok' if value / base <= limit else 'MISSED'}"
        print(f"  {name:<34}{value:10.3f}{baseText}{ratio}  {verdict}")


def measureVerbs(
    objs: list[Any],
    refs: list[DatasetRef],
    parameters: dict[str, Any] | None,
    sliceBaseline: Callable[[Any], Any] | None,
    options: dict[str, Any],
    targets: bool = True,
    repeat: int = 3,
) -> list[Row]:
    """Time every single verb on a store and the same operation on a plain dict."""
    n = len(refs)
    pairs = list(zip(objs, refs, strict=True))
    store = makeStore(**options)
    plain: dict[DatasetRef, Any] = {}

    def storePut() -> None:
        put = store.put
        for obj, ref in pairs:
            put(obj, ref)

    def dictPut() -> None:
        for obj, ref in pairs:
            plain[ref] = obj

    def resetStore() -> None:
        nonlocal store
        store = makeStore(**options)

    rows: list[Row] = []
    tPut = perOp(storePut, n, repeat, setup=resetStore)
    bPut = perOp(dictPut, n, repeat, setup=plain.clear)

    def storeGet() -> None:
        get = store.get
        for ref in refs:
            get(ref)

    def dictGet() -> None:
        for ref in refs:
            plain[ref]

    def storeGetParams() -> None:
        get = store.get
        for ref in refs:
            get(ref, parameters)

    def dictGetSlice() -> None:
        assert sliceBaseline is not None
        for ref in refs:
            sliceBaseline(plain[ref])

    def storeExists() -> None:
        exists = store.exists
        for ref in refs:
            exists(ref)

    def dictExists() -> None:
        for ref in refs:
            ref in plain  # noqa: B015

    def storeUri() -> None:
        getUri = store.getUri
        for ref in refs:
            getUri(ref)

    def dictUri() -> None:
        for ref in refs:
            if ref in plain:
                f"mem://{ref.datasetType.name}/{ref.id}"

    rows.append(("put", tPut, bPut, "≤15x" if targets else ""))
    rows.append(("get", perOp(storeGet, n, repeat), perOp(dictGet, n, repeat), "≤6x" if targets else ""))
    if parameters is not None:
        rows.append(
            (f"get {parameters}", perOp(storeGetParams, n, repeat), perOp(dictGetSlice, n, repeat), "")
        )
    rows.append(
        ("exists", perOp(storeExists, n, repeat), perOp(dictExists, n, repeat), "≤4x" if targets else "")
    )
    rows.append(("getUri", perOp(storeUri, n, repeat), perOp(dictUri, n, repeat), ""))

    def storeRemove() -> None:
        remove = store.remove
        for ref in refs:
            remove(ref)

    def dictRemove() -> None:
        for ref in refs:
            del plain[ref]

    tRemove = perOp(storeRemove, n, repeat, setup=lambda: (resetStore(), storePut()))
    bRemove = perOp(dictRemove, n, repeat, setup=lambda: (plain.clear(), dictPut()))
    rows.append(("remove", tRemove, bRemove, "≤15x" if targets else ""))
    return rows


def measureMemory(objs: list[Any], refs: list[DatasetRef], options: dict[str, Any]) -> tuple[float, float]:
    """Bytes per dataset added by the store and by a plain dict, objects and refs excluded."""
    results = []
    for useStore in (True, False):
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        if useStore:
            holder: Any = makeStore(**options)
            base = tracemalloc.get_traced_memory()[0]  # the empty store itself is not per dataset
            for obj, ref in zip(objs, refs, strict=True):
                holder.put(obj, ref)
        else:
            holder = {}
            base = before
            for obj, ref in zip(objs, refs, strict=True):
                holder[ref] = obj
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        results.append((after - base) / len(refs))
        del holder
    return results[0], results[1]


def smallDicts(n: int) -> list[dict[str, int]]:
    return [{f"k{j}": i + j for j in range(10)} for i in range(n)]


def foundationTables(sizes: list[int], arrays: int) -> None:
    reference = {"copyMode": "reference"}
    for n in sizes:
        refs = makeRefs("metrics", "StructuredDataDict", n)
        objs = smallDicts(n)
        rows = measureVerbs(objs, refs, None, None, reference)
        listRefs = makeRefs("values", "StructuredDataList", n)
        lists = [list(range(i, i + 10)) for i in range(n)]
        rows += [
            r
            for r in measureVerbs(lists, listRefs, {"slice": slice(2, 5)}, lambda v: v[2:5], reference)
            if r[0].startswith("get {")
        ]
        storeBytes, dictBytes = measureMemory(objs, refs, reference)
        printTable(
            f"N = {n:,} small datasets (dict of 10 ints; slice row: list of 10 ints), copyMode reference",
            rows,
        )
        print(
            f"  memory per dataset: store {storeBytes:.0f} B, plain dict {dictBytes:.0f} B, "
            f"store adds {storeBytes:.0f} B beyond object and ref (target ≤ 200 B: "
            f"{'ok' if storeBytes <= 200 else 'MISSED'})"
        )
    refs = makeRefs("image", "NumpyArray", arrays)
    objs = [np.full(131_072, float(i)) for i in range(arrays)]  # 1 MiB each
    rows = measureVerbs(objs, refs, {"slice": slice(0, 1000)}, lambda a: a[0:1000], reference, repeat=2)
    printTable(f"N = {arrays:,} datasets of 1 MiB numpy arrays, copyMode reference", rows)


def modeTables(n: int, arrays: int) -> None:
    refs = makeRefs("metrics", "StructuredDataDict", n)
    objs = smallDicts(n)
    arrayRefs = makeRefs("image", "NumpyArray", arrays)
    arrayObjs = [np.full(131_072, float(i)) for i in range(arrays)]
    for mode in ("reference", "copy", "deepcopy", "freeze", "default"):
        options = {} if mode == "default" else {"copyMode": mode}
        rows = measureVerbs(objs, refs, None, None, options, targets=mode == "reference", repeat=2)
        arrayRows = measureVerbs(
            arrayObjs,
            arrayRefs,
            {"slice": slice(0, 1000)},
            lambda a: a[0:1000],
            options,
            targets=False,
            repeat=2,
        )
        for name, value, base, _ in arrayRows:
            target = "≤8x" if (name == "get" and mode in ("freeze", "default")) else ""
            rows.append((f"1 MiB array: {name}", value, base, target))
        label = "storage-class defaults (dict: deepcopy, array: freeze)" if mode == "default" else mode
        printTable(f"copyMode {label}: N = {n:,} dicts of 10 ints, {arrays:,} arrays of 1 MiB", rows)


def putAndGet(objs: list[Any], refs: list[DatasetRef], options: dict[str, Any]) -> tuple[float, float]:
    """Best-of-5 µs per put into a fresh store, then per get of each dataset."""
    store = makeStore(**options)

    def reset() -> None:
        nonlocal store
        store = makeStore(**options)

    def puts() -> None:
        put = store.put
        for obj, ref in zip(objs, refs, strict=True):
            put(obj, ref)

    def gets() -> None:
        get = store.get
        for ref in refs:
            get(ref)

    return perOp(puts, len(refs), 5, setup=reset), perOp(gets, len(refs), 5)


def defaultsTable(n: int) -> None:
    """The default path against its targets: get <= 1.5 µs and <= 10x a dict get, put <= 3 µs.

    Beside it: ``copy.deepcopy`` and ``dict.copy`` of the same dicts (what the previous default
    paid per get, and the floor of any copy), and reference mode (no copy at all).
    """
    refs = makeRefs("metrics", "StructuredDataDict", n)
    objs = smallDicts(n)
    rows: list[tuple[str, float, float, str]] = []
    plain = dict(zip(refs, objs, strict=True))

    def dictGet() -> None:
        for ref in refs:
            plain[ref]

    base = perOp(dictGet, n, 5)
    for mode in ("default", "reference"):
        tPut, tGet = putAndGet(objs, refs, {} if mode == "default" else {"copyMode": mode})
        rows.append((f"{mode}: put", tPut, base, "≤ 3 µs" if mode == "default" else ""))
        rows.append((f"{mode}: get", tGet, base, "≤ 1.5 µs and ≤ 10x" if mode == "default" else "≈ 1x"))
    rows.append(
        (
            "copy.deepcopy of the dict (the old default)",
            perOp(lambda: [copy.deepcopy(o) for o in objs], n, 5),
            base,
            "",
        )
    )
    rows.append(
        ("dict.copy of the dict (a copy's floor)", perOp(lambda: [o.copy() for o in objs], n, 5), base, "")
    )

    class OneLookup:
        """A method that does one dict lookup: the floor of any store's get called as a method."""

        def __init__(self) -> None:
            self.held = {ref.id.int: obj for ref, obj in plain.items()}

        def get(self, ref: DatasetRef) -> Any:
            return self.held[ref.id.int]

    def callFloor() -> None:
        get = OneLookup().get
        for ref in refs:
            get(ref)

    rows.append(("a method doing one dict get (a call's floor)", perOp(callFloor, n, 5), base, ""))
    print(f"\nDefault copy modes (StructuredDataDict: deepcopy), N = {n:,} dicts of 10 ints, vs a dict get")
    print(f"  {'operation':<46}{'µs/op':>9}{'dict get':>10}{'ratio':>9}  target")
    for name, value, dictUs, target in rows:
        verdict = ""
        if target.startswith("≤ 3"):
            verdict = "ok" if value <= 3 else "MISSED"
        elif target.startswith("≤ 1.5"):
            verdict = "ok" if value <= 1.5 and value / dictUs <= 10 else "MISSED"
        print(f"  {name:<46}{value:9.3f}{dictUs:10.3f}{value / dictUs:8.2f}x  {target} {verdict}")


def bulkTable(n: int) -> None:
    """Bulk verbs against the single verbs, the base class's defaults and the bare result dict.

    ``default`` is `Datastore`'s own bulk verb: the single verb per ref, collected into a dict.
    ``dict only`` builds the returned dict from values already at hand (`dict(zip(...))`,
    `dict.fromkeys`): a bulk verb returning ``{ref: ...}`` cannot be faster than that.
    """
    refs = makeRefs("metrics", "StructuredDataDict", n)
    objs = smallDicts(n)
    pairs = list(zip(objs, refs, strict=True))
    options = {"copyMode": "reference"}
    store = makeStore(**options)
    for obj, ref in pairs:
        store.put(obj, ref)

    def singleGet() -> None:
        get = store.get
        for ref in refs:
            get(ref)

    def singleExists() -> None:
        exists = store.exists
        for ref in refs:
            exists(ref)

    tGet, tGetMany = perOp(singleGet, n), perOp(lambda: store.getMany(refs), n)
    tExists, tExistsMany = perOp(singleExists, n), perOp(lambda: store.existsMany(refs), n)
    tGetDefault = perOp(lambda: Datastore.getMany(store, refs), n)
    tExistsDefault = perOp(lambda: Datastore.existsMany(store, refs), n)
    tGetDict = perOp(lambda: dict(zip(refs, objs, strict=True)), n)
    tExistsDict = perOp(lambda: dict.fromkeys(refs, True), n)

    def freshPutMany() -> None:
        nonlocal store
        store = makeStore(**options)

    tPutMany = perOp(lambda: store.putMany(pairs), n, setup=freshPutMany)
    tRemoveMany = perOp(
        lambda: store.removeMany(refs), n, setup=lambda: (freshPutMany(), store.putMany(pairs))
    )

    def singlePut() -> None:
        put = store.put
        for obj, ref in pairs:
            put(obj, ref)

    def singleRemove() -> None:
        remove = store.remove
        for ref in refs:
            remove(ref)

    tPut = perOp(singlePut, n, setup=freshPutMany)
    tRemove = perOp(singleRemove, n, setup=lambda: (freshPutMany(), store.putMany(pairs)))
    print(
        f"\nBulk verbs vs single verbs, N = {n:,} small datasets, copyMode reference "
        f"(target: many ≤ 0.5x single), µs per ref"
    )
    print(f"  {'verb':<10}{'single':>9}{'default':>9}{'many':>9}{'dict only':>11}{'many/single':>13}")
    for name, single, default, many, bare, target in [
        ("get", tGet, tGetDefault, tGetMany, tGetDict, True),
        ("exists", tExists, tExistsDefault, tExistsMany, tExistsDict, True),
        ("put", tPut, None, tPutMany, None, False),
        ("remove", tRemove, None, tRemoveMany, None, False),
    ]:
        verdict = ("ok" if many / single <= 0.5 else "MISSED") if target else ""
        defaultText = f"{default:9.3f}" if default is not None else " " * 9
        bareText = f"{bare:11.3f}" if bare is not None else " " * 11
        print(f"  {name:<10}{single:9.3f}{defaultText}{many:9.3f}{bareText}{many / single:12.2f}x  {verdict}")


def evictionTable(total: int, maxItems: int) -> None:
    datasetType = DatasetType("metrics", DIMS, "StructuredDataDict")
    refs = [DatasetRef(datasetType, {"visit": i // 1000, "detector": i % 1000}) for i in range(total)]
    obj = {f"k{j}": j for j in range(10)}
    print(f"\nEviction: {total:,} puts into maxItems = {maxItems:,} (one shared 10-int dict as the object)")
    print(f"  {'copyMode':<12}{'µs/put':>10}{'held':>10}{'evictions':>11}{'traced MiB at end':>19}")
    for mode in ("reference", "deepcopy"):
        store = makeStore(maxItems=maxItems, copyMode=mode)
        gc.collect()
        start = time.perf_counter_ns()
        put = store.put
        for ref in refs:
            put(obj, ref)
        usPerPut = (time.perf_counter_ns() - start) / total / 1000
        stats = store.stats()
        del store
        gc.collect()
        tracemalloc.start()
        traced = makeStore(maxItems=maxItems, copyMode=mode)
        for ref in refs:
            traced.put(obj, ref)
        mib = tracemalloc.get_traced_memory()[0] / 2**20
        tracemalloc.stop()
        assert len(traced) == maxItems
        del traced
        print(f"  {mode:<12}{usPerPut:10.3f}{stats.count:10,}{stats.evictions:11,}{mib:19.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small N everywhere, for a smoke run")
    args = parser.parse_args()
    defaultsTable(2_000 if args.quick else 10_000)
    if args.quick:
        foundationTables([2_000], arrays=50)
        modeTables(2_000, arrays=20)
        bulkTable(5_000)
        evictionTable(50_000, 5_000)
    else:
        foundationTables([10_000, 100_000], arrays=1_000)
        modeTables(10_000, arrays=200)
        bulkTable(10_000)
        bulkTable(100_000)
        evictionTable(1_000_000, 100_000)


if __name__ == "__main__":
    main()
