"""Synthetic datasets of any size, written as RecBole atomic files: ``m6bench datasets synth``.

Used to measure speed and memory at scales no bundled dataset has (``benchmarks/scale.py``). The
generator is vectorised numpy, works through the users in fixed blocks (so memory stays bounded by
one block, not the dataset) and is deterministic: the same sizes and seed give the same bytes.

The model behind the data:

* **Items** belong to ``n_clusters`` latent clusters. An item's popularity is Zipf-like,
  :math:`p_i \\propto r_i^{-\\alpha_{item}}` with :math:`r_i` a random rank (so ids say nothing
  about popularity).
* **Users** have Zipf-like activity: every user gets ``min_user_interactions`` (default 5, so that
  RecBole's per-user 8:1:1 split gives each user at least 3/1/1 interactions) plus a share of the
  rest proportional to :math:`r_u^{-\\alpha_{user}}`, capped at the number of items (surplus goes
  to users below the cap). Each user has one favourite cluster.
* **Interactions** of a user are drawn *without replacement* (no duplicate (user, item) pair) from
  the mixture :math:`(1-a)\\,p_i + a\\,p_i[c_i=f_u]/P(f_u)`: with probability ``affinity`` a draw
  comes from the user's favourite cluster, otherwise from global popularity. Light users are drawn
  by successive sampling with rejection of repeats, heavy ones (more than 1/16 of the catalogue)
  by Efraimidis–Spirakis keys — the same distribution, computed in O(items) for that user.
* **Ratings** 1–5 depend on an item quality and on whether the item is in the user's favourite
  cluster; **timestamps** fall in 2015–2020 after a per-user start.
* **Item text** (``title``, ``genre``, ``year``) comes from the cluster: titles mostly use the
  cluster's own words, the first genre is the cluster's genre, years centre on the cluster's era —
  so a text encoder can recover the clusters the interactions depend on.
* **Knowledge graph** (``.kg`` + ``.link``): every item is an entity with ``film.genre``,
  ``film.year``, ``film.decade`` and ``film.series`` (its cluster) edges.

Items in the catalogue may end up with no interaction when the skew is extreme; users never do.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from m6rec_bench.errors import UsageError
from m6rec_bench.io import atomic_path
from m6rec_bench.names import check_slug

#: Bumped whenever the same parameters would give different files.
GENERATOR_VERSION = 1
MARKER = "synth.json"
#: Users per block: blocks have fixed boundaries, so output does not depend on memory settings.
BLOCK_USERS = 2048
#: A user with more interactions than items / HEAVY_FRACTION is drawn with O(items) keys.
HEAVY_FRACTION = 16

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Noir", "Horror", "Musical", "Mystery", "Romance", "SciFi", "Thriller", "War", "Western",
)
_SYLLABLES = (
    "ka", "lo", "mi", "ren", "tor", "vel", "sha", "dun", "pri", "zo", "bel", "qua", "nor", "fi", "gan",
    "hol", "ix", "jur", "mar", "ost", "pel", "rim", "sun", "tal", "ul", "vor", "wen", "yel", "zen", "cor",
)
T0 = 1420070400  # 2015-01-01
T1 = 1577836800  # 2020-01-01

Progress = Callable[[int], None]


@dataclass(frozen=True)
class SynthSpec:
    """Everything that determines a synthetic dataset (with :data:`GENERATOR_VERSION`).

    Attributes:
        n_users: users, each with at least ``min_user_interactions`` interactions.
        n_items: items in the catalogue (``.item``, ``.link``).
        n_interactions: rows of ``.inter``, exactly; no (user, item) pair twice.
        seed: seed of every random draw.
        n_clusters: latent item clusters (text, KG and user taste follow them).
        alpha_item: Zipf exponent of item popularity.
        alpha_user: Zipf exponent of user activity beyond the minimum.
        affinity: share of a user's draws taken from their favourite cluster.
        min_user_interactions: the fewest interactions a user has.
    """

    n_users: int
    n_items: int
    n_interactions: int
    seed: int = 0
    n_clusters: int = 20
    alpha_item: float = 0.8
    alpha_user: float = 0.4
    affinity: float = 0.5
    min_user_interactions: int = 5

    def check(self) -> None:
        """UsageError naming the value when the sizes cannot make a dataset."""
        for label, value in (("--users", self.n_users), ("--items", self.n_items), ("--interactions", self.n_interactions)):
            if value < 1:
                raise UsageError(f"{label} must be a positive whole number, got {value}")
        if self.n_users < 2 or self.n_items < 2:
            raise UsageError(f"need at least 2 users and 2 items to split and rank (got {self.n_users} users, "
                             f"{self.n_items} items)")
        if self.seed < 0:
            raise UsageError(f"--seed must be 0 or more, got {self.seed}")
        if self.n_clusters < 1:
            raise UsageError(f"n_clusters must be at least 1, got {self.n_clusters}")
        if not 0 <= self.affinity <= 1:
            raise UsageError(f"affinity must be between 0 and 1, got {self.affinity}")
        if self.alpha_item < 0 or self.alpha_user < 0:
            raise UsageError("alpha_item and alpha_user must be 0 or more")
        total = self.n_users * self.n_items
        if self.n_interactions > total:
            raise UsageError(
                f"--interactions {self.n_interactions} is more than users × items = {self.n_users} × {self.n_items} "
                f"= {total}: without duplicate pairs that is impossible — lower --interactions or raise --users/--items"
            )
        low = min(self.min_user_interactions, self.n_items)
        if self.n_interactions < low * self.n_users:
            raise UsageError(
                f"--interactions {self.n_interactions} is fewer than {low} per user × {self.n_users} users = "
                f"{low * self.n_users}: every user needs at least {low} interactions for RecBole's 8:1:1 split — "
                f"raise --interactions or lower --users"
            )


def _short(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def default_name(spec: SynthSpec) -> str:
    """``synth-u140k-i27k-n20M-s0``: the sizes and seed, compact where they are round."""
    return f"synth-u{_short(spec.n_users)}-i{_short(spec.n_items)}-n{_short(spec.n_interactions)}-s{spec.seed}"


def check_name(name: str) -> str:
    """The dataset name, or UsageError: a path name (:mod:`m6rec_bench.names`); never a bundled RecBole name."""
    check_slug(name, "dataset name", hint="pick another --name or --out")
    if name == "ml-100k":
        raise UsageError("a synthetic dataset cannot be called 'ml-100k': RecBole would read its bundled copy instead")
    return name


# ---------------------------------------------------------------------------------------- sampling


def _zipf_weights(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Weights ``rank ** -alpha`` over a random permutation of ``n`` slots, summing to 1."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    w = w[rng.permutation(n)]
    return w / w.sum()


def user_degrees(spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """Interactions per user: the minimum plus a Zipf-weighted share of the rest, capped at n_items."""
    low = min(spec.min_user_interactions, spec.n_items)
    deg = np.full(spec.n_users, low, dtype=np.int64)
    weights = _zipf_weights(spec.n_users, spec.alpha_user, rng)
    left = spec.n_interactions - int(deg.sum())
    while left > 0:
        room = deg < spec.n_items
        w = np.where(room, weights, 0.0)
        deg += rng.multinomial(left, w / w.sum())
        over = np.maximum(deg - spec.n_items, 0)
        deg -= over
        left = int(over.sum())
    return deg


@dataclass
class _Catalogue:
    """Per-item arrays and the cluster-sorted popularity CDF used for sampling."""

    cluster: np.ndarray  # (I,) latent cluster of each item
    pop: np.ndarray  # (I,) global popularity, sums to 1
    order: np.ndarray  # items sorted by cluster
    cdf: np.ndarray  # cumulative pop over ``order``
    seg_lo: np.ndarray  # (K,) cdf value where each cluster's segment starts
    seg_hi: np.ndarray  # (K,) … and ends
    quality: np.ndarray  # (I,) item effect on ratings
    cluster_mass: np.ndarray  # (K,) popularity mass of each cluster


def _catalogue(spec: SynthSpec, rng: np.random.Generator) -> _Catalogue:
    n, k = spec.n_items, spec.n_clusters
    sizes = rng.dirichlet(np.full(k, 2.0))
    cluster = rng.choice(k, size=n, p=sizes)
    pop = _zipf_weights(n, spec.alpha_item, rng)
    order = np.argsort(cluster, kind="stable")
    cdf = np.cumsum(pop[order])
    cdf /= cdf[-1]
    mass = np.bincount(cluster, weights=pop, minlength=k)
    hi = np.cumsum(mass) / mass.sum()
    lo = np.concatenate([[0.0], hi[:-1]])
    quality = rng.normal(0.0, 0.5, size=n)
    return _Catalogue(cluster, pop, order, cdf, lo, hi, quality, mass)


def _draw(cat: _Catalogue, fav: np.ndarray, affinity: float, rng: np.random.Generator) -> np.ndarray:
    """One item per entry of ``fav`` (the drawing user's favourite cluster), from the mixture."""
    from_cluster = rng.random(len(fav)) < affinity
    lo = np.where(from_cluster, cat.seg_lo[fav], 0.0)
    hi = np.where(from_cluster, cat.seg_hi[fav], 1.0)
    u = lo + rng.random(len(fav)) * (hi - lo)
    pos = np.minimum(np.searchsorted(cat.cdf, u, side="right"), len(cat.cdf) - 1)
    return cat.order[pos]


def _heavy_user(cat: _Catalogue, fav: int, d: int, affinity: float, rng: np.random.Generator) -> np.ndarray:
    """``d`` distinct items by Efraimidis–Spirakis keys ``log(u) / w`` (weighted, no replacement)."""
    mass = cat.cluster_mass[fav]
    w = (1.0 - affinity) * cat.pop + (affinity / mass if mass > 0 else 0.0) * cat.pop * (cat.cluster == fav)
    with np.errstate(divide="ignore"):
        keys = np.log(rng.random(len(w))) / w
    top = np.argpartition(-keys, d - 1)[:d] if d < len(w) else np.arange(len(w))
    return top[np.argsort(-keys[top], kind="stable")]


def _light_users(cat: _Catalogue, fav: np.ndarray, deg: np.ndarray, affinity: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(owner index, item) rows for users drawn by successive sampling, repeats rejected."""
    n_items = len(cat.pop)
    owners_out: list[np.ndarray] = []
    items_out: list[np.ndarray] = []
    todo = np.arange(len(deg))
    factor = 1.3
    for _ in range(12):
        if len(todo) == 0:
            break
        d = deg[todo]
        c = np.ceil(d * factor).astype(np.int64) + 4
        local = np.repeat(np.arange(len(todo)), c)
        items = _draw(cat, fav[todo][local], affinity, rng)
        key = local * n_items + items
        srt = np.argsort(key, kind="stable")
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[srt][1:] != key[srt][:-1]
        unique = np.zeros(len(key), dtype=bool)
        unique[srt[first]] = True
        # rank of each unique draw among its user's unique draws, in draw order
        csum = np.cumsum(unique)
        start = np.concatenate([[0], np.cumsum(c)[:-1]])
        before = np.where(start > 0, csum[start - 1], 0)
        rank = csum - 1 - before[local]
        keep = unique & (rank < d[local])
        got = np.bincount(local[keep], minlength=len(todo))
        done = got == d
        rows = keep & done[local]
        owners_out.append(todo[local[rows]])
        items_out.append(items[rows])
        todo = todo[~done]
        factor *= 2.0
    for u in todo:  # pathological skew: fall back to exact keys
        owners_out.append(np.full(deg[u], u))
        items_out.append(_heavy_user(cat, int(fav[u]), int(deg[u]), affinity, rng))
    owners = np.concatenate(owners_out) if owners_out else np.zeros(0, dtype=np.int64)
    items = np.concatenate(items_out) if items_out else np.zeros(0, dtype=np.int64)
    srt = np.argsort(owners, kind="stable")
    return owners[srt], items[srt]


def interaction_blocks(spec: SynthSpec):
    """Yield ``(user, item, rating, timestamp)`` arrays, one block of users at a time.

    Ids are 0-based here (the files use ``id + 1``); rows of a block are sorted by user. Each block
    has its own random stream (spawned from the seed), so a block's rows depend only on the spec.
    """
    root = np.random.SeedSequence([spec.seed, GENERATOR_VERSION])
    cat_seq, user_seq, block_seq = root.spawn(3)
    cat = _catalogue(spec, np.random.default_rng(cat_seq))
    urng = np.random.default_rng(user_seq)
    deg = user_degrees(spec, urng)
    fav = urng.choice(spec.n_clusters, size=spec.n_users, p=cat.cluster_mass / cat.cluster_mass.sum())
    start_time = urng.integers(T0, T1 - 86_400 * 30, size=spec.n_users)
    heavy_at = max(spec.n_items // HEAVY_FRACTION, 1)
    n_blocks = math.ceil(spec.n_users / BLOCK_USERS)
    for b, seq in enumerate(block_seq.spawn(n_blocks)):
        rng = np.random.default_rng(seq)
        lo, hi = b * BLOCK_USERS, min((b + 1) * BLOCK_USERS, spec.n_users)
        users = np.arange(lo, hi)
        d = deg[lo:hi]
        heavy = d > heavy_at
        owners, items = _light_users(cat, fav[lo:hi][~heavy], d[~heavy], spec.affinity, rng)
        parts_u = [users[~heavy][owners]]
        parts_i = [items]
        for u in users[heavy]:
            parts_u.append(np.full(deg[u], u))
            parts_i.append(_heavy_user(cat, int(fav[u]), int(deg[u]), spec.affinity, rng))
        user = np.concatenate(parts_u)
        item = np.concatenate(parts_i)
        srt = np.argsort(user, kind="stable")
        user, item = user[srt], item[srt]
        match = cat.cluster[item] == fav[user]
        raw = 3.4 + cat.quality[item] + 0.6 * match + rng.normal(0.0, 0.9, size=len(item))
        rating = np.clip(np.rint(raw), 1, 5).astype(np.int8)
        t0 = start_time[user]
        ts = t0 + (rng.random(len(item)) * (T1 - t0)).astype(np.int64)
        yield user, item, rating, ts


def _words(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct pseudo-words of 2–3 syllables."""
    out: dict[str, None] = {}
    while len(out) < n:
        k = int(rng.integers(2, 4))
        out[("".join(rng.choice(_SYLLABLES, size=k))).capitalize()] = None
    return list(out)


def _item_tables(spec: SynthSpec) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """Rows of ``.item``, ``.link`` and ``.kg`` (1-based item ids, as in ``.inter``)."""
    root = np.random.SeedSequence([spec.seed, GENERATOR_VERSION])
    cat_seq, _, _ = root.spawn(3)
    cat = _catalogue(spec, np.random.default_rng(cat_seq))
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, GENERATOR_VERSION, 7]))
    k, n = spec.n_clusters, spec.n_items
    pool = _words(rng, max(400, 12 * k))
    vocab = [rng.choice(len(pool), size=12, replace=False) for _ in range(k)]
    era = rng.integers(1950, 2016, size=k)
    second = rng.integers(0, len(GENRES), size=k)
    n_words = rng.integers(2, 5, size=n)
    own = rng.random((n, 4)) < 0.8
    own_pick = rng.integers(0, 12, size=(n, 4))
    any_pick = rng.integers(0, len(pool), size=(n, 4))
    years = np.clip(np.rint(era[cat.cluster] + rng.normal(0, 6, size=n)), 1920, 2019).astype(int)
    has_second = rng.random(n) < 0.5
    items, links, kg = [], [], []
    for i in range(n):
        c = int(cat.cluster[i])
        words = [pool[vocab[c][own_pick[i, j]]] if own[i, j] else pool[any_pick[i, j]] for j in range(n_words[i])]
        genres = [GENRES[c % len(GENRES)]]
        g2 = GENRES[int(second[c])]
        if has_second[i] and g2 not in genres:
            genres.append(g2)
        iid, ent, year = str(i + 1), f"e{i + 1}", int(years[i])
        items.append([iid, " ".join(words), " ".join(genres), str(year)])
        links.append([iid, ent])
        kg.extend([ent, "film.genre", f"genre.{g}"] for g in genres)
        kg.append([ent, "film.year", f"year.{year}"])
        kg.append([ent, "film.decade", f"decade.{year // 10 * 10}"])
        kg.append([ent, "film.series", f"series.{c}"])
    return items, links, kg


# ---------------------------------------------------------------------------------------- writing


def _write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\t".join(header) + "\n")
        fh.writelines("\t".join(r) + "\n" for r in rows)


def write_files(spec: SynthSpec, folder: Path, name: str, progress: Progress | None = None) -> dict[str, int]:
    """Write ``<folder>/<name>.{inter,item,link,kg}``; return row counts. ``progress(n)`` per block."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    n_rows = 0
    items_seen = np.zeros(spec.n_items, dtype=bool)
    with atomic_path(folder / f"{name}.inter") as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for user, item, rating, ts in interaction_blocks(spec):
            items_seen[item] = True
            frame = pd.DataFrame({"u": user + 1, "i": item + 1, "r": rating, "t": ts})
            frame.to_csv(fh, sep="\t", header=False, index=False, lineterminator="\n")
            n_rows += len(user)
            if progress is not None:
                progress(len(user))
    if n_rows != spec.n_interactions:  # a bug, not bad input
        raise AssertionError(f"generated {n_rows} interactions, expected {spec.n_interactions}")
    items, links, kg = _item_tables(spec)
    _write_rows(folder / f"{name}.item", ["item_id:token", "title:token_seq", "genre:token_seq", "year:token"], items)
    _write_rows(folder / f"{name}.link", ["item_id:token", "entity_id:token"], links)
    _write_rows(folder / f"{name}.kg", ["head_id:token", "relation_id:token", "tail_id:token"], kg)
    return {"inter": n_rows, "item": len(items), "link": len(links), "kg": len(kg),
            "items_with_interactions": int(items_seen.sum())}


def _marker_matches(folder: Path, spec: SynthSpec) -> bool:
    try:
        meta = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("spec") == asdict(spec) and meta.get("generator_version") == GENERATOR_VERSION


def synthesize(spec: SynthSpec, folder: Path, *, force: bool = False,
               progress: Progress | None = None) -> tuple[Path, bool]:
    """Generate ``spec`` into the dataset folder ``folder`` (its name is the dataset name).

    Built in a temporary sibling and moved into place, so a failure leaves nothing half-written.
    A folder already holding the same spec (its ``synth.json``) is reused unless ``force``.
    Returns ``(folder, generated)``.
    """
    spec.check()
    folder = Path(folder).expanduser().resolve()
    name = check_name(folder.name)
    if not force and _marker_matches(folder, spec):
        return folder, False
    if folder.exists() and not (folder / MARKER).is_file() and any(folder.iterdir()):
        raise UsageError(f"{folder} exists and was not made by 'm6bench datasets synth' — pick another --out, "
                         "or remove it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.synth-", dir=folder.parent))
    try:
        counts = write_files(spec, tmp, name, progress)
        meta = {"spec": asdict(spec), "generator_version": GENERATOR_VERSION, "name": name, "counts": counts}
        (tmp / MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, True
