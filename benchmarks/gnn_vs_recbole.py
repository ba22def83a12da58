"""GNN-LightGCN (PyTorch Geometric plugin) versus RecBole's own LightGCN on ml-100k, in one run.

Both go through the same engine (:func:`m6rec_bench.engine.cell.run_cell`, default protocol:
random 8:1:1 split, full ranking, early stopping on valid NDCG@10 with RecBole's defaults), with
the same seed and the same hyper-parameters (RecBole's ``LightGCN.yaml``), one after the other in
this process. The script prints a Markdown table — test NDCG@10, best epoch, epochs run, training
wall time (``trainer.fit``, per-epoch validation included), time per epoch — and the ratios
PyG / RecBole of quality and of training time, plus the wall time each needed to first reach
RecBole's best validation NDCG@10.

    python benchmarks/gnn_vs_recbole.py                # RecBole defaults (up to 300 epochs)
    python benchmarks/gnn_vs_recbole.py --epochs 5 --threads 1 --ngcf
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field

import torch

from m6rec_bench.datasets import DatasetFeatures, PreparedDataset, checksum_of
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.results.record import Record

PAIRS = {"LightGCN": "GNN-LightGCN", "NGCF": "GNN-NGCF"}


@dataclass
class Run:
    """A finished cell plus its per-epoch curve: (epoch, valid NDCG@10, seconds since fit began)."""

    record: Record
    curve: list[tuple[int, float, float]] = field(default_factory=list)

    def time_to_reach(self, target: float) -> float | None:
        """Training wall time until the valid NDCG@10 first reached ``target``, or None."""
        return next((t for _, score, t in self.curve if score >= target - 1e-12), None)


def ml100k() -> PreparedDataset:
    """The bundled ml-100k, through the dataset registry when it resolves offline."""
    try:
        from m6rec_bench.datasets import resolve

        return resolve("ml-100k", progress=False)
    except Exception:  # noqa: BLE001 - fall back to RecBole's bundled copy, described by hand
        from m6rec_bench.datasets.prepare import bundled_root

        root = bundled_root()
        return PreparedDataset("ml-100k", root, checksum_of(root / "ml-100k", "ml-100k"),
                               DatasetFeatures(("movie_title", "release_year", "class"), True))


def run(model: str, ds: PreparedDataset, seed: int, epochs: int | None) -> Run:
    curve: list[tuple[int, float, float]] = []
    start = time.perf_counter()

    def on_epoch(epoch: int, score: float) -> None:
        curve.append((epoch, score, time.perf_counter() - start))

    print(f"running {model} …", file=sys.stderr, flush=True)
    record = run_cell(CellSpec(dataset="ml-100k", model=model, seed=seed, epochs=epochs), prepared=ds,
                      on_epoch=on_epoch, command=" ".join(sys.argv))
    if record.status != "ok":
        raise SystemExit(f"{model} {record.status}: {record.reason}")
    # The clock started before dataset loading; move its zero to fit()'s start (the last callback
    # comes just before fit() returns, so this is exact to within one early-stopping check).
    if curve and record.train_time_s is not None:
        shift = curve[-1][2] - record.train_time_s
        curve = [(e, s, max(t - shift, 0.0)) for e, s, t in curve]
    return Run(record, curve)


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def table(base: Run, ours: Run) -> str:
    target = max(score for _, score, _ in base.curve) if base.curve else math.nan
    rows = []
    for r in (base, ours):
        rec = r.record
        per_epoch = rec.train_time_s / rec.epochs_run if rec.train_time_s and rec.epochs_run else None
        rows.append((rec.model, rec.test.get("ndcg@10"), rec.valid.get("ndcg@10"), rec.best_epoch, rec.epochs_run,
                     rec.train_time_s, per_epoch, r.time_to_reach(target), rec.eval_time_s))
    lines = [
        "| model | test NDCG@10 | valid NDCG@10 | best epoch | epochs run | train time (s) | time/epoch (s) "
        "| time to RecBole's best valid (s) | test eval (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m, t, v, be, er, tt, pe, reach, ev in rows:
        lines.append(f"| {m} | {_fmt(t)} | {_fmt(v)} | {be} | {er} | {_fmt(tt, 1)} | {_fmt(pe, 3)} "
                     f"| {_fmt(reach, 1)} | {_fmt(ev, 2)} |")
    (_, bt, _, _, _, btt, bpe, breach, _), (_, ot, _, _, _, ott, ope, oreach, _) = rows
    ratio = lambda a, b: a / b if a is not None and b else None  # noqa: E731
    lines += [
        "",
        f"- quality ratio (test NDCG@10, PyG / RecBole): **{_fmt(ratio(ot, bt), 3)}**",
        f"- train-time ratio (PyG / RecBole): **{_fmt(ratio(ott, btt), 3)}**",
        f"- time-per-epoch ratio (PyG / RecBole): **{_fmt(ratio(ope, bpe), 3)}**",
        f"- time-to-RecBole's-best-valid ratio (PyG / RecBole): **{_fmt(ratio(oreach, breach), 3)}**"
        + ("" if oreach is not None else " (PyG never reached it)"),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="max training epochs (default: RecBole's 300 with early stopping)")
    parser.add_argument("--seed", type=int, default=2020, help="seed of both runs (default 2020)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for both runs (default: torch's choice); "
                             "use 1 on a shared machine, where oversubscribed OpenMP threads make timings noisy")
    parser.add_argument("--ngcf", action="store_true", help="also compare GNN-NGCF with RecBole's NGCF")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    ds = ml100k()
    pairs = [("LightGCN", PAIRS["LightGCN"])] + ([("NGCF", PAIRS["NGCF"])] if args.ngcf else [])
    sections = []
    for baseline, plugin in pairs:
        base, ours = run(baseline, ds, args.seed, args.epochs), run(plugin, ds, args.seed, args.epochs)
        sections.append(f"### {plugin} vs RecBole {baseline}\n\n{table(base, ours)}")
    print(f"## GNN plugins vs RecBole on ml-100k (seed {args.seed}, epochs {args.epochs or 'RecBole default'}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads)\n")
    print("\n\n".join(sections))


if __name__ == "__main__":
    main()
