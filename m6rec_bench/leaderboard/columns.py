"""The registry of leaderboard column sets: record ``extra_metrics`` groups shown as columns.

A cell's record may carry ``extra_metrics[<group>] = {key: number}`` beside RecBole's test
metrics. Groups named here are *column sets*: each listed key becomes one leaderboard column (mean
over seeds), shown on a board only when some row has the group, with the set's note under the
table heading. Every other group (``cold``, ``warm``, ``overall`` of the cold-item protocol) is a
*metric group*, shown with the board's group metrics (NDCG@10, Recall@20).

The core's own sets (compression, beyond-accuracy, re-ranking) are declared here; a plugin declares
the sets of its own groups in its :class:`~m6rec_bench.models.plugin.Plugin` (``column_sets``) and
card, and :func:`column_sets` joins both — read from the plugins' cards, so a writer never imports a
model to learn its columns, and a model only writes numbers under these keys. A board shows a
plugin's columns while that plugin is installed; sets are ordered by ``ColumnSet.order``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from m6rec_bench.lookup import Registry
from m6rec_bench.models.plugin import Column, ColumnSet


#: The core's column sets (plugins' come from their cards: :func:`column_sets`).
COLUMN_SETS: Registry[ColumnSet] = Registry("column set", case_sensitive=True)


def register(column_set: ColumnSet) -> ColumnSet:
    """Add a core column set (only this module declares them; plugins use ``Plugin.column_sets``)."""
    return COLUMN_SETS.register(column_set.group, column_set)


def column_sets() -> dict[str, ColumnSet]:
    """Every column set by group, ordered by ``order`` (then core first): the core's and those the
    installed plugins declare (from their cards, nothing imported). A plugin cannot redefine a group
    the core or an earlier plugin (by entry-point name) declared."""
    from m6rec_bench.models import registry

    found = dict(COLUMN_SETS.items())
    for cs in registry.plugin_column_sets():
        found.setdefault(cs.group, cs)
    return {cs.group: cs for cs in sorted(found.values(), key=lambda cs: cs.order)}


COMPRESSION = register(ColumnSet(
    "compression",
    (Column("Size MB", "size_mb", 2), Column("Users/s", "users_per_s", 0),
     Column("ΔNDCG@10 vs uncompressed", "ndcg@10_delta", 4, signed=True)),
    "*[int8]* / *[prune:r]* rows are the uncompressed row's own trained models, compressed without retraining "
    "(`--compress`; m6rec_bench/compress.py). *Size MB*: the model's dense tensors serialized as the method stores "
    "them; *Users/s*: full-ranking scoring throughput on the test users, each compressed model measured right "
    "after its uncompressed twin in one process; *ΔNDCG@10*: compressed minus uncompressed test NDCG@10, seed by "
    "seed; *Params*: non-zero parameters.",
    csv_prefix=False,
    order=10,
))

BEYOND = register(ColumnSet(
    "beyond",
    (Column("Coverage@10", "coverage@10", 4), Column("Novelty@10", "novelty@10", 2),
     Column("ILD@10", "ild@10", 4)),
    "Beyond accuracy, over every test user's top-10 (m6rec_bench/beyond.py): *Coverage@10* share of the catalogue "
    "recommended to anyone; *Novelty@10* mean self-information −log2(share of training users who interacted with "
    "the item); *ILD@10* mean pairwise cosine distance of the listed items' training-interaction vectors.",
    order=20,
))

RERANK = register(ColumnSet(
    "rerank",
    (Column("Replay matched", "replay_matched", 0), Column("Replay reward", "replay_reward", 4)),
    "*Replay*: the re-ranking policy learned online on logged validation events by replay (Li et al., WSDM 2011): "
    "*matched* = logged events whose shown item the policy also chose (only those update and score it), "
    "*reward* = mean reward over matched events.",
    order=50,
))


def present(extras: Iterable[Mapping[str, Any]]) -> list[ColumnSet]:
    """The column sets, in :func:`column_sets` order, that at least one of these rows' ``extras`` has."""
    rows = list(extras)
    return [cs for cs in column_sets().values() if any(row.get(cs.group) for row in rows)]


__all__ = ["COLUMN_SETS", "Column", "ColumnSet", "column_sets", "present", "register"]
