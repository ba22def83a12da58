"""Side information for plugins, aligned to RecBole's internal item ids.

RecBole's general-recommender dataset loads interactions only; plugins that need item text or a
knowledge graph read them here, from the same atomic files, mapped onto the ids of the RecBole
dataset they were constructed with (index 0 is RecBole's padding item).

The cell passes three settings through RecBole's config: ``m6_item_text_fields`` (the ``.item``
columns holding text), ``m6_has_kg`` and ``m6_dataset_checksum`` (for cache keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from m6rec_bench.datasets.atomic import split_column
from m6rec_bench.errors import DataError


def read_atomic(path: Path) -> pd.DataFrame:
    """Read a RecBole atomic file (tab-separated, ``name:type`` header) as strings, types stripped."""
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3, encoding="utf-8")
    except (OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read atomic file {path}: {exc}") from exc
    df.columns = [split_column(c)[0] for c in df.columns]
    return df


def _folder(config: Any) -> tuple[Path, str]:
    return Path(config["data_path"]), str(config["dataset"])


def item_tokens(dataset: Any) -> np.ndarray:
    """External item tokens by internal id (``[0]`` is ``'[PAD]'``)."""
    return np.asarray(dataset.field2id_token[dataset.iid_field])


def item_texts(config: Any, dataset: Any) -> list[str]:
    """One text per internal item id from the ``.item`` text fields ("" for padding / unknown items).

    ``"Toy Story | 1995 | Animation Children's Comedy"`` — fields joined in the configured order.
    """
    fields = list(config["m6_item_text_fields"] or [])
    if not fields:
        raise DataError(f"dataset '{config['dataset']}' declares no item text fields")
    folder, name = _folder(config)
    df = read_atomic(folder / f"{name}.item")
    missing = [f for f in fields if f not in df.columns]
    if missing:
        raise DataError(f"{folder / (name + '.item')} lacks text columns {missing}; has {list(df.columns)}")
    text = df[fields].astype(str).agg(lambda row: " | ".join(v for v in row if v), axis=1)
    lookup = dict(zip(df["item_id"], text, strict=True))
    return [lookup.get(tok, "") for tok in item_tokens(dataset)]


@dataclass(frozen=True)
class KnowledgeGraph:
    """Triples as strings plus the entity of every internal item id (``None`` when unlinked)."""

    triples: np.ndarray  # (n, 3) of str: head, relation, tail
    item_entities: list[str | None]
    source: str  # "kg" (the dataset's .kg/.link) or "attributes" (built from .item columns)

    @property
    def n_linked(self) -> int:
        return sum(e is not None for e in self.item_entities)


def knowledge_graph(config: Any, dataset: Any) -> KnowledgeGraph:
    """The dataset's KG (``.kg`` + ``.link``), or one built from item attributes when it has none.

    The attribute graph links every item to its categorical attributes (``item —class→ Comedy``,
    ``item —release_year→ 1995``): the fallback issue #4 asks for on datasets without a KG.
    """
    folder, name = _folder(config)
    tokens = item_tokens(dataset)
    kg_path, link_path = folder / f"{name}.kg", folder / f"{name}.link"
    if kg_path.exists() and link_path.exists():
        kg = read_atomic(kg_path)
        link = read_atomic(link_path)
        triples = kg[["head_id", "relation_id", "tail_id"]].to_numpy(dtype=str)
        mapping = dict(zip(link["item_id"], link["entity_id"], strict=True))
        return KnowledgeGraph(triples, [mapping.get(t) for t in tokens], "kg")
    return attribute_graph(folder / f"{name}.item", tokens)


def attribute_graph(item_path: Path, tokens: np.ndarray) -> KnowledgeGraph:
    """Build item→attribute triples from the categorical columns of an ``.item`` file."""
    if not item_path.exists():
        raise DataError(f"no knowledge graph and no item attributes: {item_path} does not exist")
    df = read_atomic(item_path)
    rows: list[tuple[str, str, str]] = []
    for col in df.columns:
        if col == "item_id":
            continue
        values = df[col]
        if values.nunique() > 0.5 * len(df):  # titles and other near-unique text are not attributes
            continue
        for item, value in zip(df["item_id"], values, strict=True):
            for part in str(value).split():
                rows.append((f"item:{item}", col, f"{col}:{part}"))
    if not rows:
        raise DataError(f"{item_path} has no categorical columns to build a knowledge graph from")
    known = set(df["item_id"])
    ents = [f"item:{t}" if t in known else None for t in tokens]
    return KnowledgeGraph(np.asarray(rows, dtype=str), ents, "attributes")
