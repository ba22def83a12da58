"""Why a trained model recommends an item to a user: KG paths, text neighbours and fusion gates.

:func:`explain_user` takes a trained model rebuilt by :func:`m6rec_bench.artifacts.load`, ranks every
item for one user exactly as RecBole's full-sort evaluator does (``full_sort_predict`` over all
items, the padding item and the user's *training* interactions masked with ``-inf`` — the ranking
the validation evaluator scores), and gives each of the top-k items three kinds of reasons, each
computed from the data alone and only ever citing items of the user's training history (never a
validation or test item, which the model has not seen):

* **Knowledge-graph paths** of one or two hops between the recommended item's entity and the entity
  of a history item, over the dataset's ``.kg`` triples and ``.link`` item→entity file
  (``Heat —film.film.genre→ m.01jfsb ←film.film.genre— Casino``; the KB4Rec files name entities
  by Freebase MID only, so a shared entity that is not an item shows as its MID). Explaining a
  recommendation by the KG paths that connect it to the user's past items follows KPRN (Wang et
  al., "Explainable Reasoning over Knowledge Graphs for Recommendation", AAAI 2019) and PGPR (Xian
  et al., "Reinforcement Knowledge Graph Reasoning for Explainable Recommendation", SIGIR 2019).
  Unlike those, the paths here are *post hoc*: they are enumerated in the KG, not produced by the
  model, so they explain the item's relation to the history, not the model's computation. Paths are
  ranked by length, then by the rarity of the shared entity (how many linked items touch it: a
  director shared by three films says more than the English language shared by a thousand — an
  inverse-document-frequency idea), and picked with distinct shared entities and distinct history
  items first.
* **Text neighbours**: the history items closest to the recommended item by cosine of the frozen
  Sentence-BERT (Reimers & Gurevych, EMNLP 2019) item text vectors of
  :func:`m6rec_bench.textvec.item_text_embeddings` (all-MiniLM-L6-v2, cached) — item-based
  "because you liked X" explanations by neighbour items (Herlocker, Konstan & Riedl, "Explaining
  Collaborative Filtering Recommendations", CSCW 2000), here with content similarity, so they
  apply to any model.
* **Modality gates** of a plugin that fills the ``Plugin.modality_weights`` hook (M6-Fusion among
  the built-ins): the weight its fusion gave each modality (id / graph / kg / text) of the item.

:class:`KGIndex` indexes a KG once (an undirected CSR adjacency over entity ids), so a path search
touches only the neighbourhoods of the recommended item's entity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m6rec_bench import compat, sideinfo, textvec
from m6rec_bench.errors import DataError, UsageError

#: Reasons of each kind shown per item unless told otherwise.
DEFAULT_PATHS = 3
DEFAULT_SIMILAR = 3


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class Hop:
    """One triple of the KG, exactly as the ``.kg`` file states it (``head —relation→ tail``)."""

    head: str
    relation: str
    tail: str


@dataclass(frozen=True)
class KGPath:
    """A path from the recommended item's entity to a history item's entity.

    ``entities`` is the walk (first: the recommended item's entity, last: the history item's);
    ``hops[i]`` is a real triple joining ``entities[i]`` and ``entities[i + 1]`` in either
    direction. ``shared_items`` is how many linked items the middle entity touches (its rarity;
    ``None`` for a direct, one-hop link).
    """

    hops: tuple[Hop, ...]
    entities: tuple[str, ...]
    history_item: str
    history_title: str
    shared_items: int | None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Similar:
    """A history item and the cosine of its text vector with the recommended item's."""

    item: str
    title: str
    cosine: float


@dataclass
class ItemExplanation:
    """One recommended item with its reasons."""

    rank: int
    item: str
    title: str
    score: float
    held_out: str | None = None  # "valid" / "test" when the item is one of the user's held-out interactions
    kg_linked: bool | None = None  # whether the item has a KG entity (None: no KG used)
    paths: list[KGPath] = field(default_factory=list)
    similar: list[Similar] = field(default_factory=list)
    gates: dict[str, float] | None = None


@dataclass
class Explanation:
    """The top-k of one user and why; :meth:`to_dict` is the ``--format json`` output."""

    model: str
    label: str
    record_path: str
    dataset: str
    protocol: str
    seed: int
    user: str
    history_size: int
    n_items: int
    k: int
    items: list[ItemExplanation]
    kg_source: str | None = None
    text_model: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for item in out["items"]:
            for path in item["paths"]:
                path["hops"] = [dict(h) for h in path["hops"]]
                path["entities"] = list(path["entities"])
        return out


# ------------------------------------------------------------------ the KG index


def short_relation(relation: str) -> str:
    """A readable relation name: the last segment of a URI (``<http://rdf.freebase.com/ns/film.film.genre>``
    → ``film.film.genre``); names that are not URIs (as in RecBole's KB4Rec files) stay as they are."""
    name = relation.strip().strip("<>")
    if "/" in name or "#" in name:
        name = name.replace("#", "/").rstrip("/").rsplit("/", 1)[-1]
    return name or relation


class KGIndex:
    """A knowledge graph indexed once for path search.

    Entities are numbered; every triple is an undirected edge stored twice in a CSR adjacency
    (``neighbours(e)`` is a slice, no scan of the triples). ``item_entity[i]`` is the entity of
    internal item id ``i`` (-1 when unlinked); ``item_degree[e]`` is how many linked items are
    adjacent to entity ``e`` (the rarity of a shared entity).
    """

    def __init__(self, triples: np.ndarray, item_entities: list[str | None], source: str = "kg") -> None:
        if triples.ndim != 2 or triples.shape[1] != 3:
            raise DataError(f"a KG needs (head, relation, tail) triples, got an array of shape {triples.shape}")
        import pandas as pd

        self.source = source
        ent_codes, self.entities = pd.factorize(np.concatenate([triples[:, 0], triples[:, 2]]), sort=False)
        self.entities = np.asarray(self.entities, dtype=object)
        n = len(triples)
        self.heads, self.tails = ent_codes[:n].astype(np.int64), ent_codes[n:].astype(np.int64)
        rel_codes, self.relation_names = pd.factorize(triples[:, 1], sort=False)
        self.relation_names = np.asarray(self.relation_names, dtype=object)
        self.relations = rel_codes.astype(np.int64)
        self.entity_id = {str(e): i for i, e in enumerate(self.entities)}
        n_ent = len(self.entities)
        src = np.concatenate([self.heads, self.tails])
        dst = np.concatenate([self.tails, self.heads])
        tri = np.concatenate([np.arange(n), np.arange(n)])
        order = np.argsort(src, kind="stable")
        self._dst, self._tri = dst[order], tri[order]
        self._indptr = np.searchsorted(src[order], np.arange(n_ent + 1))
        self.item_entity = np.array([self.entity_id.get(e, -1) if e is not None else -1 for e in item_entities],
                                    dtype=np.int64)
        linked = np.zeros(n_ent, dtype=bool)
        linked[self.item_entity[self.item_entity >= 0]] = True
        # distinct linked neighbours per entity: unique (entity, neighbour) pairs whose neighbour is linked
        pairs = np.unique(np.stack([src, dst])[:, linked[dst]], axis=1)
        self.item_degree = np.bincount(pairs[0], minlength=n_ent)
        self.entity_items: dict[int, list[int]] = {}
        for item, ent in enumerate(self.item_entity.tolist()):
            if ent >= 0:
                self.entity_items.setdefault(ent, []).append(item)

    @classmethod
    def from_graph(cls, kg: sideinfo.KnowledgeGraph) -> KGIndex:
        return cls(kg.triples, kg.item_entities, kg.source)

    @property
    def n_triples(self) -> int:
        return len(self.heads)

    def neighbours(self, entity: int) -> tuple[np.ndarray, np.ndarray]:
        """``(neighbour entities, triple indices)`` of every edge at ``entity`` (a neighbour repeats per triple)."""
        lo, hi = self._indptr[entity], self._indptr[entity + 1]
        return self._dst[lo:hi], self._tri[lo:hi]

    def is_linked(self, item: int) -> bool:
        """Whether internal item ``item`` has an entity in this KG."""
        return bool(0 <= item < len(self.item_entity) and self.item_entity[item] >= 0)

    def hop(self, t: int) -> Hop:
        return Hop(str(self.entities[self.heads[t]]), str(self.relation_names[self.relations[t]]),
                   str(self.entities[self.tails[t]]))

    def _pick(self, triples: list[int], start: int, prefer: str | None) -> int:
        """One triple of those joining two entities: stated by ``start`` (its head) when one is,
        with the relation ``prefer`` when possible, else the first relation by name."""
        def key(t: int) -> tuple[bool, bool, str]:
            rel = str(self.relation_names[self.relations[t]])
            return (self.heads[t] != start, prefer is not None and rel != prefer, rel)

        return min(triples, key=key)

    def paths(self, item: int, history: np.ndarray, *, limit: int = DEFAULT_PATHS) -> list[tuple[list[int], list[int], int]]:
        """The best ``limit`` paths from internal item ``item`` to items of ``history``.

        Returns ``(entity walk, triple indices, history item)`` tuples: one-hop links first, then
        two-hop paths through the rarest shared entities (fewest linked items), with each shared
        entity and each history item used once before any is repeated.
        """
        start = int(self.item_entity[item]) if 0 <= item < len(self.item_entity) else -1
        if start < 0 or limit <= 0:
            return []
        hist_of: dict[int, int] = {}
        for h in np.asarray(history, dtype=np.int64).tolist():
            ent = int(self.item_entity[h]) if 0 <= h < len(self.item_entity) else -1
            if ent >= 0 and ent != start:
                hist_of.setdefault(ent, h)
        if not hist_of:
            return []
        is_hist = np.zeros(len(self.entities), dtype=bool)
        is_hist[list(hist_of)] = True

        nb, tri = self.neighbours(start)
        first: dict[int, list[int]] = {}
        for m, t in zip(nb.tolist(), tri.tolist(), strict=True):
            first.setdefault(m, []).append(t)
        cands: list[tuple[tuple[int, int, int, int], list[int], list[int], int]] = []
        for m, ts in first.items():
            if is_hist[m]:
                t = self._pick(ts, start, None)
                cands.append(((1, 0, hist_of[m], m), [start, m], [t], hist_of[m]))
        for m, ts in first.items():
            if m == start or is_hist[m]:  # through a history item: its direct link is the better reason
                continue
            nb2, tri2 = self.neighbours(m)
            hit = is_hist[nb2] & (nb2 != start)
            if not hit.any():
                continue
            second: dict[int, list[int]] = {}
            for e, t in zip(nb2[hit].tolist(), tri2[hit].tolist(), strict=True):
                second.setdefault(e, []).append(t)
            t1 = self._pick(ts, start, None)
            rel1 = str(self.relation_names[self.relations[t1]])
            for e, ts2 in second.items():
                t2 = self._pick(ts2, e, rel1)  # stated by the history item's entity, same relation if it can
                cands.append(((2, int(self.item_degree[m]), hist_of[e], m), [start, m, e], [t1, t2], hist_of[e]))
        cands.sort(key=lambda c: c[0])
        chosen: list[int] = []
        used_mid: set[int] = set()
        used_hist: set[int] = set()
        for i, (key, walk, _, hist) in enumerate(cands):  # first pass: new shared entity and new history item
            if len(chosen) == limit:
                break
            mid = walk[1] if len(walk) == 3 else -1
            if (mid < 0 or mid not in used_mid) and hist not in used_hist:
                chosen.append(i)
                used_hist.add(hist)
                if mid >= 0:
                    used_mid.add(mid)
        for i in range(len(cands)):  # then fill with the best of the rest
            if len(chosen) == limit:
                break
            if i not in chosen:
                chosen.append(i)
        chosen.sort(key=lambda i: cands[i][0])
        return [(cands[i][1], cands[i][2], cands[i][3]) for i in chosen]


_INDEX_CACHE: dict[tuple[Any, ...], KGIndex] = {}


def kg_files(config: Any) -> tuple[Path, Path]:
    """The ``.kg`` and ``.link`` files of the dataset a RecBole config names."""
    folder, name = Path(config["data_path"]), str(config["dataset"])
    return folder / f"{name}.kg", folder / f"{name}.link"


def kg_index(config: Any, dataset: Any) -> KGIndex | None:
    """The dataset's KG (``.kg`` + ``.link``) indexed for ``dataset``'s item ids; None when it has none.

    The index is kept per (files, their size and mtime, item ids), so explaining many users reads
    and indexes the 91,631 triples of ml-100k once.
    """
    kg_path, link_path = kg_files(config)
    if not (kg_path.is_file() and link_path.is_file()):
        return None
    tokens = tuple(str(t) for t in sideinfo.item_tokens(dataset))
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in (kg_path, link_path)) + (hash(tokens),)
    index = _INDEX_CACHE.get(key)
    if index is None:
        graph = sideinfo.knowledge_graph(config, dataset)
        index = KGIndex.from_graph(graph)
        _INDEX_CACHE.clear()  # one dataset at a time: an index of a large KG is not small
        _INDEX_CACHE[key] = index
    return index


# ------------------------------------------------------------------ text neighbours


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows — padding, items without text — stay zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def text_neighbours(unit: np.ndarray, item: int, history: np.ndarray, *, limit: int = DEFAULT_SIMILAR) -> list[tuple[int, float]]:
    """The ``limit`` history items whose unit text vectors have the highest cosine with ``item``'s.

    Items without text (zero rows) are never cited; an item without text has no neighbours.
    """
    hist = np.asarray(history, dtype=np.int64)
    if limit <= 0 or len(hist) == 0 or not unit[item].any():
        return []
    hist = hist[unit[hist].any(axis=1)]
    cos = unit[hist] @ unit[item]
    order = np.lexsort((hist, -cos))[:limit]
    return [(int(hist[i]), float(cos[i])) for i in order]


def text_unit_vectors(config: Any, dataset: Any) -> tuple[np.ndarray | None, str | None, str | None]:
    """``(unit text vectors, text model, note)``: the vectors of :func:`m6rec_bench.textvec.item_text_embeddings`,
    or None and a note saying why there are none (no item text, no encoder)."""
    try:
        fields = config["m6_item_text_fields"]
    except KeyError:
        fields = None
    if not fields:
        return None, None, f"text similarity skipped: dataset '{config['dataset']}' has no item text fields"
    try:
        vectors = textvec.item_text_embeddings(config, dataset)
    except DataError as exc:
        return None, None, f"text similarity skipped: {exc}"
    try:
        name = config["text_model"]
    except (KeyError, TypeError):
        name = None
    return unit_rows(vectors), str(name or textvec.DEFAULT_TEXT_MODEL), None


def modality_weights(loaded: Any) -> dict[str, np.ndarray] | None:
    """``{modality: [n_items] weights}`` from the plugin's ``modality_weights`` hook; None for a model
    without one (a baseline, or a plugin that does not fill it)."""
    from m6rec_bench.models import registry

    plugin = registry.get(loaded.record.model).plugin
    if plugin is None or plugin.modality_weights is None:
        return None
    return plugin.modality_weights(loaded.model)


# ------------------------------------------------------------------ titles


def item_titles(config: Any) -> dict[str, str]:
    """``item token → "Title (year)"`` from the ``.item`` file: the first text field, with a text
    field whose name contains ``year`` in parentheses; empty when the dataset has no ``.item``."""
    folder, name = Path(config["data_path"]), str(config["dataset"])
    path = folder / f"{name}.item"
    try:
        fields = list(config["m6_item_text_fields"] or [])
    except KeyError:
        fields = []
    if not path.is_file() or not fields:
        return {}
    df = sideinfo.read_atomic(path)
    if fields[0] not in df.columns:
        return {}
    titles = df[fields[0]].astype(str)
    year = next((f for f in fields[1:] if "year" in f.lower() and f in df.columns), None)
    if year is not None:
        y = df[year].astype(str)
        titles = titles.where(y == "", titles + " (" + y + ")")
    return dict(zip(df["item_id"].astype(str), titles, strict=True))


# ------------------------------------------------------------------ ranking


def held_out_items(loaded: Any, uid: int) -> dict[int, str]:
    """Internal ids of the user's validation and test interactions → ``"valid"`` / ``"test"``."""
    out: dict[int, str] = {}
    for name, data in (("test", loaded.test_data), ("valid", loaded.valid_data)):
        if data is None:
            continue
        ds = compat.loader_dataset(data)
        feat = ds.inter_feat
        users = np.asarray(feat[ds.uid_field])
        for i in np.asarray(feat[ds.iid_field])[users == uid].tolist():
            out[int(i)] = name
    return out


@torch.no_grad()
def rank_items(loaded: Any, uid: int, history: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's top-``k`` internal item ids for ``uid`` and their scores.

    RecBole's ``Trainer._full_sort_batch_eval`` step (via :func:`m6rec_bench.evaluation._score_batch`,
    which also covers models without ``full_sort_predict``): score every item, set the padding item
    and ``history`` to ``-inf``, ``torch.topk``. Never returns a masked item (k is capped).
    """
    from recbole.data.interaction import Interaction

    from m6rec_bench.evaluation import _device_of, _score_batch

    model, dataset = loaded.model, loaded.dataset
    n_items = int(dataset.item_num)
    device = _device_of(model)
    hist = torch.as_tensor(np.unique(np.asarray(history, dtype=np.int64)), dtype=torch.long)
    inter = Interaction({dataset.uid_field: torch.tensor([uid], dtype=torch.long)})
    history_index = (torch.zeros(len(hist), dtype=torch.long), hist)
    try:
        item_tensor = compat.loader_dataset(loaded.valid_data).get_item_feature().to(device)
    except Exception:  # noqa: BLE001 - only needed by models without full_sort_predict
        item_tensor = None
    was_training = model.training
    model.eval()
    try:
        scores = _score_batch(model, (inter, history_index, None, None), loaded.valid_data, device, n_items, item_tensor)
    finally:
        model.train(was_training)
    scores = scores.view(-1).float().cpu()
    k = min(k, int(torch.isfinite(scores).sum()) or 0)
    top = torch.topk(scores, k)
    return top.indices.numpy(), top.values.numpy()


# ------------------------------------------------------------------ explaining a user


def _entity_label(index: KGIndex, ent: int, titles: dict[str, str], tokens: list[str]) -> str:
    items = index.entity_items.get(ent)
    if items:
        tok = tokens[items[0]]
        return titles.get(tok) or f"item {tok}"
    return str(index.entities[ent])  # KB4Rec's files name entities by Freebase MID only


def explain_user(
    loaded: Any,
    user: str,
    *,
    k: int = 10,
    n_paths: int = DEFAULT_PATHS,
    n_similar: int = DEFAULT_SIMILAR,
    kg: bool = True,
    text: bool = True,
) -> Explanation:
    """Explain the top-``k`` of external user ``user`` under a loaded model (:class:`m6rec_bench.artifacts.Loaded`).

    ``kg`` / ``text`` switch the KG path and text-neighbour reasons off; a dataset without a KG or
    item text gets a note instead of those reasons, not an error.
    """
    if k < 1:
        raise UsageError(f"-k must be at least 1, got {k}")
    uid = loaded.user_id(user)
    history = np.asarray(loaded.train_history()[uid], dtype=np.int64)
    tokens = loaded.items
    config = loaded.config
    record = loaded.record
    notes: list[str] = []
    titles = item_titles(config)

    def title(i: int) -> str:
        return titles.get(tokens[i]) or f"item {tokens[i]}"

    top, scores = rank_items(loaded, uid, history, k)
    if len(top) < k:
        notes.append(f"only {len(top)} items are left to rank after masking the user's {len(history)} training items")
    held = held_out_items(loaded, uid)

    index: KGIndex | None = None
    kg_source: str | None = None
    if kg and n_paths > 0:
        index = kg_index(config, loaded.dataset)
        if index is None:
            kg_path, _ = kg_files(config)
            notes.append(f"KG paths skipped: dataset '{record.dataset}' has no knowledge graph "
                         f"({kg_path.name} and {kg_path.with_suffix('.link').name} beside its atomic files)")
        else:
            kg_source = f"{index.n_triples} triples, {int((index.item_entity >= 0).sum())} linked items"

    unit: np.ndarray | None = None
    text_model: str | None = None
    if text and n_similar > 0:
        unit, text_model, note = text_unit_vectors(config, loaded.dataset)
        if note:
            notes.append(note)

    gates = modality_weights(loaded)

    items: list[ItemExplanation] = []
    for rank, (i, score) in enumerate(zip(top.tolist(), scores.tolist(), strict=True), start=1):
        entry = ItemExplanation(rank=rank, item=tokens[i], title=title(i), score=float(score), held_out=held.get(i))
        if index is not None:
            entry.kg_linked = bool(index.is_linked(i))
            for walk, tris, hist in index.paths(i, history, limit=n_paths):
                labels = {str(index.entities[e]): _entity_label(index, e, titles, tokens) for e in walk}
                entry.paths.append(KGPath(
                    hops=tuple(index.hop(t) for t in tris), entities=tuple(str(index.entities[e]) for e in walk),
                    history_item=tokens[hist], history_title=title(hist),
                    shared_items=int(index.item_degree[walk[1]]) if len(walk) == 3 else None, labels=labels,
                ))
        if unit is not None:
            entry.similar = [Similar(tokens[h], title(h), round(c, 4))
                             for h, c in text_neighbours(unit, i, history, limit=n_similar)]
        if gates is not None:
            entry.gates = {m: round(float(w[i]), 4) for m, w in gates.items()}
        items.append(entry)

    return Explanation(
        model=record.model, label=record.label or record.model, record_path=str(loaded.record_path),
        dataset=record.dataset, protocol=record.protocol, seed=record.seed, user=str(user),
        history_size=len(history), n_items=int(loaded.dataset.item_num) - 1, k=k, items=items,
        kg_source=kg_source, text_model=text_model, notes=notes,
    )


# ------------------------------------------------------------------ markdown


def path_text(path: KGPath) -> str:
    """``Heat (1995) —film.film.genre→ m.01jfsb ←film.film.genre— Casino (1995)``."""
    parts = [path.labels.get(path.entities[0], path.entities[0])]
    for j, hop in enumerate(path.hops):
        rel = short_relation(hop.relation)
        forward = hop.head == path.entities[j]
        parts.append(f"—{rel}→" if forward else f"←{rel}—")
        parts.append(path.labels.get(path.entities[j + 1], path.entities[j + 1]))
    return " ".join(parts)


def to_markdown(exp: Explanation) -> str:
    """The explanation as Markdown that also reads well as plain text in a terminal."""
    lines = [
        f"# Top {len(exp.items)} for user {exp.user} — {exp.label}",
        "",
        f"- model: {exp.label} ({exp.model}), {exp.dataset}/{exp.protocol}, seed {exp.seed}",
        f"- record: {exp.record_path}",
        f"- user {exp.user}: {exp.history_size} training interactions (the only items cited as reasons)",
        f"- ranking: the model's scores over {exp.n_items} items, training history masked (RecBole full-sort)",
    ]
    if exp.kg_source:
        lines.append(f"- KG: {exp.kg_source}; paths of 1-2 hops to history items, rarest shared entity first")
    if exp.text_model:
        lines.append(f"- text: cosine of {exp.text_model} item text vectors")
    if any(it.gates is not None for it in exp.items):
        lines.append("- modality weights: the weight the model's fusion gives each modality of the item "
                     "(modality_weights(); gate values are independent, attention weights sum to 1)")
    for note in exp.notes:
        lines.append(f"- note: {note}")
    for it in exp.items:
        held = f" — in the user's held-out {it.held_out} set" if it.held_out else ""
        lines += ["", f"## {it.rank}. {it.title} (item {it.item}, score {it.score:.4f}){held}"]
        if exp.kg_source:
            if it.paths:
                lines.append("KG paths:")
                for p in it.paths:
                    rarity = f" (shared by {p.shared_items} items)" if p.shared_items is not None else " (direct link)"
                    lines.append(f"- {path_text(p)}{rarity}")
            elif it.kg_linked:
                lines.append("KG paths: none within 2 hops of the user's history")
            else:
                lines.append("KG paths: none (the item has no entity in the .link file)")
        if exp.text_model:
            if it.similar:
                lines.append("Similar by text: " + "; ".join(f"{s.title} ({s.cosine:.2f})" for s in it.similar))
            else:
                lines.append("Similar by text: none (no item text)")
        if it.gates is not None:
            lines.append("Modality weights: " + ", ".join(f"{m} {w:.2f}" for m, w in it.gates.items()))
    return "\n".join(lines) + "\n"


__all__ = [
    "DEFAULT_PATHS", "DEFAULT_SIMILAR", "Explanation", "Hop", "ItemExplanation", "KGIndex", "KGPath", "Similar",
    "explain_user", "item_titles", "kg_index", "path_text", "rank_items", "short_relation", "text_neighbours",
    "to_markdown", "unit_rows",
]
