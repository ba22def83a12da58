"""Converters: one module per raw format, each turning raw files into RecBole atomic files.

Every converter module exports ``CONVERTER_VERSION`` (bump it when the output changes: the cache
key includes it, so cached data is converted again) and ``convert(raw_dir, out_dir, name)``, which
writes ``<out_dir>/<name>.inter`` (+ ``.item``, ``.user``) with the columns of RecBole's bundled
ml-100k, so every MovieLens variant looks alike to models.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from m6rec_bench.errors import UsageError, did_you_mean

CONVERTERS: dict[str, str] = {
    "ml100k": "m6rec_bench.datasets.convert.ml100k",
    "ml1m": "m6rec_bench.datasets.convert.ml1m",
    "mlcsv": "m6rec_bench.datasets.convert.mlcsv",
}


def get_converter(name: str) -> ModuleType:
    """The converter module called ``name``; UsageError naming the known ones otherwise."""
    try:
        module_name = CONVERTERS[name]
    except KeyError:
        known = ", ".join(sorted(CONVERTERS))
        hint = did_you_mean(name, CONVERTERS)
        raise UsageError(f"unknown converter '{name}'{hint} (known: {known}) — fix datasets.yaml") from None
    return importlib.import_module(module_name)
