"""Records → leaderboard rows: mean ± std over seeds, sorted by test NDCG@10.

A writer never re-runs a model: everything here is computed from records alone (plus, for an older
board published without per-user metrics, the per-user tests it published: see ``stats.Published``).

Three decisions are made here, each from the records:

* **The reference row** is the plain baseline with the best mean *validation* NDCG@10 (ties: the
  label), never chosen on test: every row is compared with it seed by seed
  (:mod:`m6rec_bench.leaderboard.stats`).
* **A budget run** is a board whose rows were stopped by an ``--epochs`` cap rather than by early
  stopping: a row is *capped* when, for most of its finished seeds, its config sets ``epochs``, it
  ran all of them and its best validation epoch was the last one run (still improving when the cap
  hit). When most finished rows are capped, or the reference row is (every comparison would be
  against an unconverged yardstick), the board is a budget run: its title says "budget run, not
  converged" and it carries no ▲/▼ (differences between unconverged models say little about the
  models). On any other board a capped row is still tested but never marked.
* **Implementation variants**: a plugin may declare the RecBole model it re-implements
  (``Plugin.implements``, e.g. GNN-LightGCN → LightGCN). Where that model's own row is on the
  board, the plugin's rows leave the ranking and the Holm family for a separate implementations
  table: the metric difference against the original (seed-paired, with its interval) and the
  speed ratio of training time per epoch. Without the original on the board they rank as usual.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from m6rec_bench.defaults import DEFAULT_SEED
from m6rec_bench.leaderboard.columns import COLUMN_SETS
from m6rec_bench.leaderboard.stats import Comparison, Published, seed_test, significance
from m6rec_bench.results.portable import portable_path
from m6rec_bench.results.record import Record

#: The metric a leaderboard is sorted by (the default protocol's validation metric, on test).
PRIMARY = "ndcg@10"
#: Test metrics shown as columns, in order.
COLUMNS = ("ndcg@10", "recall@10", "mrr@10", "hit@10", "precision@10", "ndcg@20", "recall@20")
#: Metrics shown per extra group (cold / warm / overall items).
GROUP_COLUMNS = ("ndcg@10", "recall@20")
#: The extra-metrics group of compressed cells (size, speed, change): a column set, not a metric group.
COMPRESSION = "compression"


@dataclass(frozen=True)
class Stat:
    """Mean and (sample) standard deviation over seeds; std is 0 for a single seed."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))

    def fmt(self, digits: int = 4) -> str:
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}" if self.n > 1 else f"{self.mean:.{digits}f}"


@dataclass
class Row:
    """One leaderboard row: a model (or a model variant) over its seeds."""

    label: str
    model: str
    kind: str
    family: str
    status: str
    reason: str | None
    seeds: list[int]
    test: dict[str, Stat] = field(default_factory=dict)
    valid: dict[str, Stat] = field(default_factory=dict)
    groups: dict[str, dict[str, Stat]] = field(default_factory=dict)
    cost: dict[str, Stat] = field(default_factory=dict)
    #: column-set groups (m6rec_bench.leaderboard.columns): ``compression`` (size_mb, users_per_s,
    #: ndcg@10_delta), ``beyond`` (coverage@10, …), ``rating`` (rmse, mae), ``adaptation``, ``rerank``
    extras: dict[str, dict[str, Stat]] = field(default_factory=dict)
    reproduce: dict[str, Any] = field(default_factory=dict)
    significance: Comparison | None = None
    is_reference: bool = False
    #: the row of the RecBole model this row re-implements (a plugin's ``implements``, that row on
    #: the board): the row is in the implementations table, not in the ranking
    implements: str | None = None
    #: stopped by an ``--epochs`` cap while still improving (:func:`row_capped`): tested, never marked
    capped: bool = False

    @property
    def ranked(self) -> bool:
        return self.implements is None

    def primary(self) -> float:
        stat = self.test.get(PRIMARY)
        return stat.mean if stat else float("-inf")


@dataclass(frozen=True)
class Implementation:
    """A plugin row against the RecBole row of the model it re-implements (not ranked, not in Holm's family)."""

    label: str
    implements: str
    #: variant − original on test NDCG@10, seed-paired, with its interval and uncorrected p; never marked
    comparison: Comparison | None
    s_per_epoch: float | None  # mean over seeds of train_time_s / epochs_run
    original_s_per_epoch: float | None
    #: original's seconds per epoch / the variant's: > 1 means the variant trains an epoch faster
    speedup: float | None


@dataclass
class Leaderboard:
    """All rows of one (dataset, protocol, variant), best first.

    ``variant`` is ``"tuned"`` for rows whose models were tuned (``--tune-budget``) and empty for
    rows run with each model's defaults: the two are never ranked in one table, since a tuned row
    beside an untuned one is not a fair comparison.
    """

    dataset: str
    protocol: str
    rows: list[Row]
    dataset_checksum: str
    settings: dict[str, Any]
    reference: str | None = None
    variant: str = ""
    #: written while its suite still runs: rows of the cells finished so far (the title says so)
    partial: bool = False
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    #: rows whose earlier records a newer configuration replaced (m6rec_bench.leaderboard.board):
    #: ``{"label", "seeds", "cell_ids", "replaced_at"}`` each; left out of the JSON while empty
    superseded: list[dict[str, Any]] = field(default_factory=list)
    #: most rows stopped by an ``--epochs`` cap, not converged: no ▲/▼ (module docstring)
    budget: bool = False
    implementations: list[Implementation] = field(default_factory=list)

    @property
    def ranked_rows(self) -> list[Row]:
        """The rows of the ranking (implementation variants are in :attr:`implementations`)."""
        return [r for r in self.rows if r.ranked]

    @property
    def groups(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.rows:
            for g in row.groups:
                seen.setdefault(g, None)
        return list(seen)

    @property
    def slug(self) -> str:
        """The board's folder under ``<out>/<dataset>/``: ``default``, ``default-tuned``, …"""
        return board_slug(self.protocol, self.variant)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.superseded:  # a board that never replaced a row reads as it always did
            del out["superseded"]
        return out


def board_slug(protocol: str, variant: str = "") -> str:
    return f"{protocol}-{variant}" if variant else protocol


def variant_of(rec: Record) -> str:
    """Which board a record belongs to: ``tuned`` when its model was tuned before the run."""
    return "tuned" if "m6_tune_budget" in rec.config else ""


def _stats(dicts: list[dict[str, float]]) -> dict[str, Stat]:
    keys = sorted({k for d in dicts for k in d})
    return {k: Stat.of([d[k] for d in dicts if k in d]) for k in keys}


def _reproduce(records: list[Record]) -> dict[str, Any]:
    first = records[0]
    seeds = sorted(r.seed for r in records)
    epochs = first.config.get("epochs")
    dataset = portable_path(str(first.spec.get("dataset", first.dataset)))  # a local folder: no path of this machine
    cmd = [f"m6bench run --dataset {dataset} --protocol {first.protocol} --models {first.model}",
           f"--seeds {len(seeds)}" if seeds == list(range(DEFAULT_SEED, DEFAULT_SEED + len(seeds))) else f"--seeds {','.join(map(str, seeds))}"]
    if epochs is not None and "epochs" in first.config:
        cmd.append(f"--epochs {epochs}")
    if "m6_compress" in first.config:
        cmd.append(f"--compress {first.config['m6_compress']}")
    elif "m6_rerank" in first.config:
        cmd.append(f"--rerank {first.config['m6_rerank']}")
    elif first.label != first.model:
        cmd.append("--ablation")
    for key, flag in (("m6_tune_budget", "--tune-budget"), ("m6_tune_epochs", "--tune-epochs"),
                      ("m6_tune_timeout", "--tune-timeout")):
        if key in first.config:  # the seeded study reruns (or resumes) and picks the same best trial
            cmd.append(f"{flag} {first.config[key]}")
    return {
        "command": " ".join(cmd),
        "cell_ids": [r.cell_id for r in sorted(records, key=lambda r: r.seed)],
        "config": {k: v for k, v in first.config.items() if not k.startswith("m6_")},
        # how the row was tuned (budget, timeout, trial epochs, study), when it was
        # and what it cost and found on validation (the record's typed field, when the run wrote one)
        "tuning": {**{k.removeprefix("m6_tune_"): v for k, v in first.config.items() if k.startswith("m6_tune_")},
                   **(first.tuning.model_dump(mode="json", exclude={"budget"}) if first.tuning else {})},
        "dataset_checksum": first.dataset_checksum,
        "versions": first.versions,
        "hardware": first.hardware,
    }


def capped(rec: Record) -> bool:
    """Whether an ``--epochs`` cap, not early stopping, ended this run (its best epoch was the last one run)."""
    cap = rec.config.get("epochs")
    return (isinstance(cap, int) and not isinstance(cap, bool) and rec.epochs_run is not None
            and rec.best_epoch is not None and rec.epochs_run >= cap and rec.best_epoch >= rec.epochs_run - 1)


def row_capped(records: list[Record]) -> bool:
    """Most of the row's finished seeds :func:`capped`."""
    ok = [r for r in records if r.status == "ok"]
    return bool(ok) and 2 * sum(map(capped, ok)) > len(ok)


def is_budget_run(rows: dict[str, list[Record]], reference: str | None = None) -> bool:
    """Most finished rows capped (:func:`row_capped`), or the reference row capped."""
    finished = [recs for recs in rows.values() if any(r.status == "ok" for r in recs)]
    n_capped = sum(map(row_capped, finished))
    return bool(finished) and (2 * n_capped > len(finished) or (reference is not None and row_capped(rows[reference])))


def declared_implementations(models: Iterable[str]) -> dict[str, str]:
    """``plugin model -> RecBole model it re-implements`` for those of ``models`` that declare one."""
    from m6rec_bench.models.registry import plugins

    loaded = plugins()
    return {m: loaded[m].implements for m in models if m in loaded and loaded[m].implements}


def _seconds_per_epoch(records: list[Record]) -> float | None:
    values = [r.train_time_s / r.epochs_run for r in records
              if r.status == "ok" and r.train_time_s is not None and r.epochs_run]
    return statistics.fmean(values) if values else None


def _implementation(label: str, original: str, rows: dict[str, list[Record]]) -> Implementation:
    mine, theirs = rows[label], rows[original]
    comparison = seed_test([r for r in mine if r.status == "ok"], [r for r in theirs if r.status == "ok"], PRIMARY, original)
    s, o = _seconds_per_epoch(mine), _seconds_per_epoch(theirs)
    return Implementation(label, original, comparison, s, o, o / s if s and o is not None else None)


def aggregate(records: Iterable[Record], published: Published | None = None,
              implements: dict[str, str] | None = None) -> list[Leaderboard]:
    """Group records by (dataset, protocol, variant) and by row label; newest record wins per (label, seed).

    ``published``: the per-user tests a board published, for rows whose records lack per-user
    metrics (records of an older board folder); only used for one board's records.
    ``implements``: ``plugin model -> RecBole model``; by default what the loaded plugins declare.
    """
    latest: dict[tuple[str, str, str, str, int], Record] = {}
    for rec in records:
        key = (rec.dataset, rec.protocol, variant_of(rec), rec.label or rec.model, rec.seed)
        if key not in latest or rec.created_at >= latest[key].created_at:
            latest[key] = rec
    by_board: dict[tuple[str, str, str], dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for (ds, proto, variant, label, _), rec in latest.items():
        by_board[(ds, proto, variant)][label].append(rec)

    if implements is None:
        plugin_models = {r.model for r in latest.values() if r.model_kind == "plugin"}
        implements = declared_implementations(plugin_models) if plugin_models else {}
    boards = []
    for (ds, proto, variant), rows in sorted(by_board.items()):
        out = [_row(label, recs) for label, recs in rows.items()]
        _twin_sizes(out, rows)
        finished = {r.label for r in out if r.status.startswith("ok")}
        for r in out:
            if implements.get(r.model) in finished and r.kind == "plugin":
                r.implements = implements[r.model]
        out.sort(key=lambda r: (not r.ranked, not r.status.startswith("ok"), -r.primary(), r.label))
        # the reference is a plain baseline, never a re-ranked variant of one ("BPR [linucb]"), chosen on validation
        reranked = {label for label, recs in rows.items() if any("m6_rerank" in r.config for r in recs)}
        candidates = [r for r in out if r.kind == "baseline" and r.status.startswith("ok") and r.label not in reranked]
        best = min(candidates, key=lambda r: (-(r.valid[PRIMARY].mean if PRIMARY in r.valid else float("-inf")), r.label),
                   default=None)
        reference = best.label if best else None
        budget = is_budget_run(rows, reference)
        for r in out:
            r.capped = row_capped(rows[r.label])
        if reference is not None:
            variants = {r.label for r in out if not r.ranked}
            unmarked = set(rows) if budget else {r.label for r in out if r.capped}
            tests = significance(rows, reference, PRIMARY, published, exclude=variants, unmarked=unmarked)
            for r in out:
                r.significance = tests.get(r.label)
                r.is_reference = r.label == reference
        impls = [_implementation(r.label, r.implements, rows) for r in out if r.implements]
        any_rec = next(iter(rows.values()))[0]
        every = [r for recs in rows.values() for r in recs]
        settings = {
            "epochs": sorted({str(r.config.get("epochs", "default")) for r in every}),
            "tune_budget": sorted({str(r.config.get("m6_tune_budget", "untuned")) for r in every}),
            # epochs of a tuning trial, where a suite capped them apart from --epochs (--tune-epochs)
            "tune_epochs": sorted({str(r.config["m6_tune_epochs"]) for r in every if "m6_tune_epochs" in r.config}),
        }
        timing = timing_conditions(every)
        if timing:  # a board of records from before conditions were recorded reads as it always did
            settings["timing"] = timing
        boards.append(Leaderboard(ds, proto, out, any_rec.dataset_checksum, settings, reference, variant,
                                  budget=budget, implementations=impls))
    return boards


def _row(label: str, recs: list[Record]) -> Row:
    ok = [r for r in recs if r.status == "ok"]
    bad = [r for r in recs if r.status != "ok"]
    head = recs[0]
    if ok:
        status = "ok" if not bad else f"ok ({len(bad)} {bad[0].status})"
        reason = bad[0].reason if bad else None
    else:
        status, reason = head.status, head.reason
    row = Row(label=label, model=head.model, kind=head.model_kind, family=head.family, status=status,
              reason=reason, seeds=sorted(r.seed for r in ok), reproduce=_reproduce(recs))
    if ok:
        row.test = _stats([r.test for r in ok])
        row.valid = _stats([r.valid for r in ok])
        present = {g for r in ok for g in r.extra_metrics}
        row.extras = {g: _stats([r.extra_metrics[g] for r in ok if g in r.extra_metrics])
                      for g in sorted(present & set(COLUMN_SETS))}
        row.groups = {g: _stats([r.extra_metrics[g] for r in ok if g in r.extra_metrics])
                      for g in sorted(present - set(COLUMN_SETS))}
        costs = [{k: float(v) for k, v in (("train_time_s", r.train_time_s), ("eval_time_s", r.eval_time_s),
                                            ("setup_time_s", r.setup_time_s), ("cost_time_s", cost_time(r)),
                                            ("peak_mem_mb", r.peak_mem_mb), ("n_params", r.n_params),
                                            ("n_trainable_params", r.n_trainable_params), ("n_buffers", r.n_buffers),
                                            ("best_epoch", r.best_epoch)) if v is not None} for r in ok]
        row.cost = _stats(costs)
    return row


def cost_time(rec: Record) -> float | None:
    """Seconds a record's model took to get trained: set-up (pretraining, encoders) plus training.

    Records written before set-up was measured (no ``setup_time_s``) give their training time alone.
    """
    if rec.train_time_s is None:
        return None
    return rec.train_time_s + (rec.setup_time_s or 0.0)


#: Timing conditions differ enough to say so when the highest load is more than this many times the lowest.
LOAD_RATIO = 2.0


def timing_conditions(records: Iterable[Record]) -> dict[str, Any]:
    """Under which conditions a board's finished cells were timed: the range of machine load, and the
    torch thread counts, OpenMP wait policies and parallel cells seen (``{}`` when no record says).

    ``differs`` lists what makes their times hard to compare: loads more than :data:`LOAD_RATIO`
    apart, several thread counts, wait policies or degrees of parallelism, records without conditions.
    """
    ok = [r for r in records if r.status == "ok"]
    known = [r.conditions for r in ok if r.conditions is not None]
    if not known:
        return {}
    loads = [c.load for c in known if c.load is not None]
    out: dict[str, Any] = {
        "load": [round(min(loads), 2), round(max(loads), 2)] if loads else [],
        "torch_threads": sorted({c.torch_threads for c in known if c.torch_threads is not None}),
        "omp_wait_policy": sorted({c.omp_wait_policy for c in known if c.omp_wait_policy is not None}),
        "parallel_cells": sorted({c.parallel_cells for c in known if c.parallel_cells is not None}),
        "unrecorded": len(ok) - len(known),
    }
    differs = []
    if loads and max(loads) > LOAD_RATIO * max(min(loads), 0.1):  # a near-idle machine: compare with 0.1
        differs.append("load")
    differs += [key for key in ("torch_threads", "omp_wait_policy", "parallel_cells") if len(out[key]) > 1]
    if out["unrecorded"]:
        differs.append("unrecorded")
    out["differs"] = differs
    return out


def _twin_sizes(rows: list[Row], records: dict[str, list[Record]]) -> None:
    """Give an uncompressed row the size and speed its compressed twins measured it at."""
    by_label = {r.label: r for r in rows}
    for label, recs in records.items():
        twin = next((r.label.removesuffix(f" [{r.config['m6_compress']}]") for r in recs if "m6_compress" in r.config), None)
        base = by_label.get(twin) if twin else None
        if base is None or base.extras.get(COMPRESSION):
            continue
        packed = [r.extra_metrics[COMPRESSION] for r in recs if r.status == "ok" and COMPRESSION in r.extra_metrics]
        if packed:
            base.extras[COMPRESSION] = _stats([{"size_mb": p["base_size_mb"], "users_per_s": p["base_users_per_s"]} for p in packed])
