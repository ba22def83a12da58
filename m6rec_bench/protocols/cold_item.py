"""The item cold-start protocol (``--protocol cold-item``): can a model rank items nobody has rated?

Split (seeded, written as RecBole pre-split benchmark files so every model — baseline or plugin —
loads the very same data through RecBole's own ``benchmark_filename`` mechanism):

* a random 20 % of the items that have interactions become **cold**, with *all* their
  interactions; half of them (rounded down) are *cold-valid*, the rest *cold-test*;
* the remaining **warm** interactions are split 8:1:1 per user, after a seeded shuffle, with
  RecBole's own per-user rounding (``Dataset._calcu_split_ids``), as in the default protocol;
* ``<name>.train.inter`` = warm-train; ``<name>.valid.inter`` = warm-valid + every interaction of
  the cold-valid items; ``<name>.test.inter`` = warm-test + every interaction of the cold-test items.

Nothing is hidden from ID-only models or done for them: cold items get internal ids (they appear in
valid/test), so RecBole scores them with embeddings that training never fitted to a positive — the
cold columns of the leaderboard show exactly that.

Validation: early stopping and model selection use RecBole's valid NDCG@10 over the whole valid
file (warm-valid and cold-valid positives together), the same rule for every model. Cold-valid
items are disjoint from cold-test items, so selecting on them does not leak test items.

Test metrics are reported three ways (:meth:`ColdItemProtocol.extra_metrics`): ``overall`` (all
test positives — equal to RecBole's own test result), ``cold`` (only each user's cold-test items are
positives; users without any are left out) and ``warm`` (only warm items). Every group ranks the full
item catalogue with the user's train/valid history masked, exactly as RecBole's full-sort evaluator.

The derived folder lives in ``cache_dir("splits")/<name>-cold-item-seed<seed>-<hash>/`` and holds
``<split name>.{train,valid,test}.inter`` plus the dataset's ``.item``/``.user``/``.kg``/``.link``
(hard links, or copies), renamed, so plugins still find side information. The split is named
``<name>-cold-s<seed>`` rather than ``<name>``: RecBole forces ``data_path`` to its bundled copy for a
dataset called ``ml-100k`` (``Config._set_default_parameters``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from m6rec_bench import compat
from m6rec_bench.datasets.atomic import header_names
from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.errors import DataError, UsageError
from m6rec_bench.io import atomic_write_json
from m6rec_bench.paths import cache_dir
from m6rec_bench.protocols.base import Protocol, register
from m6rec_bench.protocols.split_files import link_side_files, materialize, read_inter, write_rows

#: Bump when the split algorithm changes: it is part of the split folder's hash.
SPLIT_VERSION = 1
COLD_FRACTION = 0.2
WARM_RATIOS = (0.8, 0.1, 0.1)
MARKER = "cold_items.json"
SIDE_SUFFIXES = ("item", "user", "kg", "link", "net")
BENCHMARK_FILES = ["train", "valid", "test"]


def _split_counts(total: int, ratios: tuple[float, ...]) -> list[int]:
    """Cut points of one user's interactions; RecBole's ``Dataset._calcu_split_ids`` verbatim."""
    cnt = [int(ratios[i] * total) for i in range(len(ratios))]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return [int(x) for x in np.cumsum(cnt)[:-1]]


@dataclass(frozen=True)
class ColdSplit:
    """Which lines of the ``.inter`` file go where, and which items are cold."""

    train: list[str]
    valid: list[str]
    test: list[str]
    cold_valid: list[str]
    cold_test: list[str]


def split_lines(header: str, lines: list[str], seed: int, cold_fraction: float = COLD_FRACTION) -> ColdSplit:
    """Split data lines of an ``.inter`` file (header gives the columns) by the cold-item rule."""
    names = header_names(header)
    try:
        u_col, i_col = names.index("user_id"), names.index("item_id")
    except ValueError:
        raise DataError(f"an .inter file needs user_id and item_id columns; header is {header.strip()!r}") from None
    rows = [line.rstrip("\r\n").split("\t") for line in lines]
    users = [r[u_col] for r in rows]
    items = [r[i_col] for r in rows]
    catalogue = sorted(set(items))
    n_cold = max(2, int(round(cold_fraction * len(catalogue))))
    if len(catalogue) < 4 or n_cold >= len(catalogue):
        raise DataError(f"cold-item split needs at least 4 items with interactions (found {len(catalogue)})")
    rng = np.random.default_rng(seed)
    cold = [catalogue[i] for i in rng.permutation(len(catalogue))[:n_cold]]
    cold_valid, cold_test = sorted(cold[: n_cold // 2]), sorted(cold[n_cold // 2 :])
    where = dict.fromkeys(cold_valid, 1) | dict.fromkeys(cold_test, 2)

    parts: list[list[int]] = [[], [], []]
    warm_by_user: dict[str, list[int]] = {}
    for idx, (user, item) in enumerate(zip(users, items, strict=True)):
        dest = where.get(item)
        if dest is None:
            warm_by_user.setdefault(user, []).append(idx)
        else:
            parts[dest].append(idx)
    for user in sorted(warm_by_user):
        idx = np.asarray(warm_by_user[user])
        idx = idx[rng.permutation(len(idx))]
        cuts = _split_counts(len(idx), WARM_RATIOS)
        for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
            part.extend(chunk.tolist())
    out = [[lines[i] for i in sorted(part)] for part in parts]
    return ColdSplit(out[0], out[1], out[2], cold_valid, cold_test)


def split_name(ds: PreparedDataset, seed: int) -> str:
    """The RecBole dataset name of the cold split of ``ds`` with ``seed``."""
    return f"{ds.name}-cold-s{seed}"


def split_root(ds: PreparedDataset, seed: int) -> Path:
    """The ``data_path`` of the cold split of ``ds`` with ``seed`` (it may not exist yet)."""
    key = json.dumps({"checksum": ds.checksum, "version": SPLIT_VERSION, "fraction": COLD_FRACTION,
                      "ratios": WARM_RATIOS}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir("splits") / f"{ds.name}-cold-item-seed{seed}-{digest}"


def _write_split(ds: PreparedDataset, folder: Path, name: str, seed: int) -> dict[str, Any]:
    header, lines = read_inter(ds)
    split = split_lines(header, lines, seed)
    for part, rows in zip(BENCHMARK_FILES, (split.train, split.valid, split.test), strict=True):
        write_rows(folder / f"{name}.{part}.inter", header, rows)
    link_side_files(ds, folder, name, SIDE_SUFFIXES)
    meta = {
        "source": ds.name, "source_checksum": ds.checksum, "seed": seed, "version": SPLIT_VERSION,
        "cold_fraction": COLD_FRACTION, "warm_ratios": list(WARM_RATIOS),
        "n_interactions": {"train": len(split.train), "valid": len(split.valid), "test": len(split.test)},
        "cold_valid": split.cold_valid, "cold_test": split.cold_test,
    }
    atomic_write_json(folder / MARKER, meta)
    return meta


def prepare_split(ds: PreparedDataset, seed: int) -> PreparedDataset:
    """Write (or reuse) the cold-item split of ``ds`` for ``seed`` and return it as a dataset."""
    if not ds.features.item_text and not ds.features.kg:
        raise UsageError(
            f"protocol 'cold-item' needs item text or a knowledge graph, and dataset '{ds.name}' has neither "
            "(a cold item is known only by its content) — use --protocol default"
        )
    if not ds.atomic_file("inter").is_file():
        raise DataError(f"{ds.atomic_file('inter')} not found — cannot build the cold-item split")
    root, name = split_root(ds, seed), split_name(ds, seed)
    materialize(ds, seed, root, name, MARKER, lambda folder: _write_split(ds, folder, name, seed))
    return PreparedDataset(
        name=name, root=root, checksum=ds.checksum, features=ds.features,
        source=f"cold-item split of {ds.name} ({ds.checksum[:19]}), seed {seed}",
    )


def cold_items(folder: str | os.PathLike[str]) -> dict[str, list[str]]:
    """``{"cold_valid": [...], "cold_test": [...]}`` item tokens of a split folder."""
    path = Path(folder) / MARKER
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is missing or unreadable — not a cold-item split folder ({exc})") from exc
    return {"cold_valid": list(meta["cold_valid"]), "cold_test": list(meta["cold_test"])}


def item_groups(run: Any) -> dict[str, np.ndarray]:
    """Boolean masks over the run's internal item ids: ``cold`` (cold-test items) and ``warm``.

    Warm items are the items the split did not hold out (cold-valid items are neither; they are
    never test positives). A warm item whose few interactions all fell into valid/test by the
    per-user split stays warm: the groups follow the protocol's definition, not the training data.
    """
    dataset = run.dataset
    held = cold_items(run.config["data_path"])
    known = dataset.field2token_id[dataset.iid_field]
    cold = np.zeros(dataset.item_num, dtype=bool)
    cold[[known[t] for t in held["cold_test"] if t in known]] = True
    warm = np.ones(dataset.item_num, dtype=bool)
    warm[[known[t] for t in held["cold_test"] + held["cold_valid"] if t in known]] = False
    warm[0] = False  # padding
    return {"cold": cold, "warm": warm}


#: The cold-item protocol's setting that switches :func:`exclude_held_out_negatives` on (it is part of
#: every cell's config, so its hash and record say so).
TRAIN_NEGATIVES = ("m6_train_negatives", "warm items only")


def exclude_held_out_negatives(train_data: Any) -> None:
    """Never draw a held-out item as a training negative.

    RecBole gives the items of the benchmark files' valid/test parts ids, and its uniform negative
    sampler draws from every id, so without this a model trained with sampled negatives would be
    told, epoch after epoch, that exactly the cold items are bad: knowledge of which items will be
    new, and a push against them that a content model (text, KG) cannot escape. The held-out items
    are added to every user's "already used" set of the *training* phase only; validation and test
    rank every item as before.
    """
    if not compat.samples_negatives(train_data):
        return
    dataset = compat.loader_dataset(train_data)
    held = cold_items(dataset.config["data_path"])
    known = dataset.field2token_id[dataset.iid_field]
    compat.exclude_negatives(train_data, {known[t] for t in held["cold_valid"] + held["cold_test"] if t in known})


class ColdItemProtocol(Protocol):
    """The cold-item protocol: pre-split benchmark files, metrics on cold, warm and all items."""

    def prepare(self, ds: PreparedDataset, seed: int) -> tuple[PreparedDataset, dict[str, Any]]:
        return prepare_split(ds, seed), {"benchmark_filename": list(BENCHMARK_FILES)}

    def extra_metrics(self, run: Any) -> dict[str, dict[str, float]]:
        """``{"cold": …, "warm": …, "overall": …}`` test means (RecBole's names, e.g. ``ndcg@10``).

        The per-user values stay on ``run.per_user_metrics`` (``name -> PerUserMetrics``).
        """
        from m6rec_bench.evaluation import evaluate_groups

        groups = item_groups(run)
        result = evaluate_groups(
            run.model, run.test_data, {"cold": groups["cold"], "warm": groups["warm"], "overall": None},
            metrics=run.config["metrics"], topk=run.config["topk"],
        )
        run.per_user_metrics = result  # kept on the run for artifacts and paired significance tests
        decimals = run.config["metric_decimal_place"]
        return {name: res.means(decimals) for name, res in result.items()}


COLD_ITEM = register(
    ColdItemProtocol(
        name="cold-item",
        description="20 % of items held out with all their interactions (half valid, half test); "
        "warm 8:1:1 per user; full ranking; metrics on cold, warm and all items",
        recbole={"eval_args": {"split": None, "group_by": "user", "order": "RO", "mode": "full"},
                 # part of every cell's config (and hash): held-out items are never training negatives
                 TRAIN_NEGATIVES[0]: TRAIN_NEGATIVES[1]},
    )
)
