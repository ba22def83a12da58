"""The sequential protocol (``--protocol sequential``): predict each user's next item in time.

Split: RecBole's own leave-one-out in time order, ``eval_args: {split: {LS: valid_and_test},
order: TO, group_by: user, mode: full}`` (Kang & McAuley, "Self-Attentive Sequential
Recommendation", ICDM 2018, and RecBole's sequential benchmarks use the same split). Every user's
interactions are ordered by timestamp; the last one is the test item, the one before it the
validation item, the rest train. Ranking is over the full item catalogue.

* **Sequential models** (RecBole's GRU4Rec, SASRec, SRGNN, … and sequential plugins) see, for each
  target, the user's preceding items (``item_id_list``, at most ``MAX_ITEM_LIST_LENGTH`` = 50;
  RecBole's data augmentation turns every prefix of a training sequence into one example). They
  train with cross-entropy over all items (RecBole's ``loss_type: CE``), so no negatives are
  sampled (``train_neg_sample_args: None``, set per model by the registry / the plugin).
* **General models** (Pop, BPR, …) run on the very same split as references: they train on each
  user's train interactions as a set and rank for the user.

One difference comes from RecBole's evaluator, not from this protocol: for general models the
full-sort evaluator masks the user's train (and, on test, valid) items; for sequential models it
masks nothing, since a sequence model may legitimately recommend an item again. On data without
repeat consumption (MovieLens: one rating per user and item) that masking favours the general rows
slightly; the leaderboard reports RecBole's numbers as they are.

Exact time order: RecBole sorts float32 timestamps, which tie at second-scale gaps; the shim
``m6rec_bench.compat._exact_time_order`` (RecBole#2204) makes the split follow the exact timestamps.
Ties in the data itself keep the file order, as in RecBole.
"""

from __future__ import annotations

from typing import Any

from m6rec_bench.datasets.atomic import header_names
from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.errors import DataError, UsageError
from m6rec_bench.protocols.base import Protocol, register

#: RecBole's default time field name (``TIME_FIELD``), which the dataset converters write.
TIME_FIELD = "timestamp"
#: The interaction columns the protocol loads: RecBole's ml-100k selection, for every dataset
#: (RecBole's generic ``sample.yaml`` loads only user and item ids, so no timestamp).
LOAD_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
#: Sequential baselines of the default sequential suite (RecBole 1.2.1, run unchanged).
DEFAULT_SEQUENTIAL_BASELINES: tuple[str, ...] = ("GRU4Rec", "SASRec", "SRGNN")


def inter_columns(ds: PreparedDataset) -> list[str]:
    """Column names (types stripped) of the dataset's ``.inter`` header."""
    path = ds.atomic_file("inter")
    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline()
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror}) — cannot build the sequential split") from None
    return header_names(header)


class SequentialProtocol(Protocol):
    """Leave-one-out in time order; sequential models and general references on one split."""

    def prepare(self, ds: PreparedDataset, seed: int) -> tuple[PreparedDataset, dict[str, Any]]:
        if TIME_FIELD not in inter_columns(ds):
            raise UsageError(
                f"protocol 'sequential' orders each user's interactions by time, and dataset '{ds.name}' has no "
                f"'{TIME_FIELD}' column in {ds.atomic_file('inter').name} — use --protocol default, or add a "
                f"{TIME_FIELD}:float column"
            )
        return ds, {}


SEQUENTIAL = register(
    SequentialProtocol(
        name="sequential",
        description="leave-one-out in time order per user (last item test, one before valid); full ranking; "
        "sequential models (GRU4Rec, SASRec, SRGNN, plugins) plus general references",
        recbole={
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
            "load_col": {"inter": list(LOAD_COLUMNS)},
        },
        model_types=("sequential", "general"),
        default_models=("Pop", "BPR", *DEFAULT_SEQUENTIAL_BASELINES),
    )
)
