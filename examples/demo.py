"""The databutler demo: an InMemoryDatastore built from config, end to end.

Run with ``make demo``.
"""

from __future__ import annotations

import numpy as np

from databutler import Config, DatasetRef, DatasetType, Datastore, MaskedImage


def main() -> None:
    config = Config({"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore", "name": "demo"}})
    store = Datastore.fromConfig(config)
    print(f"Built {store!r} from config (isEphemeral={store.isEphemeral}).")

    dims = ("visit", "detector")
    metricsType = DatasetType("metrics", dims, "StructuredDataDict")
    imageType = DatasetType("flat", dims, "NumpyArray")
    calexpType = DatasetType("calexp", dims, "MaskedImage")

    metrics = DatasetRef(metricsType, {"visit": 903334, "detector": 10}, run="demo/run1")
    flat = DatasetRef(imageType, {"visit": 903334, "detector": 10}, run="demo/run1")
    calexp = DatasetRef(calexpType, {"visit": 903334, "detector": 10}, run="demo/run1")

    store.put({"nSources": 1234, "seeing": 0.71}, metrics)
    store.put(np.arange(100.0).reshape(10, 10), flat)
    store.put(
        MaskedImage(image=np.ones((4, 4)), mask=np.zeros((4, 4), dtype=np.int32), metadata={"exptime": 30.0}),
        calexp,
    )
    print(
        f"Put 3 datasets of storage classes: "
        f"{', '.join(r.datasetType.storageClass.name for r in (metrics, flat, calexp))}."
    )

    print("Whole:     ", store.get(metrics))
    print("Component: ", "calexp.metadata =", store.get(calexp.makeComponentRef("metadata")))
    sliced = store.get(flat, parameters={"slice": (slice(0, 2), slice(0, 3))})
    print("Slice:     ", f"flat[0:2, 0:3] = {sliced.tolist()} (read-only: {not sliced.flags.writeable})")

    for ref in (metrics, flat, calexp, calexp.makeComponentRef("image")):
        print("URI:       ", store.getUri(ref))
    later = DatasetRef(metricsType, {"visit": 903335, "detector": 10})
    print("Predicted: ", store.getUri(later, predict=True))

    second = Datastore.fromConfig(config)
    second.transfer(store, metrics)
    print(f"Transferred {metrics.datasetType.name} into {second.name}: {second.get(metrics)}")

    store.remove(flat)
    print(f"Removed {flat.datasetType.name}; exists now: {store.exists(flat)}")
    try:
        store.get(flat)
    except FileNotFoundError as exc:
        print(f"Getting it again raises FileNotFoundError: {exc}")
    print("Stats:     ", store.stats())


if __name__ == "__main__":
    main()
