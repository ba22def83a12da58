"""The registry of leaderboard column sets: record ``extra_metrics`` groups shown as columns.

A cell's record may carry ``extra_metrics[<group>] = {key: number}`` beside RecBole's test
metrics. Groups named here are *column sets*: each listed key becomes one leaderboard column (mean
over seeds), shown on a board only when some row has the group, with the set's note under the
table heading. Every other group (``cold``, ``warm``, ``overall`` of the cold-item protocol) is a
*metric group*, shown with the board's group metrics (NDCG@10, Recall@20).

One place for every kind of extra column: a writer never imports a model to learn its columns, and
a model only writes numbers under these keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    """One column: its heading, the key in the group, decimals, and whether a sign is printed."""

    heading: str
    key: str
    digits: int = 4
    signed: bool = False
    #: multiply before printing (0.0123 share → 1.23 %)
    scale: float = 1.0

    def fmt(self, mean: float) -> str:
        value = mean * self.scale
        return f"{value:+.{self.digits}f}" if self.signed else f"{value:,.{self.digits}f}"


@dataclass(frozen=True)
class ColumnSet:
    """The columns of one ``extra_metrics`` group, in order, and the note that explains them."""

    group: str
    columns: tuple[Column, ...]
    note: str
    #: CSV headers ``<group>_<key>``; the compression set keeps the bare keys it always had
    csv_prefix: bool = True

    def csv_key(self, col: Column) -> str:
        return f"{self.group}_{col.key}" if self.csv_prefix else col.key


COLUMN_SETS: dict[str, ColumnSet] = {}


def register(column_set: ColumnSet) -> ColumnSet:
    """Add a column set (only this module declares them)."""
    COLUMN_SETS[column_set.group] = column_set
    return column_set


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
))

BEYOND = register(ColumnSet(
    "beyond",
    (Column("Coverage@10", "coverage@10", 4), Column("Novelty@10", "novelty@10", 2),
     Column("ILD@10", "ild@10", 4)),
    "Beyond accuracy, over every test user's top-10 (m6rec_bench/beyond.py): *Coverage@10* share of the catalogue "
    "recommended to anyone; *Novelty@10* mean self-information −log2(share of training users who interacted with "
    "the item); *ILD@10* mean pairwise cosine distance of the listed items' training-interaction vectors.",
))

RATING = register(ColumnSet(
    "rating",
    (Column("RMSE", "rmse", 4), Column("MAE", "mae", 4)),
    "*RMSE* / *MAE*: error of the predicted explicit rating on the test interactions (models with a rating head).",
))

ADAPTATION = register(ColumnSet(
    "adaptation",
    (Column("Trainable %", "trainable_share", 2, scale=100.0), Column("Adapt s", "adapt_time_s", 1),
     Column("Pretrain s", "pretrain_time_s", 1)),
    "*Trainable %*: share of the model's parameters the target task trains (adapters vs full fine-tuning vs "
    "scratch); *Adapt s*: training time on the target task; *Pretrain s*: source-task pretraining (cached, "
    "shared by the rows that start from it).",
))

RERANK = register(ColumnSet(
    "rerank",
    (Column("Replay matched", "replay_matched", 0), Column("Replay reward", "replay_reward", 4)),
    "*Replay*: the re-ranking policy learned online on logged validation events by replay (Li et al., WSDM 2011): "
    "*matched* = logged events whose shown item the policy also chose (only those update and score it), "
    "*reward* = mean reward over matched events.",
))


def present(extras: Iterable[Mapping[str, Any]]) -> list[ColumnSet]:
    """The column sets, in registry order, that at least one of these rows' ``extras`` has."""
    rows = list(extras)
    return [cs for cs in COLUMN_SETS.values() if any(row.get(cs.group) for row in rows)]


__all__ = ["COLUMN_SETS", "Column", "ColumnSet", "present", "register"]
