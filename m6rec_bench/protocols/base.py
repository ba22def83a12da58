"""A protocol decides how a dataset is split and evaluated; the model never knows which one runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m6rec_bench.datasets.base import PreparedDataset

#: Metrics and cut-offs every protocol reports (issue #3: RecBole's metrics at 10 and 20).
METRICS = ["Recall", "MRR", "NDCG", "Hit", "Precision"]
TOPK = [10, 20]
VALID_METRIC = "NDCG@10"


@dataclass(frozen=True)
class Protocol:
    """Name, description and the RecBole settings that implement the split and evaluation.

    ``prepare`` may write derived files (e.g. pre-split benchmark files) and returns the dataset to
    load plus any extra RecBole settings; the default protocol loads the dataset as it is.
    """

    name: str
    description: str
    recbole: dict[str, Any] = field(default_factory=dict)

    def prepare(self, ds: PreparedDataset, seed: int) -> tuple[PreparedDataset, dict[str, Any]]:
        return ds, {}

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
