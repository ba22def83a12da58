"""RecBole set-up and training of one resolved cell, below the engine.

The sequence is RecBole's ``run_recbole`` step for step (Config → init_seed → create_dataset →
data_preparation → init_seed → model → trainer.fit → trainer.evaluate), so a baseline run here gives
the same numbers as raw RecBole; plugins go through the very same trainer and evaluator.
:func:`build` is also how :mod:`m6rec_bench.artifacts` rebuilds a trained model, so artifacts,
tuning trials and the engine share one set-up and none of them imports the engine.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from m6rec_bench import compat
from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.models.registry import ModelEntry
from m6rec_bench.protocols.cold_item import TRAIN_NEGATIVES, exclude_held_out_negatives
from m6rec_bench.results.portable import portable_settings

if TYPE_CHECKING:
    from m6rec_bench.engine.checkpoint import CheckpointPlan

EpochCallback = Callable[[int, float], None]

#: Per-user test metrics kept in every record (for paired significance tests between rows).
PER_USER_METRICS = ("ndcg@10", "recall@10")


@dataclass
class CellRun:
    """Everything a finished RecBole run yields, kept for records and artifacts.

    The RecBole objects (``config``, ``dataset``, ``model``, the three loaders) come first;
    the rest is filled by :func:`train_and_evaluate` (a post-training variant evaluates a loaded
    model and leaves them empty). ``item_stats`` (:func:`m6rec_bench.beyond.stats_of`) and
    ``per_user_metrics`` (the cold-item protocol's groups) are caches the evaluation fills in.
    """

    config: Any = None
    dataset: Any = None
    model: Any = None
    train_data: Any = None
    valid_data: Any = None
    test_data: Any = None
    trainer: Any = None
    valid: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    test_pass: Any = None  # fast_eval.TestPass of the test means, when the loader allowed one
    best_epoch: int | None = None
    epochs_run: int | None = None
    train_time: float = 0.0
    eval_time: float = 0.0
    setup_time: float = 0.0
    n_params: int | None = None
    n_trainable_params: int | None = None
    n_buffers: int | None = None
    item_stats: Any = None
    per_user_metrics: Any = None


@dataclass
class Built:
    """A cell's RecBole objects before training: config, dataset, the three loaders and the model,
    and ``setup_time`` (seconds to construct the model: pretraining, encoders, graphs)."""

    config: Any
    dataset: Any
    train_data: Any
    valid_data: Any
    test_data: Any
    model: Any
    setup_time: float = 0.0


def build(entry: ModelEntry, ds: PreparedDataset, config_dict: dict[str, Any], checkpoint_dir: str) -> Built:
    """RecBole's run_recbole set-up (Config → init_seed → create_dataset → data_preparation → init_seed
    → model), without logging set-up or the quick_start import. Seeded, so the same config and seed
    give the same split and the same initial weights (an artifact is loaded into such a model)."""
    compat.apply()
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_seed

    model_arg: Any = entry.model_cls or entry.name  # a class (plugin, own baseline) or RecBole's model name
    full = {**config_dict, "data_path": str(ds.root), "checkpoint_dir": checkpoint_dir, "show_progress": False}
    config = compat.build_config(model_arg, ds.name, full)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    if config_dict.get(TRAIN_NEGATIVES[0]) == TRAIN_NEGATIVES[1]:
        exclude_held_out_negatives(train_data)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_cls = model_arg if not isinstance(model_arg, str) else get_model(config["model"])
    t0 = time.perf_counter()  # plugins pretrain (TransE) and encode (MiniLM) here, before the trainer's clock
    model = model_cls(config, compat.loader_dataset(train_data)).to(config["device"])
    return Built(config, dataset, train_data, valid_data, test_data, model, time.perf_counter() - t0)


def model_size(model: Any) -> dict[str, int]:
    """Parameter counts of a model: all parameters (trainable and frozen), the trainable ones, and the
    values of its buffers (precomputed KG / text vectors, graphs: held, not learned)."""
    params = list(model.parameters())
    return {"n_params": sum(p.numel() for p in params),
            "n_trainable_params": sum(p.numel() for p in params if p.requires_grad),
            "n_buffers": sum(b.numel() for b in model.buffers())}


def metric_means(result: Any) -> dict[str, float]:
    """RecBole's result dict (``OrderedDict`` of numpy floats, or None) as ``{name: float}``."""
    return {str(k): float(v) for k, v in (result or {}).items()}


def train_and_evaluate(
    entry: ModelEntry,
    ds: PreparedDataset,
    config_dict: dict[str, Any],
    *,
    on_epoch: EpochCallback | None = None,
    evaluate_test: bool = True,
    checkpoints: CheckpointPlan | None = None,
) -> CellRun:
    """Build the cell (:func:`build`), train it with RecBole's trainer and evaluate it on test.

    The test pass goes through :mod:`m6rec_bench.engine.fast_eval` (``M6BENCH_ENGINE``:
    ``replay`` by default: RecBole's own evaluation batches, training batches replayed bit for bit by
    :mod:`m6rec_bench.engine.fast_train`; ``recbole``: RecBole's loaders throughout; ``fast``: replay
    and large evaluation batches, validation included) and is kept
    as ``run.test_pass`` (its means are ``run.test``, its per-user values the record's).

    ``on_epoch(epoch, valid_score)`` is called after every validation; an exception it raises (e.g.
    Optuna's ``TrialPruned``) stops training and propagates. ``evaluate_test=False`` skips the test
    evaluation (tuning selects on validation only) and leaves ``test`` empty. With ``checkpoints``
    the full training state is saved after every epoch and a run interrupted mid-training resumes
    from its last finished epoch (:mod:`m6rec_bench.engine.checkpoint`).
    """
    from recbole.utils import get_trainer

    from m6rec_bench.engine import fast_eval, fast_train  # torch: imported where a cell trains, not by the planner

    with tempfile.TemporaryDirectory(prefix="m6bench-ckpt-") as ckpt:
        b = build(entry, ds, config_dict, ckpt)
        config, model = b.config, b.model
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        engine = fast_eval.engine_from_env()
        fast_eval.install(trainer, engine)
        if engine in fast_eval.REPLAY_ENGINES:  # RecBole's own batches, replayed from tensors (engine.fast_train)
            b.train_data = fast_train.wrap(b.train_data)
        best = compat.keep_best_in_memory(trainer)
        epochs_seen: list[int] = []
        saver = checkpoints.attach(trainer, b, best, epochs_seen) if checkpoints is not None else None

        def _cb(epoch: int, score: float) -> None:
            epochs_seen.append(epoch)
            if saver is not None:
                saver.save(epoch)  # before on_epoch: an interrupt raised there keeps this epoch
            if on_epoch is not None:
                on_epoch(epoch, float(score))

        t0 = time.perf_counter()
        finished = saver is not None and saver.resume() and saver.finished  # fit then only returns the best
        _, valid_result = trainer.fit(b.train_data, b.valid_data, saved=not finished, show_progress=False, callback_fn=_cb)
        train_time = time.perf_counter() - t0 + (saver.prior_train_time if saver is not None else 0.0)
        compat.restore_best(trainer, best)
        t1 = time.perf_counter()
        # the test pass in RecBole's own batches unless the engine is "fast": reported numbers never rest on the guard
        test_pass = fast_eval.evaluate_pass(trainer, b.test_data, engine="fast" if engine == "fast" else "recbole") \
            if evaluate_test and fast_eval.supports(trainer, b.test_data) else None
        test_result = test_pass.result if test_pass is not None else \
            trainer.evaluate(b.test_data, load_best_model=False, show_progress=False) if evaluate_test else {}
        eval_time = time.perf_counter() - t1
    return CellRun(
        config=config, dataset=b.dataset, model=model, trainer=trainer, test_data=b.test_data,
        train_data=b.train_data, valid_data=b.valid_data, valid=metric_means(valid_result), test=metric_means(test_result),
        test_pass=test_pass, best_epoch=best.get("epoch"), epochs_run=(max(epochs_seen) + 1) if epochs_seen else None,
        train_time=train_time, eval_time=eval_time, setup_time=b.setup_time, **model_size(model),
    )


def per_user_and_beyond(run: CellRun) -> tuple[dict[str, list[Any]], dict[str, float]]:
    """Per-user test metrics of a finished run (keyed by external user id) and, from the same
    evaluator pass's top-10 lists, its beyond-accuracy group (:mod:`m6rec_bench.beyond`).

    They come from the pass that gave the run's ``test`` means (``run.test_pass``,
    :mod:`m6rec_bench.engine.fast_eval`), at the protocol's cut-offs, so a per-user mean is the
    tabled mean: ``torch.topk`` breaks ties differently for another ``k``, so a second pass at other
    cut-offs could rank tied items otherwise (issue #16: Pop 0.1005 vs 0.1033)."""
    from m6rec_bench import beyond
    from m6rec_bench.evaluation import evaluate_groups

    if run.test_pass is not None:
        pu = run.test_pass.per_user
    else:  # a loader fast_eval does not take: the same cut-offs as the test means, one extra pass
        pu = evaluate_groups(run.model, run.test_data, {"all": None}, metrics=("NDCG", "Recall"),
                             topk=tuple(run.config["topk"]), top_items=beyond.K)["all"]
    tokens = run.dataset.field2id_token[run.dataset.uid_field]
    out: dict[str, list[Any]] = {"users": [str(tokens[u]) for u in pu.user_ids]}
    for name in PER_USER_METRICS:
        out[name] = [round(float(v), 6) for v in pu.values[name]]
    return out, beyond.metrics(run, pu.top_items[:, : beyond.K])


def per_user_test_metrics(run: CellRun) -> dict[str, list[Any]]:
    """Per-user test metrics of a finished run, keyed by external user id."""
    return per_user_and_beyond(run)[0]


def plugin_metrics(entry: ModelEntry, run: CellRun) -> dict[str, dict[str, float]]:
    """The plugin's own extra metric groups of a finished run (``Plugin.extra_metrics``), if it has any."""
    hook = entry.plugin.extra_metrics if entry.plugin is not None else None
    return {str(g): {str(k): float(v) for k, v in vals.items()} for g, vals in (hook(run) or {}).items()} if hook else {}


def final_settings(config: Any) -> dict[str, Any]:
    """RecBole's final settings as JSON, without the paths of this machine (``data_path``, …: see
    :mod:`m6rec_bench.results.portable`; they are volatile, so the cell id is unaffected)."""
    out: dict[str, Any] = {}
    for key, value in config.final_config_dict.items():
        try:
            json.dumps(value)
            out[key] = value
        except TypeError:
            out[key] = str(value)
    return portable_settings(out)


__all__ = ["PER_USER_METRICS", "Built", "CellRun", "EpochCallback", "build", "final_settings", "metric_means",
           "model_size", "per_user_and_beyond", "per_user_test_metrics", "plugin_metrics", "train_and_evaluate"]
