"""What a record says about the code and machine that produced it."""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions change results; they enter every record (and the cell hash).
TRACKED = ("m6rec-bench", "recbole", "torch", "numpy", "scipy", "pandas")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of python and the tracked distributions."""
    out = {"python": platform.python_version()}
    out.update({dist: _version(dist) for dist in TRACKED})
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def hardware() -> dict[str, Any]:
    """CPU, core count, torch threads and (when present) the GPU."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def command_line() -> str:
    """The command that started this process, as a reader of its records would retype it.

    Portable (:func:`m6rec_bench.results.portable.portable_command`): ``--out``/``--runs-dir``
    and the like are dropped, paths under the current folder are relative, others ``<dir>/<name>``.
    """
    from m6rec_bench.results.portable import portable_command

    return portable_command(sys.argv)


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """Samples the process's resident memory in a thread; ``peak_mb`` is the maximum seen.

    (``ru_maxrss`` is the peak of the whole process, so it cannot attribute memory to one cell of a
    suite; sampling can.) On CUDA the peak allocated GPU memory is reported separately.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _rss_mb())
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self.peak_mb = _rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())
