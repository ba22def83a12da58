"""Records → leaderboard rows: mean ± std over seeds, sorted by test NDCG@10.

A writer never re-runs a model: everything here is computed from records alone (plus, for a board
rebuilt from its own published records, the raw paired tests it published: see ``stats.Published``).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from m6rec_bench.leaderboard.columns import COLUMN_SETS
from m6rec_bench.leaderboard.stats import Comparison, Published, significance
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

    def primary(self) -> float:
        stat = self.test.get(PRIMARY)
        return stat.mean if stat else float("-inf")


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
    dataset = first.spec.get("dataset", first.dataset)
    cmd = [f"m6bench run --dataset {dataset} --protocol {first.protocol} --models {first.model}",
           f"--seeds {len(seeds)}" if seeds == list(range(2020, 2020 + len(seeds))) else f"--seeds {','.join(map(str, seeds))}"]
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
        "tuning": {k.removeprefix("m6_tune_"): v for k, v in first.config.items() if k.startswith("m6_tune_")},
        "dataset_checksum": first.dataset_checksum,
        "versions": first.versions,
        "hardware": first.hardware,
    }


def aggregate(records: Iterable[Record], published: Published | None = None) -> list[Leaderboard]:
    """Group records by (dataset, protocol, variant) and by row label; newest record wins per (label, seed).

    ``published``: the raw paired tests a board published, for rows whose records lack per-user
    metrics (records read back from a board folder); only used for one board's records.
    """
    latest: dict[tuple[str, str, str, str, int], Record] = {}
    for rec in records:
        key = (rec.dataset, rec.protocol, variant_of(rec), rec.label or rec.model, rec.seed)
        if key not in latest or rec.created_at >= latest[key].created_at:
            latest[key] = rec
    by_board: dict[tuple[str, str, str], dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for (ds, proto, variant, label, _), rec in latest.items():
        by_board[(ds, proto, variant)][label].append(rec)

    boards = []
    for (ds, proto, variant), rows in sorted(by_board.items()):
        out = [_row(label, recs) for label, recs in rows.items()]
        _twin_sizes(out, rows)
        out.sort(key=lambda r: (not r.status.startswith("ok"), -r.primary(), r.label))
        # the reference is a plain baseline, never a re-ranked variant of one ("BPR [linucb]")
        reranked = {label for label, recs in rows.items() if any("m6_rerank" in r.config for r in recs)}
        reference = next((r.label for r in out if r.kind == "baseline" and r.status.startswith("ok")
                          and r.label not in reranked), None)
        if reference is not None:
            tests = significance(rows, reference, PRIMARY, published)
            for r in out:
                r.significance = tests.get(r.label)
                r.is_reference = r.label == reference
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
        boards.append(Leaderboard(ds, proto, out, any_rec.dataset_checksum, settings, reference, variant))
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
