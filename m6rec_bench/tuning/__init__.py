"""Hyper-parameter tuning with Optuna: seeded TPE, pruning, persistent and shareable studies.

``tune(model, dataset, n_trials=…)`` tunes one model on validation (``m6bench tune``);
``tune_suite`` gives every model of a suite the same budget before it runs on test
(``m6bench run --tune-budget N``). Search spaces: :mod:`m6rec_bench.tuning.spaces` for RecBole
baselines, ``Plugin.search_space`` for plugins.
"""

from __future__ import annotations

from m6rec_bench.tuning.spaces import BASELINE_SPACES, search_space
from m6rec_bench.tuning.study import (
    Storage,
    TuningListener,
    TuningResult,
    default_storage_path,
    open_storage,
    study_name_for,
    tune,
)
from m6rec_bench.tuning.suite import tune_suite, tuned_overrides

__all__ = [
    "BASELINE_SPACES", "Storage", "TuningListener", "TuningResult", "default_storage_path", "open_storage",
    "search_space", "study_name_for", "tune", "tune_suite", "tuned_overrides",
]
