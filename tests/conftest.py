"""Shared fixtures: the bundled ml-100k and a small, real slice of it; an isolated cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from m6rec_bench.datasets import PreparedDataset, resolve, slice_dataset


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """One torch thread per test process: on 2 shared cores, OpenMP spinning on 2 threads while
    other processes (subprocess tests, workers) run is up to 10x slower than a single thread."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="session")
def m6home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide M6BENCH_HOME so tests never touch the user's cache."""
    return tmp_path_factory.mktemp("m6home")


@pytest.fixture(autouse=True)
def _isolated_home(m6home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("M6BENCH_HOME", str(m6home))


@pytest.fixture(scope="session")
def ml100k() -> PreparedDataset:
    """The ml-100k copy bundled in the RecBole wheel (no download)."""
    return resolve("ml-100k", progress=False)


@pytest.fixture(scope="session")
def ml100k_slice(ml100k: PreparedDataset, tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """150 sampled users of ml-100k with all their interactions, items, KG triples and links."""
    return slice_dataset(ml100k, tmp_path_factory.mktemp("slices"), n_users=150, seed=0)


@pytest.fixture
def fusion_content() -> Iterator[dict[str, int]]:
    """M6-Fusion's PyKEEN KG and MiniLM text vectors (and the text plugins' encoder) replaced by the
    cheap stand-ins of ``tests/stand_ins.py`` for one test; yields how often each was asked for."""
    from stand_ins import content_stand_ins

    with content_stand_ins() as calls:
        yield calls


@pytest.fixture(autouse=True)
def _cells_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--jobs 1`` runs its cells in this process, not in one contained worker process
    (m6rec_bench.engine.workers): tests monkeypatch the engine and the registry, which a worker
    would not see, and a worker's start-up (torch + RecBole imports) would add seconds to every run.
    tests/test_containment.py deletes it to run the default, contained path."""
    monkeypatch.setenv("M6BENCH_IN_PROCESS", "1")
