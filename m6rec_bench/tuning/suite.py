"""``m6bench run --tune-budget N``: tune every model of a suite with the same budget, then run.

Each (dataset, protocol, model) is tuned on the suite's first seed with ``N`` trials (and the same
time budget, if one is given), on validation only. The best configuration then goes into the
overrides of every cell of that model — all seeds, ablation rows included — so the test run, its
config hash and its record carry the tuned settings, plus ``m6_tune_budget`` (and
``m6_tune_timeout``, ``m6_tune_epochs``, ``m6_tune_study``) naming the budget; the record's typed
``tuning`` field (:class:`~m6rec_bench.results.record.TuningSummary`, not part of the cell's
identity) says what the study cost (trials, trial epochs and seconds) and what it found on
validation (the best trial's and the defaults' scores, best-so-far history). Every study starts
from the model's defaults (trial 0) and prunes with Hyperband on epochs, so trials train like the
final runs (``--epochs``, the same early stopping) unless ``--tune-epochs`` caps them. The studies live in the suite's runs
directory, so a rerun resumes them, and ``m6bench tune`` with the same settings fills the same study.

A plugin that re-implements a model of the same suite (``Plugin.implements``, e.g. GNN-LightGCN for
LightGCN) with the same search space gets no study of its own: its cells run the original's tuned
settings, so the board's implementations table compares two implementations of one configuration
(test score and seconds per epoch), not two tuning outcomes; its records name the original's study.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.engine.executors import Pool, task_slot
from m6rec_bench.models import registry
from m6rec_bench.resolve import CellSpec, resolve
from m6rec_bench.results.record import TuningSummary
from m6rec_bench.tuning.study import TuningListener, TuningResult, open_storage, quiet_optuna, tune

if TYPE_CHECKING:  # pragma: no cover
    from m6rec_bench.engine.suite import SuiteConfig


def tuned_overrides(result: TuningResult, tune_epochs: int | None = None) -> dict[str, Any]:
    """What a tuned model adds to its cells' overrides: the best params and the budget.

    Every model the suite tuned carries ``m6_tune_budget``, also one with nothing to tune or none of
    whose trials finished (``m6_tune_note`` says which, and it runs its defaults): its rows go on
    the tuned board beside the others, which had the same budget.

    ``tune_epochs`` (the trials' own epoch cap, when the suite set one apart from ``--epochs``) is
    recorded as ``m6_tune_epochs``.
    """
    if result.nothing_to_tune:  # Pop: its defaults are its tuned config, and its row belongs on the tuned board
        out: dict[str, Any] = {"m6_tune_budget": result.budget, "m6_tune_note": "nothing to tune"}
    elif result.best_trial is None:
        out = {"m6_tune_budget": result.budget, "m6_tune_study": result.study_name,
               "m6_tune_note": "no trial finished: defaults"}
    else:
        out = {**result.best_params, "m6_tune_budget": result.budget, "m6_tune_study": result.study_name}
    if result.timeout_s is not None:
        out["m6_tune_timeout"] = result.timeout_s
    if tune_epochs is not None:
        out["m6_tune_epochs"] = tune_epochs
    return out


def tuning_summary(result: TuningResult) -> TuningSummary:
    """The typed record field of a tuned cell: budget, trials, compute and validation scores of its study."""
    note = "nothing to tune" if result.nothing_to_tune else (
        "no trial finished: defaults" if result.best_trial is None else None)
    return TuningSummary(
        budget=result.budget, trials=result.n_trials, pruned=result.n_pruned, metric=result.metric,
        best_trial=result.best_trial, best_valid=result.best_value, default_valid=result.default_value,
        trial_epochs=result.trial_epochs, trial_seconds=result.trial_seconds, history=list(result.history),
        study=result.study_name, note=note,
    )


def shared_studies(models: Mapping[tuple[str, str, str], Any]) -> dict[tuple[str, str, str], tuple[str, str, str]]:
    """Implementation rows that take the study of the model they re-implement: ``{impl key: original key}``.

    ``models`` maps each (dataset, protocol, model) of a suite to its registry entry. A plugin whose
    ``implements`` names another model of the same dataset and protocol shares that model's study
    when the two search spaces are the same grid (the same parameters over the same choices, so the
    original's best settings mean the same to it); otherwise it is tuned on its own.
    """
    from m6rec_bench.tuning.spaces import probe, search_space

    def grid(entry: Any) -> Any:
        space = search_space(entry)
        probed = probe(space) if space is not None else None
        return probed[1] if probed is not None else None

    out: dict[tuple[str, str, str], tuple[str, str, str]] = {}
    for key, entry in models.items():
        plugin = entry.plugin if entry.kind == "plugin" else None
        original = (key[0], key[1], plugin.implements) if plugin is not None and plugin.implements else None
        if original is None or original not in models:
            continue
        mine = grid(entry)
        if mine and mine == grid(models[original]):  # the same parameters over the same choices
            out[key] = original
    return out


def _tune_job(kwargs: dict[str, Any], threads: int | None) -> TuningResult:
    """One model's study in a worker (local process or Dask); returns its result."""
    with task_slot(threads), quiet_optuna():
        return tune(**kwargs)


def tune_suite(
    cfg: SuiteConfig,
    cells: list[CellSpec],
    prepared: Mapping[str, PreparedDataset],
    listener: Any = None,
    pool: Pool | None = None,
) -> tuple[list[CellSpec], list[TuningResult]]:
    """Tune each model of ``cells`` with ``cfg.tune_budget`` trials; return the cells with tuned overrides.

    The studies are independent, so with a ``pool`` (``--jobs N`` or ``--executor dask``) they run
    at once, one model per worker; the study names, seeds and results are those of the sequential
    run. Trials train for at most ``cfg.tune_epochs`` epochs (default ``cfg.epochs``), which is part
    of the study's name. A model with nothing to tune (Pop), a plugin the dataset cannot serve (its
    cells become ``skipped`` records) and a model none of whose trials finished run their defaults,
    marked with the budget (see :func:`tuned_overrides`); the returned results say which.
    """
    if not cfg.tune_budget:
        return cells, []
    seed = cfg.seed_list()[0]
    epochs = cfg.tune_epochs if cfg.tune_epochs is not None else cfg.epochs
    hooks = listener if isinstance(listener, TuningListener) else None
    entries = {(c.dataset, c.protocol, c.model): registry.get(c.model) for c in cells}
    shared = shared_studies(entries)
    jobs: dict[tuple[str, str, str], dict[str, Any] | None] = {}
    for spec in cells:
        key = (spec.dataset, spec.protocol, spec.model)
        if key not in jobs and key not in shared:
            entry = entries[key]
            ds = prepared[spec.dataset]
            jobs[key] = None if resolve(spec.model_copy(update={"seed": seed}), ds).missing else {
                "model": entry.name, "dataset": ds, "n_trials": cfg.tune_budget, "protocol": spec.protocol,
                "epochs": epochs, "seed": seed, "device": cfg.device, "overrides": cfg.overrides.get(entry.name, {}),
                "timeout": cfg.tune_timeout, "storage": cfg.tune_storage, "runs_dir": cfg.runs_dir,
            }
    results: dict[tuple[str, str, str], TuningResult | None] = {key: None for key in jobs}
    if pool is None:
        for key, kwargs in jobs.items():
            if kwargs is not None:
                with quiet_optuna():
                    results[key] = tune(**kwargs, listener=hooks)
    else:
        from concurrent.futures import as_completed

        if cfg.tune_storage is not None:
            open_storage(cfg.tune_storage, cfg.runs_dir)  # a bad or unreachable database fails here, once
        futures = {
            pool.executor.submit(_tune_job, {**kwargs, "runs_dir": cfg.runs_dir.resolve()}, pool.threads): key
            for key, kwargs in jobs.items() if kwargs is not None
        }
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    out: list[CellSpec] = []
    for spec in cells:
        key = (spec.dataset, spec.protocol, spec.model)
        result = results[shared.get(key, key)]
        if result is None:
            out.append(spec)
            continue
        extra = tuned_overrides(result, cfg.tune_epochs)
        out.append(spec.model_copy(update={"overrides": {**extra, **spec.overrides}, "tuning": tuning_summary(result)}))
    return out, [r for r in results.values() if r is not None]
