"""Regenerate ``m6rec_bench/engine/cost_priors.json``: the per-row costs ``m6bench run`` estimates from.

Reads every record published beside the committed leaderboards (``leaderboards/**/records/*.json``),
keeps untuned finished cells once each, and writes the medians :func:`m6rec_bench.engine.estimate.
build_priors` computes (seconds per epoch, evaluation seconds, epochs run under early stopping per
row and protocol; evaluation seconds per post-training method). Run it after publishing new boards:

    python benchmarks/cost_priors.py            # from the repository root

``--runs-dir DIR`` (repeatable; default ``benchmarks/priors_records``, committed) adds the records
of a fresher run — the quiet ``benchmarks/suite_time.py --keep DIR`` run of the current code — and,
for every row and protocol those records cover, they replace the published ones
(:func:`~m6rec_bench.engine.estimate.build_priors`): the published boards' costs were measured by
older code, often on a loaded machine, and ordered and estimated today's cells wrongly (the default
suite was estimated at ~26 min when it took 6.5). Copy a run's record files (``*.json`` beside the
``.artifact`` folders) into ``benchmarks/priors_records`` to commit them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Records of the latest quiet run of the default suite (see the module doc).
FRESH = ROOT / "benchmarks" / "priors_records"
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from m6rec_bench.engine.estimate import PRIORS_FILE, build_priors, dataset_size  # noqa: E402
from m6rec_bench.io import atomic_write_text  # noqa: E402
from m6rec_bench.results.store import load_record  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=Path, default=ROOT / "leaderboards", help="published leaderboards root")
    parser.add_argument("--out", type=Path, default=PRIORS_FILE, help="the priors file to write")
    parser.add_argument("--runs-dir", type=Path, action="append", default=None,
                        help="records of a fresher run; they replace the published ones for the rows they cover "
                             f"(default: {FRESH.relative_to(ROOT)})")
    args = parser.parse_args()
    records = [r for p in sorted(args.boards.glob("**/records/*.json")) if (r := load_record(p)) is not None]
    fresh = [r for d in (args.runs_dir or [FRESH]) for p in sorted(d.rglob("*.json")) if (r := load_record(p)) is not None]
    datasets = {r.dataset for r in records + fresh}
    interactions = {d: n for d in datasets if (n := dataset_size(d)[1]) is not None}
    priors = build_priors(records, interactions, fresh)
    atomic_write_text(args.out, json.dumps(priors, indent=1, ensure_ascii=False) + "\n")
    print(f"{args.out}: {len(priors['rows'])} rows from {len(records)} published records and {len(fresh)} fresher "
          f"ones ({priors['measured_on']})")


if __name__ == "__main__":
    main()
