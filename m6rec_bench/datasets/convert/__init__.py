"""Converters: one module per raw format, each turning raw files into RecBole atomic files.

Every converter module exports ``CONVERTER_VERSION`` (bump it when the output changes: the cache
key includes it, so cached data is converted again) and ``convert(raw_dir, out_dir, name)``, which
writes ``<out_dir>/<name>.inter`` (+ ``.item``, ``.user``) with the columns of RecBole's bundled
ml-100k, so every MovieLens variant looks alike to models.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from m6rec_bench.lookup import Registry

#: Converter name (``converter:`` in datasets.yaml) -> the module that implements it, imported on use.
#: Case-sensitive, as datasets.yaml has always been read; kept in sorted order (``known`` lists them so).
CONVERTERS: Registry[str] = Registry("converter", case_sensitive=True,
                                     unknown="unknown converter '{name}'{hint} (known: {known}){fix}")
for _name in ("ml100k", "ml1m", "mlcsv"):
    CONVERTERS.register(_name, f"m6rec_bench.datasets.convert.{_name}")


def get_converter(name: str) -> ModuleType:
    """The converter module called ``name``; UsageError naming the known ones otherwise."""
    return importlib.import_module(CONVERTERS.get(name, fix=" — fix datasets.yaml"))
