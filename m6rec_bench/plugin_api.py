"""The plugin API: everything a plugin may import from m6rec-bench, and nothing else.

A plugin package — the built-ins under ``plugins/`` exactly like a stranger's — imports from
``m6rec_bench`` only this module (``tests/test_layering.py`` holds the built-ins to it); whatever
is not listed in ``__all__`` is internal and may change without notice. Importing this module is
light (no torch, pandas or RecBole): the content encoders and file helpers below load on first use,
so a package's ``PLUGIN_CARDS`` module may import it too.

The contract (:mod:`m6rec_bench.models.plugin`)
    :class:`Plugin`, :class:`PluginConfig`, :class:`PluginCard`, the shared tuning grids
    (:data:`RECBOLE_LEARNING_RATES`, :data:`EMBEDDING_SIZES`, :data:`L2_WEIGHTS`) and the optional
    hooks' types: :class:`FoldIn` / :class:`FoldInVectors` (``m6bench serve`` fold-in),
    :class:`ColumnSet` / :class:`Column` (leaderboard columns of a plugin's ``extra_metrics``).
Errors (:mod:`m6rec_bench.errors`)
    :class:`DataError` (bad or missing data: exit 1), :class:`UsageError` (bad input: exit 2).
Shared content encoders and side information
    :mod:`sideinfo` (item texts, KG triples of a dataset), :mod:`embcache` (content-addressed array
    cache), :mod:`textvec` (MiniLM item text vectors: :func:`item_text_embeddings`,
    :func:`encode_texts`, :data:`DEFAULT_TEXT_MODEL`, :func:`text_setting`).
Files
    :func:`cache_dir` (a named folder under the workbench cache), :func:`atomic_path` (write a
    file in a temporary beside it, rename when done), :func:`file_checksum` (``"sha256:<hex>"``),
    :func:`atomic_columns` (field names of a RecBole atomic file's header line).
RecBole
    :func:`loader_dataset` (the dataset behind a RecBole DataLoader: one accessor for its private
    ``_dataset``, kept in :mod:`m6rec_bench.compat`), :func:`symmetric_spmm` (``A @ X`` for a
    fixed symmetric sparse CSR ``A`` whose backward reuses ``A``: graph propagation).
Protocol inputs
    :func:`protocol_inputs` (files a protocol leaves beside the split for models: the
    ``user-group`` protocol's ``"source"`` interactions).
"""

from __future__ import annotations

import importlib
from typing import Any

from m6rec_bench.errors import DataError, UsageError
from m6rec_bench.models.plugin import (
    EMBEDDING_SIZES,
    L2_WEIGHTS,
    RECBOLE_LEARNING_RATES,
    Column,
    ColumnSet,
    FoldIn,
    FoldInVectors,
    Plugin,
    PluginCard,
    PluginConfig,
)

#: Names loaded on first use (``name -> (module, attribute or None for the module itself)``):
#: each pulls in pandas, numpy or the dataset code, which a plugin's card module must not pay for.
_LAZY: dict[str, tuple[str, str | None]] = {
    "sideinfo": ("m6rec_bench.sideinfo", None),
    "embcache": ("m6rec_bench.embcache", None),
    "textvec": ("m6rec_bench.textvec", None),
    "item_text_embeddings": ("m6rec_bench.textvec", "item_text_embeddings"),
    "encode_texts": ("m6rec_bench.textvec", "encode_texts"),
    "load_text_model": ("m6rec_bench.textvec", "load_text_model"),
    "resolve_text_model": ("m6rec_bench.textvec", "resolve_text_model"),
    "text_setting": ("m6rec_bench.textvec", "setting"),
    "DEFAULT_TEXT_MODEL": ("m6rec_bench.textvec", "DEFAULT_TEXT_MODEL"),
    "cache_dir": ("m6rec_bench.paths", "cache_dir"),
    "atomic_path": ("m6rec_bench.io", "atomic_path"),
    "file_checksum": ("m6rec_bench.datasets.fetch", "file_checksum"),
    "atomic_columns": ("m6rec_bench.protocols.split_files", "columns"),
    "loader_dataset": ("m6rec_bench.compat", "loader_dataset"),
    "symmetric_spmm": ("m6rec_bench.compat", "symmetric_spmm"),
    "protocol_inputs": ("m6rec_bench.protocols.user_group", "protocol_inputs"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r} (the plugin API is what __all__ lists)")
    module = importlib.import_module(target[0])
    value = module if target[1] is None else getattr(module, target[1])
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DEFAULT_TEXT_MODEL", "EMBEDDING_SIZES", "L2_WEIGHTS", "RECBOLE_LEARNING_RATES", "Column", "ColumnSet",
    "DataError", "FoldIn", "FoldInVectors", "Plugin", "PluginCard", "PluginConfig", "UsageError", "atomic_columns",
    "atomic_path", "cache_dir", "embcache", "encode_texts", "file_checksum", "item_text_embeddings",
    "load_text_model", "loader_dataset", "protocol_inputs", "resolve_text_model", "sideinfo", "symmetric_spmm",
    "text_setting", "textvec",
]
