"""What tuning costs, from the trials of real studies: the estimate of a tuned board.

Reads the Optuna studies a tuned suite left under its runs directory (``m6bench run --tune-budget N
--runs-dir DIR``; the journal ``DIR/tuning/optuna.journal``, or ``--storage URL``) — including a
suite still running or stopped part way — and prints per study: the trials finished (complete and
pruned), the epochs and seconds they trained (each trial's own ``epochs_run`` and ``trial_time_s``),
the defaults' run (trial 0: one full early-stopped run, never pruned), and the share of it that an
average other trial trained (Hyperband on epochs). From those it projects each study to the full
budget (trial 0 + ``budget - 1`` trials at the mean measured cost) and the whole tuned board:
the studies plus ``--seeds`` final cells per model, each costing about trial 0 (the same run, plus
a test pass), shared by ``--jobs`` workers. A model the journal does not hold (its study not yet
run) is projected only when ``--cells-from`` names the runs directory of an untuned suite (e.g. the
one ``benchmarks/suite_time.py`` leaves): its measured cell seconds as trial 0, its other trials at
the median share the measured studies trained; the table marks such rows. A model with nothing to
tune (Pop) costs its cells only.

    python benchmarks/tuning_cost.py --runs-dir /tmp/board/runs --budget 30 --seeds 5 --jobs 2 \
        --cells-from /tmp/m6bench-suite-time-XXXX/runs

The seconds are those the trials took where they ran (load, threads, other studies at the same
time): the script prints the machine's load average now, not then; say it beside the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from m6rec_bench.tuning.study import DEFAULT_ATTR, open_storage  # noqa: E402


@dataclass
class StudyCost:
    """One study's measured trials and its projection to the budget."""

    name: str
    finished: int
    pruned: int
    running: int
    epochs: int
    seconds: float
    default_epochs: int | None
    default_seconds: float | None
    other_epochs: float | None  # mean over the finished non-default trials
    other_seconds: float | None

    @property
    def model(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def share(self) -> float | None:
        if not self.default_epochs or self.other_epochs is None:
            return None
        return self.other_epochs / self.default_epochs

    def projected(self, budget: int) -> float | None:
        """Seconds of the whole study: trial 0 plus ``budget - 1`` trials at the measured mean."""
        if self.default_seconds is None:
            return None
        if self.finished >= budget:
            return self.seconds
        if self.other_seconds is None:
            return None
        return self.default_seconds + (budget - 1) * self.other_seconds


def study_costs(storage: str | None, runs_dir: Path) -> list[StudyCost]:
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = open_storage(storage, runs_dir).backend
    out = []
    for summary in sorted(optuna.get_all_study_summaries(backend), key=lambda s: s.study_name):
        trials = optuna.load_study(study_name=summary.study_name, storage=backend).get_trials(deepcopy=False)
        done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        default = next((t for t in done if t.user_attrs.get(DEFAULT_ATTR)), None)
        others = [t for t in done if t is not default]

        def epochs(t: optuna.trial.FrozenTrial) -> int:
            return int(t.user_attrs.get("epochs_run", len(t.intermediate_values)))

        def secs(t: optuna.trial.FrozenTrial) -> float:
            return float(t.user_attrs.get("trial_time_s", 0.0))

        out.append(StudyCost(
            name=summary.study_name, finished=len(done),
            pruned=sum(t.state == TrialState.PRUNED for t in done),
            running=sum(t.state == TrialState.RUNNING for t in trials),
            epochs=sum(epochs(t) for t in done), seconds=round(sum(secs(t) for t in done), 1),
            default_epochs=epochs(default) if default else None, default_seconds=secs(default) if default else None,
            other_epochs=statistics.mean(epochs(t) for t in others) if others else None,
            other_seconds=statistics.mean(secs(t) for t in others) if others else None,
        ))
    return out


def tunable(model: str) -> bool:
    """Whether ``model`` has anything to tune (a non-empty search space), as ``tune`` decides."""
    from m6rec_bench.models import registry
    from m6rec_bench.tuning.spaces import search_space, suggests_nothing

    return not suggests_nothing(search_space(registry.get(model)))


def shared_with(models: set[str]) -> dict[str, str]:
    """``implementation -> original`` for the models a tuned suite gives no study of their own
    (:func:`m6rec_bench.tuning.suite.shared_studies`)."""
    from m6rec_bench.models import registry
    from m6rec_bench.tuning.suite import shared_studies

    keys = {("d", "p", m): registry.get(m) for m in sorted(models)}
    return {impl[2]: original[2] for impl, original in shared_studies(keys).items()}


def cell_seconds(runs: Path) -> dict[str, tuple[float, int, bool]]:
    """``model -> (seconds of one cell, epochs it ran, has a search space)`` from an untuned suite's records."""
    from m6rec_bench.results.store import load_record

    out: dict[str, list[tuple[float, int]]] = {}
    for path in sorted(runs.rglob("seed*.json")):
        rec = load_record(path)
        if rec is None or rec.status != "ok" or rec.tuning is not None or rec.options.variant:
            continue
        secs = (rec.setup_time_s or 0.0) + (rec.train_time_s or 0.0) + (rec.eval_time_s or 0.0)
        out.setdefault(rec.model, []).append((secs, rec.epochs_run or 1))
    return {m: (statistics.median(s for s, _ in v), int(statistics.median(e for _, e in v)), tunable(m))
            for m, v in out.items()}


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "–" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", type=Path, nargs="+", default=[Path("runs")],
                    help="the tuned suite's --runs-dir (several: a model's study with the most finished trials counts)")
    ap.add_argument("--storage", default=None, help="the suite's --tune-storage, if it had one")
    ap.add_argument("--budget", type=int, default=30, help="trials per model of the board to estimate")
    ap.add_argument("--seeds", type=int, default=5, help="final cells per model")
    ap.add_argument("--jobs", type=int, default=2, help="studies / cells at once")
    ap.add_argument("--cells-from", type=Path, default=None,
                    help="runs directory of an untuned suite: cell seconds for models without a study")
    args = ap.parse_args()
    best: dict[str, StudyCost] = {}
    for runs in args.runs_dir:
        for c in study_costs(args.storage, runs):
            if c.model not in best or c.finished > best[c.model].finished:
                best[c.model] = c
    costs = sorted(best.values(), key=lambda c: c.model)
    untuned = cell_seconds(args.cells_from) if args.cells_from else {}
    shared = shared_with({c.model for c in costs})
    costs = [c for c in costs if c.model not in shared]  # a study left by older code, which tuned implementations too
    print(f"load average now {' / '.join(f'{x:.2f}' for x in os.getloadavg())}; {len(costs)} studies")
    print("\n| model | trials done (pruned) | running | epochs | seconds | trial 0 epochs | trial 0 s "
          "| other trial: mean epochs | share of trial 0 | mean s | study at budget s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    studies = cells = 0.0
    unknown = []
    for c in costs:
        at_budget = c.projected(args.budget)
        print(f"| {c.model} | {c.finished} ({c.pruned}) | {c.running} | {c.epochs} | {c.seconds:.0f} | "
              f"{fmt(c.default_epochs, 'd') if c.default_epochs is not None else '–'} | {fmt(c.default_seconds)} | "
              f"{fmt(c.other_epochs)} | {fmt(c.share, '.2f')} | {fmt(c.other_seconds)} | {fmt(at_budget, '.0f')} |")
        if at_budget is None or c.default_seconds is None:
            unknown.append(c.model)
            continue
        studies += at_budget
        cells += args.seeds * c.default_seconds
    shares = [c.share for c in costs if c.share is not None and (c.default_epochs or 0) > 1]
    share = statistics.median(shares) if shares else None
    measured = {c.model for c in costs if c.model not in unknown}
    shared = shared_with(set(untuned) | {c.model for c in costs} | set(shared))
    missing = []
    for model, (cell_s, epochs, has_space) in sorted(untuned.items()):
        if model in measured:
            continue
        unknown = [m for m in unknown if m != model]
        if not has_space or model in shared:  # nothing to tune, or the study of the model it implements
            cells += args.seeds * cell_s
            why = f"runs {shared[model]}'s tuned settings" if model in shared else "nothing to tune"
            print(f"| {model} (cells only: {why}) | – | – | – | – | {epochs} | {cell_s:.1f} | – | – | – | 0 |")
        elif share is None:
            missing.append(model)
        else:
            at_budget = cell_s * (1 + (args.budget - 1) * (share if epochs > 1 else 1.0))
            studies += at_budget
            cells += args.seeds * cell_s
            print(f"| {model} (projected from its untuned cell) | – | – | – | – | {epochs} | {cell_s:.1f} | – | "
                  f"{share if epochs > 1 else 1.0:.2f} | – | {at_budget:.0f} |")
    print(f"\nmedian share of a default run per trial (models trained by epochs): {fmt(share, '.2f')}")
    print(f"projected: studies {studies / 3600:.2f} h + {args.seeds} seeds' cells {cells / 3600:.2f} h of one worker; "
          f"with {args.jobs} at once {((studies + cells) / args.jobs) / 3600:.2f} h wall")
    if unknown or missing:
        print(f"not in the projection (no finished trial 0 or other trial): {', '.join(unknown + missing)}")


if __name__ == "__main__":
    main()
