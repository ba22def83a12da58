"""Wall time of the default suite: ``m6bench run --dataset movielens``, start to finish.

Runs the command in a fresh process with its records and boards in a temporary folder (nothing
under ./runs or ./leaderboards is read or written, so no cell is reused), and prints the wall time,
the load average before and after, the cores, and from the records it left: the cells, how many
ran at once, the torch threads and the engine each ran with, and the cells' own times (set-up +
training + evaluation, summed: what ``--jobs`` overlaps). Target (issue #19): at most 6 minutes
on 2 cores.

Arguments after ``--`` go to ``m6bench run`` (so a subset can be timed):

    python benchmarks/suite_time.py                              # the default suite, default settings
    python benchmarks/suite_time.py --engine fast                # M6BENCH_ENGINE=fast
    python benchmarks/suite_time.py -- --models BPR --seeds 1    # a one-cell check that it works
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

TARGET_S = 6 * 60


def _records(runs: Path) -> list[dict[str, Any]]:
    """The cell records under ``runs`` (one per cell id; an artifact folder's own JSON is skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(runs.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "cell_id" in data and "status" in data and "seed" in data:
            out.setdefault(data["cell_id"], data)
    return list(out.values())


def _counts(values: list[Any]) -> str:
    return ", ".join(f"{v} ({n})" if len(set(values)) > 1 else str(v) for v, n in Counter(values).most_common()) or "–"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="movielens")
    ap.add_argument("--engine", choices=("replay", "recbole", "fast"), default=None, help="M6BENCH_ENGINE (default: the package's)")
    ap.add_argument("--keep", type=Path, default=None, help="keep runs and boards here instead of a temporary folder")
    ap.add_argument("run_args", nargs=argparse.REMAINDER, help="after --: more m6bench run arguments")
    args = ap.parse_args()
    extra = [a for a in args.run_args if a != "--"] if args.run_args[:1] == ["--"] else args.run_args

    work = args.keep or Path(tempfile.mkdtemp(prefix="m6bench-suite-time-"))
    runs, out = work / "runs", work / "leaderboards"
    env = dict(os.environ)
    if args.engine:
        env["M6BENCH_ENGINE"] = args.engine
    env.pop("M6BENCH_IN_PROCESS", None)  # the command as a user runs it
    cmd = [sys.executable, "-m", "m6rec_bench", "run", "--dataset", args.dataset, "--runs-dir", str(runs), "--out", str(out),
           *extra]
    print("$ " + " ".join(cmd[2:]), flush=True)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, text=True, capture_output=True)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    plan = next((ln for ln in proc.stdout.splitlines() if ln.startswith("Plan:")), "")
    print(plan)
    if proc.returncode != 0:
        print(f"m6bench run exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-2000:]}")
    recs = _records(runs)
    ok = [r for r in recs if r["status"] == "ok"]
    cond = [r.get("conditions") or {} for r in recs]
    cell_s = sum((r.get("setup_time_s") or 0) + (r.get("train_time_s") or 0) + (r.get("eval_time_s") or 0) for r in ok)
    print(f"\nwall time {wall:.1f} s ({wall / 60:.2f} min; target ≤ {TARGET_S / 60:.0f} min on 2 cores: "
          f"{'met' if wall <= TARGET_S else 'missed'}), exit {proc.returncode}")
    print(f"cells: {len(recs)} ({len(ok)} ok); cells' own time, summed: {cell_s:.1f} s")
    print(f"cores {os.cpu_count()} (affinity {len(os.sched_getaffinity(0))}); cells at once: "
          f"{_counts([c.get('parallel_cells') for c in cond])}; torch threads per cell: {_counts([c.get('torch_threads') for c in cond])}; "
          f"engine: {_counts([c.get('engine') for c in cond])}; OMP_WAIT_POLICY: {_counts([c.get('omp_wait_policy') for c in cond])}")
    print(f"load average {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f} before, {load1[0]:.2f} / {load1[1]:.2f} / "
          f"{load1[2]:.2f} after (1 / 5 / 15 min)")
    print("cells, longest first (set-up + training + evaluation s, epochs run, s per epoch):")
    for r in sorted(ok, key=lambda r: -((r.get("setup_time_s") or 0) + (r.get("train_time_s") or 0) + (r.get("eval_time_s") or 0))):
        secs = (r.get("setup_time_s") or 0) + (r.get("train_time_s") or 0) + (r.get("eval_time_s") or 0)
        epochs = r.get("epochs_run") or 0
        per = f"{(r.get('train_time_s') or 0) / epochs:.2f}" if epochs else "–"
        print(f"  {r.get('label') or r['model']} seed {r['seed']}: {secs:.1f} s, {epochs} epochs, {per} s/epoch")
    print(f"records: {runs}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
