"""A protocol decides how a dataset is split and evaluated; the model never knows which one runs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.errors import DataError, UsageError
from m6rec_bench.lookup import Registry

#: Metrics and cut-offs every protocol reports (issue #3: RecBole's metrics at 10 and 20).
METRICS = ["Recall", "MRR", "NDCG", "Hit", "Precision"]
TOPK = [10, 20]
VALID_METRIC = "NDCG@10"
#: Fewest interactions of one user for a per-user split to give it train, valid and test ones.
MIN_USER_INTERACTIONS = 3


@dataclass(frozen=True)
class Protocol:
    """Name, description and the RecBole settings that implement the split and evaluation.

    ``prepare`` may write derived files (e.g. pre-split benchmark files) and returns the dataset to
    load plus any extra RecBole settings; the default protocol loads the dataset as it is.

    ``model_types`` are the kinds of model (RecBole's ``ModelType``, lower-case: ``general``,
    ``sequential``) the protocol can evaluate, its own kind first: a sequential model needs the
    item sequences only a time-ordered protocol builds. ``default_models`` are the baselines that
    ``m6bench run`` runs under it without ``--models`` (``None``: the registry's default baselines);
    default plugins of the protocol's own kind join them.
    """

    name: str
    description: str
    recbole: dict[str, Any] = field(default_factory=dict)
    model_types: tuple[str, ...] = ("general",)
    default_models: tuple[str, ...] | None = None

    @property
    def model_type(self) -> str:
        """The kind of model the protocol is built for (its default plugins are of this kind)."""
        return self.model_types[0]

    def runs(self, model_type: str) -> bool:
        """Whether a model of ``model_type`` can run under this protocol."""
        return model_type in self.model_types

    def check_model(self, name: str, model_type: str) -> None:
        """Refuse a model this protocol cannot evaluate, saying which protocol it needs."""
        if self.runs(model_type):
            return
        homes = [p.name for p in PROTOCOLS.values() if p.runs(model_type)]
        where = f"--protocol {' or --protocol '.join(homes)}" if homes else "no protocol here"
        raise UsageError(
            f"model '{name}' is a {model_type} recommender and protocol '{self.name}' cannot evaluate it — "
            f"run it with {where}, or drop it from --models"
        )

    def prepare(self, ds: PreparedDataset, seed: int) -> tuple[PreparedDataset, dict[str, Any]]:
        return ds, {}

    def check_dataset(self, ds: PreparedDataset) -> None:
        """Refuse (DataError) a dataset this protocol cannot split into non-empty train, valid and test.

        Every protocol here splits each user's interactions (8:1:1 with RecBole's rounding, or
        leave-one-out), so a user gives valid and test interactions only from
        :data:`MIN_USER_INTERACTIONS` on; with no such user RecBole trains, finds nothing to
        evaluate and reports NaN metrics as an ``ok`` row. Reads ``.inter`` only until one such
        user turns up (the first few lines of any real dataset).
        """
        from m6rec_bench.datasets.atomic import read_header

        inter = ds.atomic_file("inter")
        uid = [c for c, _ in read_header(inter)].index("user_id")
        counts: Counter[str] = Counter()
        with open(inter, encoding="utf-8") as fh:
            fh.readline()
            for line in fh:
                fields = line.rstrip("\r\n").split("\t")
                if len(fields) > uid and fields[uid]:
                    counts[fields[uid]] += 1
                    if counts[fields[uid]] >= MIN_USER_INTERACTIONS:
                        return
        raise DataError(
            f"{inter}: dataset '{ds.name}' is too small for protocol '{self.name}': no user has "
            f"{MIN_USER_INTERACTIONS} or more interactions ({sum(counts.values())} interactions of {len(counts)} users), "
            "so the split would leave valid and test empty — add interactions"
        )

    def extra_metrics(self, run: Any) -> dict[str, dict[str, float]]:
        """Metric groups beyond RecBole's test metrics (e.g. cold / warm items); none by default."""
        return {}

    def settings(self) -> dict[str, Any]:
        """RecBole config entries of this protocol."""
        return {
            "metrics": list(METRICS),
            "topk": list(TOPK),
            "valid_metric": VALID_METRIC,
            **self.recbole,
        }


#: Protocols by name (case-sensitive: a protocol's name is a folder of every board and record). Beside
#: :class:`Protocol`, so the protocol modules register themselves without importing the package.
PROTOCOLS: Registry[Protocol] = Registry("protocol", case_sensitive=True,
                                         unknown="protocol '{name}' not found{hint}; known: {known}")


def register(protocol: Protocol) -> Protocol:
    """Add a protocol to the registry (used by the protocol modules themselves)."""
    return PROTOCOLS.register(protocol.name, protocol)
