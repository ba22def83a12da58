"""A Hugging Face ``datasets`` source → RecBole atomic files.

The entry names what to load — ``datasets.load_dataset(path, config, data_files=…, split=…)``,
where ``path`` is a hub id or a packaged builder (``parquet``, ``csv``, ``json``) with local
``data_files`` — and a ``columns`` mapping onto RecBole's columns::

    sources:
      - kind: huggingface
        path: parquet
        data_files: ratings.parquet      # relative to the yaml file
        columns: {user: uid, item: iid, rating: stars, timestamp: ts, item_text: {title: name}}

``.inter`` gets ``user_id``, ``item_id`` and whichever of ``rating``/``timestamp`` are mapped;
``.item`` (when ``item_text`` is mapped) one row per item with each text column as ``token_seq``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from m6rec_bench.datasets.atomic import clean, write_table
from m6rec_bench.datasets.registry import LOCAL_BUILDERS, Source
from m6rec_bench.errors import DataError

CONVERTER_VERSION = 1


def cache_key(src: Source) -> str:
    """A short hash of the source entry, so editing it (files, mapping) converts again."""
    return hashlib.sha256(src.model_dump_json().encode("utf-8")).hexdigest()[:12]


def _local_files(data_files: Any, base: Path) -> Any:
    """Resolve relative local ``data_files`` against ``base`` (the yaml's folder)."""
    if data_files is None:
        return None
    if isinstance(data_files, str):
        p = Path(data_files).expanduser()
        p = p if p.is_absolute() else base / p
        if not p.exists() and not any(ch in data_files for ch in "*?["):
            raise DataError(f"data file {p} not found — fix 'data_files' in the datasets.yaml entry")
        return str(p)
    if isinstance(data_files, list):
        return [_local_files(f, base) for f in data_files]
    return {k: _local_files(v, base) for k, v in data_files.items()}


def load_frame(src: Source, *, base_dir: Path, cache: Path, progress: bool = False):  # type: ignore[no-untyped-def]
    """Load the source as a pandas DataFrame through ``datasets.load_dataset``."""
    import datasets

    data_files = _local_files(src.data_files, base_dir) if src.path in LOCAL_BUILDERS else src.data_files
    was_enabled = datasets.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(src.path, src.config, data_files=data_files, split=src.split, cache_dir=str(cache))
    except DataError:
        raise
    except Exception as exc:  # the library raises many types; all mean "could not load"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"could not load huggingface source '{src.path}' (split {src.split}): {first} — "
            "check path, data_files and split in datasets.yaml"
        ) from None
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
    return ds.to_pandas()


def _timestamps(series):  # type: ignore[no-untyped-def]
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        return (series.astype("datetime64[ns]").astype("int64") // 10**9).astype(str)
    return series.astype(str)


def _ids(series):  # type: ignore[no-untyped-def]
    import pandas as pd

    if pd.api.types.is_float_dtype(series) and (series.dropna() % 1 == 0).all():
        series = series.astype("Int64")
    return series.astype(str).map(clean)


def convert(src: Source, out_dir: Path, name: str, *, base_dir: Path, cache: Path, progress: bool = False) -> None:
    """Load the source and write ``<out_dir>/<name>.inter`` (+ ``.item`` when text is mapped)."""
    cols = src.columns
    assert cols is not None
    df = load_frame(src, base_dir=base_dir, cache=cache, progress=progress)
    wanted = [c for c in (cols.user, cols.item, cols.rating, cols.timestamp, *cols.item_text.values()) if c]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise DataError(
            f"huggingface source '{src.path}' has no column {', '.join(missing)} (found: {', '.join(map(str, df.columns))}) "
            "— fix 'columns' in the datasets.yaml entry"
        )
    df = df.dropna(subset=[cols.user, cols.item])
    if df.empty:
        raise DataError(f"huggingface source '{src.path}' has no rows with both {cols.user} and {cols.item}")
    header = ["user_id:token", "item_id:token"]
    columns = [_ids(df[cols.user]), _ids(df[cols.item])]
    if cols.rating:
        header.append("rating:float")
        columns.append(df[cols.rating].astype(str))
    if cols.timestamp:
        header.append("timestamp:float")
        columns.append(_timestamps(df[cols.timestamp]))
    write_table(out_dir / f"{name}.inter", header, zip(*(c.tolist() for c in columns), strict=True))
    if cols.item_text:
        items = df.drop_duplicates(subset=[cols.item])
        header = ["item_id:token", *(f"{k}:token_seq" for k in cols.item_text)]
        columns = [_ids(items[cols.item])] + [items[v].fillna("").map(clean) for v in cols.item_text.values()]
        write_table(out_dir / f"{name}.item", header, zip(*(c.tolist() for c in columns), strict=True))


def hf_cache_dir(root: Path) -> Path:
    """Where ``datasets`` keeps its own cache for this source (under ``M6BENCH_HOME``)."""
    path = root / "hf-cache"
    os.makedirs(path, exist_ok=True)
    return path
