"""Unit functions for the `Butler.map` tests, importable by Dask worker processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from typing_extensions import override

from ..butler import Butler

__all__ = ["KillAt", "KillDuringWrite", "KillFirst", "RaiseFor", "calibrate", "getInChild", "spin"]


def spin(seed: int, rounds: int) -> int:
    """Burn CPU deterministically: ``rounds`` steps of an integer hash."""
    value = seed
    for _ in range(rounds):
        value = (value * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return value >> 40


def calibrate(dataId: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Read ``raw``, write ``calexp`` (its value doubled) and ``src`` (a summary)."""
    value = inputs["raw"]["value"]
    return {
        "calexp": {"value": 2 * value, "hash": spin(value, inputs["raw"].get("rounds", 0))},
        "src": {"visit": dataId["visit"], "detector": dataId["detector"], "count": value + 1},
    }


class RaiseFor:
    """A unit function that raises for one data ID and returns an unstorable output for another."""

    def __init__(self, raiseAt: dict[str, int], unstorableAt: dict[str, int]) -> None:
        self.raiseAt = raiseAt
        self.unstorableAt = unstorableAt

    def __call__(self, dataId: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        """Return what `calibrate` does, or raise, or return an output JSON cannot write."""
        if dataId == self.raiseAt:
            raise ValueError(f"bad pixels in {dataId}")
        out = calibrate(dataId, inputs)
        if dataId == self.unstorableAt:
            out["src"] = {"count": object()}  # calexp is written first, then this fails
        return out


class KillAt:
    """A unit function whose process dies at one data ID, the first ``times`` times.

    Attempts are counted in files in ``markerDir`` (worker processes share no memory).
    Subclasses say how the process dies (`arrangeDeath`).
    """

    def __init__(self, killAt: dict[str, int], markerDir: str, times: int) -> None:
        self.killAt = killAt
        self.markerDir = markerDir
        self.times = times

    def __call__(self, dataId: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        """Return what `calibrate` does, after `arrangeDeath` the first times at ``killAt``."""
        if dataId == self.killAt:
            marker = Path(self.markerDir)
            done = len(list(marker.glob("kill-*")))
            if done < self.times:
                (marker / f"kill-{done}").touch()
                self.arrangeDeath()
        return calibrate(dataId, inputs)

    def arrangeDeath(self) -> None:
        """Kill this process now, or arrange for it to die later."""
        raise NotImplementedError


class KillFirst(KillAt):
    """A unit function whose process SIGKILLs itself at one data ID the first ``times`` times."""

    @override
    def arrangeDeath(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class KillDuringWrite(KillAt):
    """A unit function whose process SIGKILLs itself while its outputs are being written.

    At ``killAt``, the first ``times`` times (counted in files in ``markerDir``), it returns
    what `calibrate` does after arranging for the process to die at the second file rename
    of the worker's datastore: the first output is then complete in place with no record,
    the second a hidden temporary file.
    """

    @override
    def arrangeDeath(self) -> None:
        from ..datastores.file._access import FileAccess

        original = FileAccess.rename
        renames = [0]

        def renameThenDie(self: FileAccess, source: str, target: str) -> None:
            renames[0] += 1
            if renames[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            original(self, source, target)

        FileAccess.rename = renameThenDie  # type: ignore[method-assign]


def getInChild(butler: Butler, datasetType: str, dataId: dict[str, Any]) -> Any:
    """Return what the (unpickled) ``butler`` reads, and its pid, from a child process."""
    return os.getpid(), butler.get(datasetType, dataId), butler.run, list(butler.collections)
