"""Wall-time overhead of ``m6bench run`` versus raw RecBole, measured in one run.

Raw RecBole = the ``run_recbole`` sequence written out with RecBole's API (Config, create_dataset,
data_preparation, get_model, get_trainer, fit, evaluate; ``recbole.quick_start`` cannot be imported
on this stack, see m6rec_bench/compat.py). Workbench = the ``m6bench run`` command in a subprocess,
so CLI start-up, dataset resolution, checksum, record and leaderboard writing all count. Both use
the same settings (the default protocol) and the same torch threads (``--threads``, default 1: the
workbench's own policy for one cell) and are run alternately ``--repeat`` times; the script prints
each wall time, the test NDCG@10 of both (they must agree), the ratio of medians and their
difference, and the median and quartiles of the paired differences (the pairs alternate which side
runs first). With ``--epochs 1 --engine recbole`` both sides do the same RecBole work in the same
loader, so the difference is the workbench's fixed cost (start-up, dataset resolution and checksum,
record, board): target under 0.3 s (issue #19).

    python benchmarks/overhead.py --model BPR --repeat 1                               # a full run
    python benchmarks/overhead.py --model BPR --repeat 7 --epochs 1 --engine recbole   # the fixed cost
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The workbench's fixed cost over raw RecBole that issue #19 aims under (seconds).
TARGET_S = 0.3

RAW = r'''
import json, sys, time
t0 = time.perf_counter()
from m6rec_bench import compat
compat.apply()
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed
import torch
model, cfg = sys.argv[1], json.loads(sys.argv[2])
torch.set_num_threads(int(sys.argv[3]))
with compat.shielded_argv():
    config = Config(model=model, dataset="ml-100k", config_dict=cfg)
init_seed(config["seed"], config["reproducibility"])
dataset = create_dataset(config)
train, valid, test = data_preparation(config, dataset)
init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
net = get_model(config["model"])(config, train._dataset).to(config["device"])
trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
best = compat.keep_best_in_memory(trainer)
trainer.fit(train, valid, saved=True, show_progress=False)
compat.restore_best(trainer, best)
res = trainer.evaluate(test, load_best_model=False)
print(json.dumps({"ndcg@10": float(res["ndcg@10"])}))
'''


def protocol_settings() -> dict:
    from m6rec_bench.protocols import get_protocol

    return {**get_protocol("default").settings(), "show_progress": False, "seed": 2020}


def time_raw(model: str, settings: dict, workdir: Path, threads: int) -> tuple[float, float]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", RAW, model, json.dumps({**settings, "checkpoint_dir": str(workdir / "saved")}),
                          str(threads)], check=True, capture_output=True, text=True, cwd=workdir)
    wall = time.perf_counter() - t
    return wall, json.loads(out.stdout.strip().splitlines()[-1])["ndcg@10"]


def m6bench_command() -> str:
    """The ``m6bench`` console script of this interpreter's environment, not a ``PATH`` wrapper (a
    pyenv shim is a shell script that costs ~0.15 s a call, which raw RecBole, run as
    ``sys.executable``, does not pay)."""
    beside = Path(sys.executable).with_name("m6bench")
    return str(beside) if beside.is_file() else (shutil.which("m6bench") or "m6bench")


def time_workbench(model: str, workdir: Path, i: int, threads: int, epochs: int | None,
                   engine: str | None) -> tuple[float, float]:
    runs, lb = workdir / f"runs{i}", workdir / f"lb{i}"
    extra = (["--epochs", str(epochs)] if epochs else []) + (["--engine", engine] if engine else [])
    env = {**os.environ, "M6BENCH_THREADS": str(threads)}
    t = time.perf_counter()
    subprocess.run([m6bench_command(), "run", "--dataset", "movielens", "--models", model, "--runs-dir", str(runs),
                    "--out", str(lb), "--no-resume", *extra], check=True, capture_output=True, text=True, cwd=workdir,
                   env=env)
    wall = time.perf_counter() - t
    data = json.loads((lb / "ml-100k" / "default" / "leaderboard.json").read_text())
    return wall, data["rows"][0]["test"]["ndcg@10"]["mean"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="BPR")
    ap.add_argument("--repeat", type=int, default=1, help="alternating pairs of runs (median reported)")
    ap.add_argument("--epochs", type=int, default=None, help="train at most N epochs on both sides (default: early stopping)")
    ap.add_argument("--engine", default=None, help="the workbench's --engine (recbole: RecBole's own loader, as raw)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    args = ap.parse_args()
    settings = protocol_settings() | ({"epochs": args.epochs} if args.epochs else {})
    print(f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}; threads {args.threads}; "
          f"epochs {args.epochs or 'early stopping'}; engine {args.engine or 'default'}")
    raw_t, wb_t = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i in range(args.repeat):
            if i % 2:  # every other pair the workbench first: a drift in the machine's speed cancels out
                w, w_ndcg = time_workbench(args.model, work, i, args.threads, args.epochs, args.engine)
                r, r_ndcg = time_raw(args.model, settings, work, args.threads)
            else:
                r, r_ndcg = time_raw(args.model, settings, work, args.threads)
                w, w_ndcg = time_workbench(args.model, work, i, args.threads, args.epochs, args.engine)
            raw_t.append(r)
            wb_t.append(w)
            print(f"pair {i + 1}: raw RecBole {r:.2f}s (NDCG@10 {r_ndcg:.4f}) | m6bench run {w:.2f}s (NDCG@10 {w_ndcg:.4f})"
                  f" | difference {w - r:+.2f}s")
            if abs(r_ndcg - w_ndcg) > 1e-9:
                print("  WARNING: results differ", file=sys.stderr)
    ratio = statistics.median(wb_t) / statistics.median(raw_t)
    diff = statistics.median(wb_t) - statistics.median(raw_t)
    print(f"\n| model | raw RecBole s | m6bench run s | ratio | difference s |\n|---|---|---|---|---|\n"
          f"| {args.model} | {statistics.median(raw_t):.2f} | {statistics.median(wb_t):.2f} | {ratio:.3f} | {diff:+.2f} |")
    diffs = sorted(w - r for w, r in zip(wb_t, raw_t))
    quart = statistics.quantiles(diffs, n=4) if len(diffs) > 1 else [diffs[0]] * 3
    print(f"paired differences: median {statistics.median(diffs):+.2f} s, quartiles {quart[0]:+.2f} / {quart[2]:+.2f} s, "
          f"{sum(d < TARGET_S for d in diffs)} of {len(diffs)} pairs under the {TARGET_S} s target")
    print(f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
