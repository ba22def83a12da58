"""Shared fixtures: the bundled ml-100k and a small, real slice of it; an isolated cache."""

from __future__ import annotations

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


def _hashed(texts: list[str], dim: int, salt: str):
    import zlib

    import numpy as np

    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.replace("|", " ").lower().split():
            out[row, zlib.crc32((salt + word).encode()) % dim] += 1.0
    out[0] = 0.0
    return out


@pytest.fixture
def fusion_content(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Cheap stand-ins for M6-Fusion's PyKEEN KG and MiniLM text vectors: hashed bags of words of
    each item's text (and, for the KG, with some items left unlinked as in the real ``.link``).

    Patched for the whole test, so a model trained with them also loads back with them (artifacts).
    Returns how often each was asked for.
    """
    import m6rec_plugins.fusion as fusion

    from m6rec_bench import sideinfo

    calls = {"kg": 0, "text": 0}

    def kg(config, dataset):
        calls["kg"] += 1
        emb = _hashed(sideinfo.item_texts(config, dataset), 64, "kg:")
        linked = emb.any(axis=1)
        linked[1::7] = False  # some items without an entity, as in the real .link
        emb[~linked] = 0.0
        return emb, linked

    def text(config, dataset):
        calls["text"] += 1
        return _hashed(sideinfo.item_texts(config, dataset), 384, "text:")

    monkeypatch.setattr(fusion, "kg_vectors", kg)
    monkeypatch.setattr(fusion, "text_vectors", text)
    return calls
