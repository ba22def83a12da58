"""Do the two engines give the same test metrics? ``recbole`` vs ``fast``, paired over seeds.

For every model, seeds 1..N (default 5) on ml-100k, default protocol (random 8:1:1, full ranking,
valid NDCG@10 for early stopping), RecBole's default settings except ``--epochs`` (a cap on the
epochs, early stopping still on), each cell runs twice in this process through
``m6rec_bench.engine.cell.run_cell``: once with ``M6BENCH_ENGINE=recbole`` (RecBole's train loader
and evaluation batches: the numbers raw RecBole gives) and once with ``M6BENCH_ENGINE=fast``
(:mod:`m6rec_bench.engine.fast_train` and :mod:`m6rec_bench.engine.fast_eval`). No record is stored.

Prints, per model: mean ± std test NDCG@10 of each engine, the paired difference (fast - recbole)
with its 95 % t interval and the paired t-test p over seeds ("identical" when every seed gives the
same value, where a t-test has nothing to test), the seeds whose best epoch differs, and the ratio of
training seconds per epoch (``train_time_s / epochs_run``: the epochs and their validations).

    OMP_NUM_THREADS=1 python benchmarks/engine_equivalence.py --models BPR LightGCN MultiVAE NeuMF --epochs 20
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any


def paired(a: list[float], b: list[float]) -> dict[str, Any]:
    """Mean difference ``b - a`` with its 95 % t interval and the paired t-test p (None: all equal)."""
    from scipy import stats

    diffs = [y - x for x, y in zip(a, b)]
    n, mean = len(diffs), statistics.fmean(diffs)
    if all(d == diffs[0] for d in diffs):
        return {"diff": mean, "ci": (mean, mean), "p": None if mean == 0 else 0.0}
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(diffs) / math.sqrt(n)
    return {"diff": mean, "ci": (mean - half, mean + half), "p": float(stats.ttest_rel(b, a).pvalue)}


def _cell(model: str, seed: int, epochs: int, engine: str, ds: Any) -> dict[str, Any]:
    from m6rec_bench.engine import fast_eval
    from m6rec_bench.engine.cell import CellSpec, run_cell

    os.environ[fast_eval.ENGINE_ENV] = engine
    t0 = time.perf_counter()
    rec = run_cell(CellSpec(dataset=ds.name, model=model, seed=seed, epochs=epochs), prepared=ds, save_artifact=False,
                   command="benchmarks/engine_equivalence.py")
    if rec.status != "ok":
        raise SystemExit(f"{model} seed {seed} ({engine}) {rec.status}: {rec.reason}")
    return {"model": model, "seed": seed, "engine": engine, "ndcg@10": rec.test["ndcg@10"], "best_epoch": rec.best_epoch,
            "epochs_run": rec.epochs_run, "train_s": rec.train_time_s, "wall_s": time.perf_counter() - t0,
            "s_per_epoch": rec.train_time_s / max(1, rec.epochs_run or 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["BPR", "LightGCN", "MultiVAE", "NeuMF"])
    ap.add_argument("--seeds", type=int, default=5, help="seeds 1..N (at least 2 for a paired test)")
    ap.add_argument("--epochs", type=int, default=50, help="max epochs per cell (early stopping stays on)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine has 2 shared cores)")
    ap.add_argument("--json", type=Path, default=None, help="also write every cell's numbers here")
    ap.add_argument("--from-json", type=Path, nargs="+", default=None, metavar="FILE",
                    help="run nothing: print the table of the cells that --json files hold (several runs together)")
    args = ap.parse_args()
    if args.from_json:
        cells = [c for path in args.from_json for c in json.loads(path.read_text())]
        models = list(dict.fromkeys(c["model"] for c in cells))
        seeds = sorted({c["seed"] for c in cells})
        print(f"from {', '.join(str(p) for p in args.from_json)}: seeds {seeds[0]}..{seeds[-1]}, epochs as each run capped them\n")
        table(cells, models, len(seeds))
        return

    import torch

    torch.set_num_threads(args.threads)
    from m6rec_bench import datasets

    ds = datasets.resolve("ml-100k", progress=False)
    cells: list[dict[str, Any]] = []
    load0 = os.getloadavg()
    for model in args.models:
        for seed in range(1, args.seeds + 1):
            for engine in ("recbole", "fast"):
                c = _cell(model, seed, args.epochs, engine, ds)
                cells.append(c)
                print(f"{model} seed {seed} {engine}: test NDCG@10 {c['ndcg@10']:.4f}, best epoch {c['best_epoch']}, "
                      f"{c['epochs_run']} epochs, {c['s_per_epoch']:.3f} s/epoch, load {os.getloadavg()[0]:.2f}", flush=True)
            if args.json:
                args.json.write_text(json.dumps(cells, indent=1))
    load1 = os.getloadavg()
    print(f"\nml-100k, default protocol, seeds 1..{args.seeds}, epochs <= {args.epochs} (early stopping on), "
          f"torch threads {args.threads}; load average {load0[0]:.2f} at the start, {load1[0]:.2f} / {load1[1]:.2f} / "
          f"{load1[2]:.2f} at the end\n")
    table(cells, args.models, args.seeds)


def table(cells: list[dict[str, Any]], models: list[str], n_seeds: int) -> None:
    """The per-model table (markdown) of finished cells."""
    print("| model | RecBole NDCG@10 | fast NDCG@10 | fast - RecBole (95 % CI) | paired t p | best epoch differs "
          "| s/epoch RecBole | s/epoch fast | RecBole / fast |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model in models:
        by = {(c["seed"], c["engine"]): c for c in cells if c["model"] == model}
        seeds = range(1, n_seeds + 1)
        a = [by[s, "recbole"]["ndcg@10"] for s in seeds]
        b = [by[s, "fast"]["ndcg@10"] for s in seeds]
        t = paired(a, b)
        p = "identical" if t["p"] is None else f"{t['p']:.3f}"
        differs = sum(by[s, "recbole"]["best_epoch"] != by[s, "fast"]["best_epoch"] for s in seeds)
        ta = statistics.fmean(by[s, "recbole"]["s_per_epoch"] for s in seeds)
        tb = statistics.fmean(by[s, "fast"]["s_per_epoch"] for s in seeds)
        sd = (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)
        print(f"| {model} | {statistics.fmean(a):.4f} ± {sd(a):.4f} | {statistics.fmean(b):.4f} ± {sd(b):.4f} | "
              f"{t['diff']:+.4f} ({t['ci'][0]:+.4f}, {t['ci'][1]:+.4f}) | {p} | {differs}/{n_seeds} | {ta:.3f} | {tb:.3f} | "
              f"{ta / tb:.2f} |")


if __name__ == "__main__":
    main()
