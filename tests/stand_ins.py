"""Cheap, deterministic stand-ins for the MiniLM text vectors and M6-Fusion's PyKEEN KG vectors.

Hashed bags of words of each item's text (title, year, genres): items that share words get similar
vectors, so models trained on them rank sensibly, in milliseconds instead of the real encoders'
minutes. The real loaders run on small data in tests/plugins/test_text.py and test_kg.py, and on the
slice in the slow tests (the plugin contract's real-content run among them).
Importable from any test (pytest puts ``tests/`` on ``sys.path`` for its conftest).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest


def hashed(texts: list[str], dim: int, salt: str) -> np.ndarray:
    """One row per text: counts of its words hashed into ``dim`` buckets (row 0, RecBole's padding, zero)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.replace("|", " ").lower().split():
            out[row, zlib.crc32((salt + word).encode()) % dim] += 1.0
    if len(out):
        out[0] = 0.0
    return out


def fake_text(config: Any, dataset: Any) -> np.ndarray:
    """Stands in for ``m6rec_bench.textvec.item_text_embeddings`` (384-d, as all-MiniLM-L6-v2)."""
    from m6rec_bench import sideinfo

    return hashed(sideinfo.item_texts(config, dataset), 384, "text:")


def fake_kg(config: Any, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Stands in for ``m6rec_plugins.kg.entity_embeddings``: vectors and the linked mask, with some
    items left unlinked as in the real ``.link``."""
    from m6rec_bench import sideinfo

    emb = hashed(sideinfo.item_texts(config, dataset), 64, "kg:")
    linked = emb.any(axis=1)
    linked[1::7] = False
    emb[~linked] = 0.0
    return emb, linked


@contextlib.contextmanager
def content_stand_ins(calls: dict[str, int] | None = None) -> Iterator[dict[str, int]]:
    """Patch M6-Fusion's KG and text vectors and the text plugins' encoder; count the calls.

    A model trained inside must also be loaded back (artifacts) inside: its content is rebuilt.
    """
    import m6rec_plugins.fusion as fusion
    import m6rec_plugins.text as text
    from m6rec_bench import textvec

    calls = calls if calls is not None else {"kg": 0, "text": 0}

    def kg(config: Any, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
        calls["kg"] += 1
        return fake_kg(config, dataset)

    def txt(config: Any, dataset: Any) -> np.ndarray:
        calls["text"] += 1
        return fake_text(config, dataset)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fusion, "kg_vectors", kg)
        mp.setattr(fusion, "text_vectors", txt)
        mp.setattr(text, "item_text_embeddings", fake_text)
        mp.setattr(textvec, "item_text_embeddings", fake_text)  # the core's encoder (m6bench explain)
        yield calls
