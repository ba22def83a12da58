"""Start-up time of the commands people type most, against the interpreter's own start, in one run.

Each command runs N times as a fresh ``python -m m6rec_bench`` process (the way ``m6bench`` runs),
interleaved so a change of machine load hits every command alike; the script prints the median,
min and max wall time of each, its ratio to ``python -c pass``, and the 1-minute load average
before and after (the target, ≤ 1.5 s on an idle 2-core machine, means little on a loaded one).

    python benchmarks/startup.py              # 7 runs each
    python benchmarks/startup.py --runs 15

The typo command exits 2 by design (``model 'BRP' not found — did you mean 'BPR'?``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "m6bench --help": [sys.executable, "-m", "m6rec_bench", "--help"],
    "m6bench models list": [sys.executable, "-m", "m6rec_bench", "models", "list"],
    "m6bench run -d movielens -m BRP": [sys.executable, "-m", "m6rec_bench", "run", "-d", "movielens", "-m", "BRP"],
}
EXPECTED_EXIT = {"m6bench run -d movielens -m BRP": 2}


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (default 7)")
    args = parser.parse_args()
    env = {**os.environ, "COLUMNS": "80", "OMP_WAIT_POLICY": "PASSIVE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, argv in COMMANDS.items():  # one warm-up each: the first run also pays the disk cache
        _time(argv, env)
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            seconds, code = _time(argv, env)
            if code != EXPECTED_EXIT.get(name, 0):
                sys.exit(f"{name} exited {code}, expected {EXPECTED_EXIT.get(name, 0)}")
            times[name].append(seconds)
    load_after = os.getloadavg()
    base = statistics.median(times["python -c pass"])
    print(f"{os.cpu_count()} CPUs; load average (1, 5, 15 min) before {load_before[0]:.2f}, {load_before[1]:.2f}, "
          f"{load_before[2]:.2f}; after {load_after[0]:.2f}, {load_after[1]:.2f}, {load_after[2]:.2f}; {args.runs} runs each\n")
    print("| command | median s | min s | max s | median / python -c pass |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.3f} | {min(values):.3f} | {max(values):.3f} | {median / base:.1f} |")


if __name__ == "__main__":
    main()
