"""How close the training and evaluation paths run to the limit: one epoch, one validation pass.

For each model on ml-100k (default protocol, seed 2020, RecBole defaults), three ways of doing the
same work, each timed in CPU seconds of the process (one torch thread, so the work itself however
busy the shared machine is; the wall seconds are printed beside), the fastest of ``--repeat`` calls
(default 3) after one warm-up:

* ``recbole``: RecBole's trainer (``Trainer._train_epoch`` over its own train loader, RecBole's COO
  adjacency for LightGCN) and RecBole's evaluator (``Trainer.evaluate`` on the validation loader:
  ``eval_batch_size // n_items`` users per batch, an ``Interaction`` collated per batch).
* ``fast``: what ``M6BENCH_ENGINE=fast`` runs: the same trainer epoch over
  :class:`m6rec_bench.engine.fast_train.FastTrainLoader` (RecBole's own batches, bit for bit,
  replayed from tensors; LightGCN/NGCF with ``compat``'s CSR propagation) and
  :mod:`m6rec_bench.engine.fast_eval` (large user batches, CSR masks, RecBole's top-k and metric
  classes; no per-user values, as in validation).
* ``replay`` (validation only): what the default engine's validation runs — the ``fast`` pass plus
  the near-tie guard (rows whose top-k holds scores within ``fast_eval.NEAR_TIE`` scored again in
  their RecBole batch); the script checks that its top-k lists are RecBole's and counts those rows.
* ``torch``: a bare torch loop over the very same model module: the epoch's (user, item, negative)
  tensors (users only for an auto-encoder, as RecBole's ``UserDataLoader``) built up front and cut
  into RecBole's batch size, ``model.calculate_loss`` + Adam; the
  validation pass as one ``full_sort_predict`` for every user, the history set to ``-inf`` by one
  index, ``torch.topk`` and NDCG@10 in torch. No loader, no trainer, no ``Interaction`` collation.

``--synthetic 1M`` adds BPR (``--synthetic-models``) on a synthetic dataset of that many
interactions, shaped as ``benchmarks/scale.py`` shapes it (7 users per 1000 interactions, items
27000 * sqrt(n / 20M)); generated once under M6BENCH_HOME. There only the training epoch is timed,
once, without warm-up (an epoch is hundreds of batches); so is M6-Fusion on ml-100k (``--train-only``).

``--content-stand-ins`` gives M6-Fusion (and the text plugins) the test suite's stand-ins for its
frozen PyKEEN and MiniLM item vectors (``tests/stand_ins.py``: hashed bags of words, same shapes),
for a machine without the MiniLM weights: an epoch's work depends on the shapes, not the values.

Prints seconds and ratios (``recbole / torch``, ``fast / torch``), the load average before and after
and torch's thread count, and checks that the fast pass returns RecBole's metrics.

    python benchmarks/limit.py --models BPR LightGCN MultiVAE M6-Fusion --synthetic 1M --threads 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import numpy as np
import torch


def _built(model: str, ckpt: str, dataset: str = "ml-100k") -> tuple[Any, Any]:
    from recbole.utils import get_trainer

    from m6rec_bench import datasets
    from m6rec_bench.engine.cell import CellSpec, build, build_config_dict
    from m6rec_bench.models import registry
    from m6rec_bench.protocols import get_protocol

    ds = datasets.resolve(dataset, progress=False)
    entry, protocol = registry.get(model), get_protocol("default")
    split, extra = protocol.prepare(ds, 2020)
    config = build_config_dict(CellSpec(dataset=ds.name, model=model), entry, protocol, split, extra)
    b = build(entry, split, config, ckpt)
    return b, get_trainer(b.config["MODEL_TYPE"], b.config["model"])(b.config, b.model)


def synthetic(size: str) -> str:
    """The folder of a synthetic dataset of ``size`` interactions (``1M``, ``500k``), generated once."""
    import math

    from m6rec_bench.datasets.local import prepare_local
    from m6rec_bench.datasets.synth import SynthSpec, synthesize
    from m6rec_bench.paths import cache_dir

    n = int(float(size.upper().rstrip("MK")) * (1_000_000 if size.upper().endswith("M") else 1_000 if size.upper().endswith("K") else 1))
    users, items = max(100, round(n * 7 / 1000)), max(100, round(27000 * math.sqrt(n / 20e6)))
    spec = SynthSpec(n_users=users, n_items=items, n_interactions=n, seed=0)
    spec.check()
    folder, _ = synthesize(spec, cache_dir("synth") / f"scale-u{users}-i{items}-n{n}-s0")
    return str(prepare_local(folder).folder)


#: Timed calls per measurement on ml-100k; the fastest counts (the least disturbed by other jobs).
REPEAT = 3
#: Wall seconds of the last :func:`_timed` measurement (its CPU seconds are what it returns).
WALL: list[float] = [0.0]


def _timed(fn: Any, warm: bool = True) -> float:
    """CPU seconds of this process for ``fn()`` (one torch thread: the work itself, however busy the
    machine), the fastest of :data:`REPEAT` calls after one warm-up call; ``warm=False``: one call,
    no warm-up. The wall seconds of the counted call are left in ``WALL[0]``."""
    if warm:
        fn()  # warm-up (lazy caches, allocator)
    best, wall = float("inf"), 0.0
    for _ in range(REPEAT if warm else 1):
        c, t = time.process_time(), time.perf_counter()
        fn()
        cpu = time.process_time() - c
        if cpu < best:
            best, wall = cpu, time.perf_counter() - t
    WALL[0] = wall
    return best


def torch_epoch(b: Any, trainer: Any) -> None:
    """One epoch in a bare loop: same model, same loss, same batch size, negatives drawn uniformly."""
    from recbole.data.dataloader.user_dataloader import UserDataLoader
    from recbole.data.interaction import Interaction
    from recbole.utils import InputType

    ds, model = b.train_data._dataset, b.model
    uid, iid = ds.uid_field, ds.iid_field
    users, items = ds.inter_feat[uid], ds.inter_feat[iid]
    if isinstance(b.train_data, UserDataLoader):  # auto-encoders (MultiVAE) train on user batches
        users = torch.arange(ds.user_num)
        items = torch.zeros_like(users)
    neg_field = b.config["NEG_PREFIX"] + iid
    perm = torch.randperm(len(users))
    negs = torch.randint(1, ds.item_num, (len(users),))
    batch = b.config["train_batch_size"]
    opt = trainer.optimizer
    model.train()
    pointwise = model.input_type == InputType.POINTWISE  # NeuMF: each positive and its negative, labelled 1 / 0
    step = batch // 2 if pointwise else batch
    for start in range(0, len(users), step):
        idx = perm[start : start + step]
        if pointwise:
            inter = Interaction({uid: users[idx].repeat(2), iid: torch.cat([items[idx], negs[idx]]),
                                 b.config["LABEL_FIELD"]: torch.cat([torch.ones(len(idx)), torch.zeros(len(idx))])})
        else:
            inter = Interaction({uid: users[idx], iid: items[idx], neg_field: negs[idx]})
        opt.zero_grad()
        loss = model.calculate_loss(inter)
        loss = sum(loss) if isinstance(loss, tuple) else loss
        loss.backward()
        opt.step()


@torch.no_grad()
def torch_eval(b: Any, dense_history: torch.Tensor, positives: torch.Tensor, users: torch.Tensor) -> float:
    """One validation pass in torch: one scoring call (a pairwise model: ``predict`` on every pair,
    64 users a call), one mask, topk, NDCG@10 (RecBole's formula)."""
    from recbole.data.interaction import Interaction

    model = b.model
    model.eval()
    try:
        scores = model.full_sort_predict(Interaction({b.dataset.uid_field: users})).view(len(users), -1)
    except NotImplementedError:  # a pairwise model (NeuMF): every (user, item) pair through predict, 64 users a call
        n_items = b.dataset.item_num
        items = torch.arange(n_items).repeat(64)
        scores = torch.cat([model.predict(Interaction({b.dataset.uid_field: part.repeat_interleave(n_items),
                                                       b.dataset.iid_field: items[: len(part) * n_items]}))
                            .view(len(part), n_items) for part in users.split(64)])
    scores[:, 0] = -torch.inf
    scores[dense_history] = -torch.inf
    top = torch.topk(scores, 10, dim=-1)[1]
    hits = torch.gather(positives, 1, top).double()
    disc = 1.0 / torch.log2(torch.arange(2, 12, dtype=torch.float64))
    n_pos = positives.sum(1).clamp(max=10)
    idcg = torch.cumsum(disc, 0)[n_pos - 1]
    return float(((hits * disc).sum(1) / idcg).mean())


def _valid_matrices(b: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from m6rec_bench.engine import fast_eval

    index = fast_eval.split_index(b.valid_data)
    n, n_items = index.n_rows, b.dataset.item_num
    users = index.user_df[b.dataset.uid_field]
    hist, pos = torch.zeros(n, n_items, dtype=torch.bool), torch.zeros(n, n_items, dtype=torch.long)
    _, (hu, hi), pu, pi = index.rows(0, n)
    hist[hu, hi] = True
    pos[pu, pi] = 1
    return hist, pos, users


def measure(model: str, dataset: str = "ml-100k", train_only: bool = False) -> dict[str, Any]:
    from m6rec_bench.engine import fast_eval, fast_train

    warm = not train_only
    with tempfile.TemporaryDirectory() as ckpt:
        b, trainer = _built(model, ckpt, dataset)
        out: dict[str, Any] = {"model": model, "dataset": b.dataset.dataset_name, "interactions": len(b.train_data._dataset)}
        shimmed = getattr(b.model, "norm_adj_matrix", None)
        graph = getattr(shimmed, "_m6_symmetric", False)
        if graph:  # RecBole's own COO adjacency for the RecBole column
            b.model.norm_adj_matrix = b.model.get_norm_adj_mat()
        out["train_recbole"] = _timed(lambda: trainer._train_epoch(b.train_data, 0, show_progress=False), warm)
        out["wall_recbole"] = WALL[0]
        reference: dict[str, Any] = {}
        if not train_only:
            out["eval_recbole"] = _timed(lambda: reference.update(trainer.evaluate(b.valid_data, load_best_model=False)))
        if graph:
            b.model.norm_adj_matrix = shimmed
        fast_loader = fast_train.wrap(b.train_data)
        out["replayed"] = fast_loader is not b.train_data
        out["train_fast"] = _timed(lambda: trainer._train_epoch(fast_loader, 0, show_progress=False), warm)
        out["wall_fast"] = WALL[0]
        out["train_torch"] = _timed(lambda: torch_epoch(b, trainer), warm)
        out["wall_torch"] = WALL[0]
        if train_only:
            return out
        fast: dict[str, Any] = {}
        reference.clear()
        reference.update(trainer.evaluate(b.valid_data, load_best_model=False))  # same weights as the fast pass
        out["eval_fast"] = _timed(lambda: fast.update(fast_eval.evaluate_pass(trainer, b.valid_data, per_user=False).result))
        guarded: list[Any] = []
        out["eval_replay"] = _timed(lambda: guarded.append(
            fast_eval.evaluate_pass(trainer, b.valid_data, engine="replay", per_user=False)))
        out["replay_rescored"] = guarded[-1].rescored_rows
        lists = [fast_eval.evaluate_pass(trainer, b.valid_data, engine=e).per_user.top_items for e in ("replay", "recbole")]
        out["replay_same_lists"] = bool(np.array_equal(np.asarray(lists[0]), np.asarray(lists[1])))
        hist, pos, users = _valid_matrices(b)
        ndcg: list[float] = []
        out["eval_torch"] = _timed(lambda: ndcg.append(torch_eval(b, hist, pos, users)))
        out["same_metrics"] = dict(fast) == dict(reference)
        out["ndcg@10"] = (float(reference["ndcg@10"]), round(ndcg[-1], 4))
    return out


def _cell(r: dict[str, Any], key: str, fmt: str) -> str:
    return format(r[key], fmt) if key in r else "–"


def main() -> None:
    global REPEAT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["BPR", "LightGCN", "MultiVAE", "M6-Fusion"])
    ap.add_argument("--synthetic", nargs="*", default=["1M"], metavar="SIZE",
                    help="synthetic sizes for --synthetic-models (training epoch only); none: skip")
    ap.add_argument("--synthetic-models", nargs="+", default=["BPR"])
    ap.add_argument("--train-only", nargs="*", default=["M6-Fusion"], metavar="MODEL",
                    help="models of --models timed on the training epoch only, one call without warm-up "
                         "(an M6-Fusion epoch is ~100x a BPR one)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine has 2 shared cores)")
    ap.add_argument("--repeat", type=int, default=REPEAT, help="timed calls per ml-100k measurement (the fastest counts)")
    ap.add_argument("--content-stand-ins", action="store_true",
                    help="tests/stand_ins.py's KG and text vectors for M6-Fusion (no MiniLM download)")
    args = ap.parse_args()
    REPEAT = max(1, args.repeat)
    if args.content_stand_ins:
        import contextlib
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from stand_ins import content_stand_ins

        contextlib.ExitStack().enter_context(content_stand_ins())  # for the whole run
    torch.set_num_threads(args.threads)
    from m6rec_bench import compat

    compat.apply()
    load0 = os.getloadavg()
    jobs = [(m, "ml-100k", m in args.train_only) for m in args.models]
    jobs += [(m, synthetic(size), True) for size in args.synthetic for m in args.synthetic_models]
    rows = []
    for name, dataset, train_only in jobs:
        rows.append(measure(name, dataset, train_only))
        r = rows[-1]
        print(f"{name} on {r['dataset']} ({r['interactions']:,} train interactions): train {r['train_recbole']:.3f}s "
              f"fast {r['train_fast']:.3f}s torch {r['train_torch']:.3f}s | eval recbole {_cell(r, 'eval_recbole', '.4f')}s "
              f"fast {_cell(r, 'eval_fast', '.4f')}s replay {_cell(r, 'eval_replay', '.4f')}s "
              f"(rows re-scored {r.get('replay_rescored', '–')}, RecBole's lists {r.get('replay_same_lists', '–')}) "
              f"torch {_cell(r, 'eval_torch', '.4f')}s | "
              f"same metrics {r.get('same_metrics', '–')} NDCG@10 {r.get('ndcg@10', '–')} | epoch wall s: recbole "
              f"{r['wall_recbole']:.3f} fast {r['wall_fast']:.3f} torch {r['wall_torch']:.3f} | load {os.getloadavg()[0]:.2f}",
              flush=True)
    load = os.getloadavg()
    print(f"\nload average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} at the start, {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} at the end; torch threads {torch.get_num_threads()}; {os.cpu_count()} CPUs\n")
    print("CPU seconds (one torch thread), fastest of the timed calls:\n")
    print("| model | train interactions | epoch RecBole s | epoch fast s | epoch torch s | RecBole / torch | fast / torch "
          "| valid pass RecBole s | valid pass fast s | valid pass replay s | valid pass torch s | RecBole / fast "
          "| RecBole / replay | replay / torch | same metrics | replay: RecBole's lists (rows re-scored) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        ev = "eval_recbole" in r
        print(f"| {r['model']} | {r['interactions']:,} | {r['train_recbole']:.3f} | {r['train_fast']:.3f} | {r['train_torch']:.3f} | "
              f"{r['train_recbole'] / r['train_torch']:.2f} | {r['train_fast'] / r['train_torch']:.2f} | "
              + (f"{r['eval_recbole']:.4f} | {r['eval_fast']:.4f} | {r['eval_replay']:.4f} | {r['eval_torch']:.4f} | "
                 f"{r['eval_recbole'] / r['eval_fast']:.2f} | {r['eval_recbole'] / r['eval_replay']:.2f} | "
                 f"{r['eval_replay'] / r['eval_torch']:.2f} | {'yes' if r['same_metrics'] else 'NO'} | "
                 f"{'yes' if r['replay_same_lists'] else 'NO'} ({r['replay_rescored']}) |"
                 if ev else "– | – | – | – | – | – | – | – | – |"))


if __name__ == "__main__":
    main()
