"""Datasets: the registry (``datasets.yaml``), fetching, converting and caching RecBole atomic files.

:func:`resolve` is the one entry point: a registered name (or alias) or a folder path in, a
:class:`PreparedDataset` (``root``/``name`` for RecBole, checksum, features) out.
"""

from __future__ import annotations

from m6rec_bench.datasets.atomic import checksum_of
from m6rec_bench.datasets.base import DatasetFeatures, PreparedDataset
from m6rec_bench.datasets.prepare import resolve
from m6rec_bench.datasets.registry import DatasetSpec, get_spec, load_registry
from m6rec_bench.datasets.slice import slice_dataset

__all__ = [
    "DatasetFeatures",
    "DatasetSpec",
    "PreparedDataset",
    "checksum_of",
    "get_spec",
    "load_registry",
    "resolve",
    "slice_dataset",
]
