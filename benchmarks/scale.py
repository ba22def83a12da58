"""Time and peak memory of one training epoch as the data grows: 1M, 5M, 20M synthetic interactions.

For every size a synthetic dataset is generated (``m6bench datasets synth``, cached under
M6BENCH_HOME, reused on later runs) and every model trains ONE epoch through the workbench:
``m6bench run --dataset <folder> -m MODEL --epochs 1`` in a fresh subprocess, so dataset loading,
RecBole's split, the model's set-up (KG training, text encoding), the epoch, the validation and
test full-ranking evaluations and the per-user metrics of the record all count.

Sizes follow MovieLens-20M's shape (20M interactions, 138k users, 27k items): users grow linearly
(``--users-per-1k 7`` → 143 interactions per user on average), items as the square root
(``--items-at-20m 27000`` → 6.0k items at 1M, 13.5k at 5M, 27k at 20M).

Memory is the peak resident set of the run (``os.wait4`` of the child: the largest of the child and
its waited-for descendants). The phases come from timers the child wraps around RecBole's
functions (``create_dataset``, ``data_preparation``, ``Trainer.fit``/``evaluate``) and the
workbench's dataset resolution and per-user metrics; wrapping changes nothing they compute.

Evaluation is RecBole's full ranking over every user and item; only ``eval_batch_size`` is set
(``--eval-users-per-batch``, default 1024 users per batch instead of RecBole's 4096 *scores*, which
is one user per batch once a catalogue passes 4096 items). Metrics do not depend on it.

    python benchmarks/scale.py --sizes 1M                       # all three models at 1M
    python benchmarks/scale.py --sizes 1M,5M,20M --models BPR   # growth of one model
    python benchmarks/scale.py --sizes 1M --override train_batch_size=8192

A run that fails or exceeds ``--timeout`` is reported as such and the others go on.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

DEFAULT_MODELS = "BPR,GNN-LightGCN,M6-Fusion"
_T_IMPORT = time.perf_counter()

# ------------------------------------------------------------------ the child: m6bench run, with timers


class _FirstBatches:
    """A training loader cut to its first ``n`` batches (everything else is the real loader's)."""

    def __init__(self, loader: Any, n: int) -> None:
        self._loader, self._n = loader, n

    def __iter__(self) -> Any:
        return itertools.islice(iter(self._loader), self._n)

    def __len__(self) -> int:
        return min(self._n, len(self._loader))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def _child(phases_out: str, argv: list[str], max_batches: int | None = None) -> int:
    """Run ``m6bench <argv>`` in this process with timers around the phases; write them as JSON.

    With ``max_batches`` the training epoch stops after that many batches (the epoch's batch count
    and the trained batches are recorded, so the parent reports seconds per batch measured).
    """
    from m6rec_bench import compat

    compat.apply()
    import recbole.data
    from recbole.trainer import Trainer

    import m6rec_bench.datasets as datasets_pkg
    from m6rec_bench import evaluation

    t_start = time.perf_counter()
    phases: dict[str, float] = {}
    state = {"in_fit": False, "fit_start": None, "split_end": None}

    import resource

    def add(key: str, dt: float) -> None:
        phases[key] = phases.get(key, 0.0) + dt
        # peak RSS of this process so far, in MB, as each phase ends: which phase sets the peak
        phases[f"peak_mb_after_{key}"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def timed(key: str, fn: Any, after: Any = None) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                add(key, time.perf_counter() - t)
                if after is not None:
                    after()
        return wrapper

    datasets_pkg.resolve = timed("resolve", datasets_pkg.resolve)
    recbole.data.create_dataset = timed("load", recbole.data.create_dataset)
    recbole.data.data_preparation = timed(
        "split", recbole.data.data_preparation, lambda: state.update(split_end=time.perf_counter()))
    # the engine scores test users for per-user metrics and beyond-accuracy lists through evaluate_groups
    evaluation.evaluate_groups = timed("per_user_metrics", evaluation.evaluate_groups)
    fit, evaluate, train_epoch = Trainer.fit, Trainer.evaluate, Trainer._train_epoch

    def train_epoch_cut(self: Any, train_data: Any, *a: Any, **kw: Any) -> Any:
        phases["epoch_batches"] = len(train_data)
        phases["trained_batches"] = min(max_batches, len(train_data)) if max_batches else len(train_data)
        return train_epoch(self, _FirstBatches(train_data, max_batches) if max_batches else train_data, *a, **kw)

    Trainer._train_epoch = train_epoch_cut

    def fit_timed(self: Any, *a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        if state["split_end"] is not None:
            add("model_init", t - state["split_end"])
        state["in_fit"] = True
        try:
            return fit(self, *a, **kw)
        finally:
            state["in_fit"] = False
            add("fit", time.perf_counter() - t)

    def evaluate_timed(self: Any, *a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return evaluate(self, *a, **kw)
        finally:
            add("valid_eval" if state["in_fit"] else "test_eval", time.perf_counter() - t)

    Trainer.fit, Trainer.evaluate = fit_timed, evaluate_timed
    phases["imports"] = t_start - _T_IMPORT
    from m6rec_bench.cli import app

    code = 0
    try:
        app(argv, prog_name="m6bench")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    phases["total_in_process"] = time.perf_counter() - t_start
    phases["train"] = phases.get("fit", 0.0) - phases.get("valid_eval", 0.0)
    counted = ("resolve", "load", "split", "model_init", "fit", "test_eval", "per_user_metrics")
    phases["other"] = phases["total_in_process"] - sum(phases.get(k, 0.0) for k in counted)
    Path(phases_out).write_text(json.dumps(phases))
    return int(code or 0)


# ------------------------------------------------------------------ the parent: measure children


def parse_size(text: str) -> int:
    """``1M`` → 1_000_000, ``500k`` → 500_000, ``2500`` → 2500."""
    text = text.strip()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def shape(n: int, users_per_1k: float, items_at_20m: int) -> tuple[int, int]:
    """(users, items) for ``n`` interactions: users linear in n, items as sqrt(n), ml-20m at 20M."""
    users = max(2, round(n * users_per_1k / 1000))
    items = max(2, round(items_at_20m * math.sqrt(n / 20_000_000) / 100) * 100)
    return users, items


class Measured:
    """Wall time, exit code, peak RSS (wait4) and peak tree RSS (sampled) of one subprocess."""

    def __init__(self, cmd: list[str], *, timeout: float, env: dict[str, str], log: Path) -> None:
        import psutil

        self.cmd = cmd
        t = time.perf_counter()
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        self.tree_peak_mb = 0.0
        stop = threading.Event()

        def sample() -> None:
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not stop.is_set():
                total = 0
                try:
                    for p in [root, *root.children(recursive=True)]:
                        try:
                            total += p.memory_info().rss
                        except psutil.Error:
                            pass
                except psutil.Error:
                    break
                self.tree_peak_mb = max(self.tree_peak_mb, total / 2**20)
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, lambda: _kill(proc))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            stop.set()
            sampler.join(2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.wall = time.perf_counter() - t
        self.rc = proc.returncode
        self.timed_out = self.wall >= timeout
        self.peak_mb = usage.ru_maxrss / 1024  # Linux: KiB
        # CPU seconds of the child and its waited-for descendants: on a shared machine the wall time
        # is an upper bound, the CPU time is what the run itself cost
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.log = log


def _kill(proc: subprocess.Popen) -> None:
    import psutil

    try:
        for p in psutil.Process(proc.pid).children(recursive=True):
            p.kill()
        proc.kill()
    except psutil.Error:
        pass


def _tail(path: Path, n: int = 3) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[-400:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,5M,20M", help="interaction counts, comma-separated (1M, 500k, …)")
    ap.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated (default {DEFAULT_MODELS})")
    ap.add_argument("--users-per-1k", type=float, default=7.0, help="users per 1000 interactions (ml-20m: 6.9)")
    ap.add_argument("--items-at-20m", type=int, default=27000, help="items at 20M interactions; scales as sqrt")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    ap.add_argument("--eval-users-per-batch", type=int, default=1024,
                    help="users scored per full-ranking batch (sets eval_batch_size = this × items)")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="extra RecBole/plugin setting for every model (YAML value), repeatable")
    ap.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per model run before it is killed")
    ap.add_argument("--threads", type=int, default=None, help="torch threads in each run (default: torch's)")
    ap.add_argument("--max-train-batches", type=int, default=None,
                    help="train only the first N batches of the epoch (a model whose full epoch takes hours): "
                         "the table reports seconds per batch measured and the batches of a full epoch")
    ap.add_argument("--workdir", type=Path, default=None, help="keep runs, logs and results here (default: temp)")
    ap.add_argument("--json", type=Path, default=None, help="also write all measurements to this JSON file")
    args = ap.parse_args()

    import yaml

    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    extra = {}
    for item in args.override:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--override {item!r} must be KEY=VALUE")
        extra[key.strip()] = yaml.safe_load(value)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="m6bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    results: list[dict[str, Any]] = []
    print(f"workdir {work}", flush=True)

    for n in sizes:
        users, items = shape(n, args.users_per_1k, args.items_at_20m)
        name = f"scale-u{users}-i{items}-n{n}-s{args.seed}"
        gen = Measured([sys.executable, "-m", "m6rec_bench", "datasets", "synth", "-u", str(users), "-i", str(items),
                        "-n", str(n), "--seed", str(args.seed), "--name", name, "--no-progress"],
                       timeout=args.timeout, env=env, log=work / f"{name}.synth.log")
        out = (work / f"{name}.synth.log").read_text()
        folder = next((ln.split(": ", 1)[1].split("  (")[0].strip() for ln in out.splitlines() if ln.startswith(f"{name}: ")), None)
        row = {"size": n, "users": users, "items": items, "model": "(synth)", "rc": gen.rc, "wall_s": gen.wall, "cpu_s": gen.cpu_s,
               "peak_mb": gen.peak_mb, "tree_peak_mb": gen.tree_peak_mb, "reused": "already generated" in out}
        results.append(row)
        print(f"{n:>10,} interactions, {users:,} users, {items:,} items: synth {gen.wall:.1f}s, peak {gen.peak_mb:.0f} MB"
              + (" (reused)" if row["reused"] else ""), flush=True)
        if gen.rc != 0 or folder is None:
            print(f"  synth failed (rc {gen.rc}): {_tail(gen.log)}", flush=True)
            continue
        for model in models:
            tag = f"{name}-{model}"
            suite = work / f"{tag}.yaml"
            overrides = {"eval_batch_size": args.eval_users_per_batch * (items + 1), **extra}
            suite.write_text(yaml.safe_dump({"overrides": {model: overrides}}))
            phases_path = work / f"{tag}.phases.json"
            phases_path.unlink(missing_ok=True)
            cut = ["--_max_batches", str(args.max_train_batches)] if args.max_train_batches else []
            cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", str(phases_path), *cut, "--",
                   "run", "--dataset", folder, "-m", model, "--epochs", "1", "--config", str(suite),
                   "--runs-dir", str(work / f"{tag}.runs"), "--out", str(work / f"{tag}.lb"), "--no-resume"]
            m = Measured(cmd, timeout=args.timeout, env=env, log=work / f"{tag}.log")
            phases = json.loads(phases_path.read_text()) if phases_path.is_file() else {}
            rec = next((json.loads(p.read_text()) for p in (work / f"{tag}.runs").rglob("seed*.json")), {}) \
                if (work / f"{tag}.runs").is_dir() else {}
            status = "timeout" if m.timed_out else ("ok" if m.rc == 0 and rec.get("status") == "ok" else "failed")
            row = {"size": n, "users": users, "items": items, "model": model, "rc": m.rc, "status": status,
                   "wall_s": m.wall, "cpu_s": m.cpu_s, "peak_mb": m.peak_mb, "tree_peak_mb": m.tree_peak_mb, "phases": phases,
                   "record_peak_mb": rec.get("peak_mem_mb"), "ndcg@10": (rec.get("test") or {}).get("ndcg@10"),
                   "reason": rec.get("reason") or (None if status == "ok" else _tail(m.log))}
            results.append(row)
            p = phases
            print(f"  {model:14} {status:7} {m.wall:8.1f}s  peak {m.peak_mb:8.0f} MB  "
                  f"(load {p.get('load', 0):.1f}s, split {p.get('split', 0):.1f}s, init {p.get('model_init', 0):.1f}s, "
                  f"train {p.get('train', 0):.1f}s, valid {p.get('valid_eval', 0):.1f}s, test {p.get('test_eval', 0):.1f}s, "
                  f"per-user {p.get('per_user_metrics', 0):.1f}s)" + ("" if status == "ok" else f"  — {row['reason']}"),
                  flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2))

    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _batches(p: dict[str, Any]) -> str:
    done, total = int(p["trained_batches"]), int(p["epoch_batches"])
    return f"{done}" if done == total else f"{done} of {total}"


def print_table(results: list[dict[str, Any]]) -> None:
    """Markdown table of every run, then growth ratios between consecutive sizes of one model."""
    cols = ("resolve", "load", "split", "model_init", "train", "valid_eval", "test_eval", "per_user_metrics", "other")
    print("\n| interactions | users | items | model | status | total s | CPU s | " + " | ".join(c.replace("_", " ") + " s" for c in cols)
          + " | trained batches | s / batch | peak RSS MB | test NDCG@10 |")
    print("|" + "---:|" * 3 + "---|---|" + "---:|" * (len(cols) + 6))
    for r in results:
        p = dict(r.get("phases") or {})
        if "total_in_process" in p:  # interpreter start and imports, before the timers existed
            p["other"] = p.get("other", 0.0) + r["wall_s"] - p["total_in_process"]
        ndcg = f"{r['ndcg@10']:.4f}" if r.get("ndcg@10") is not None else ""
        per_batch = f"{p['train'] / p['trained_batches']:.2f}" if p.get("trained_batches") and "train" in p else ""
        batches = _batches(p) if p.get("trained_batches") else ""
        print(f"| {r['size']:,} | {r['users']:,} | {r['items']:,} | {r['model']} | {r.get('status', 'ok' if r['rc'] == 0 else 'failed')} "
              f"| {r['wall_s']:.1f} | " + (f"{r['cpu_s']:.1f}" if "cpu_s" in r else "") + " | "
              + " | ".join(f"{p[c]:.1f}" if c in p else "" for c in cols)
              + f" | {batches} | {per_batch} | {r['peak_mb']:.0f} | {ndcg} |")
    print("\ngrowth (time ×, memory ×) between consecutive sizes:")
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if r.get("status", "ok") == "ok" and r["rc"] == 0:
            by_model.setdefault(r["model"], []).append(r)
    for model, rows in by_model.items():
        rows.sort(key=lambda r: r["size"])
        steps = [f"{b['size'] / 1e6:g}M/{a['size'] / 1e6:g}M: time ×{b['wall_s'] / a['wall_s']:.2f}, "
                 f"memory ×{b['peak_mb'] / a['peak_mb']:.2f}" for a, b in itertools.pairwise(rows)]
        if steps:
            print(f"  {model}: " + "; ".join(steps))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--_child":
        sep = sys.argv.index("--")
        cap = int(sys.argv[sys.argv.index("--_max_batches") + 1]) if "--_max_batches" in sys.argv[:sep] else None
        sys.exit(_child(sys.argv[2], sys.argv[sep + 1:], cap))
    main()
