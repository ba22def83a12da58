"""Run one cell — (dataset, protocol, model, config, seed) — through RecBole's own API.

The sequence is RecBole's ``run_recbole`` step for step (Config → init_seed → create_dataset →
data_preparation → init_seed → model → trainer.fit → trainer.evaluate), so a baseline run here gives
the same numbers as raw RecBole; plugins go through the very same trainer and evaluator.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from m6rec_bench import compat, config_keys
from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.engine import environment, fast_eval, fast_train, threads
from m6rec_bench.errors import M6BenchError, UsageError
from m6rec_bench.models import registry
from m6rec_bench.models.registry import ModelEntry
from m6rec_bench.protocols import Protocol, get_protocol
from m6rec_bench.protocols.cold_item import TRAIN_NEGATIVES, exclude_held_out_negatives
from m6rec_bench.results.portable import portable_settings
from m6rec_bench.results.record import SCHEMA_VERSION, Record, RunConditions, TuningSummary
from m6rec_bench.results.store import RecordStore

if TYPE_CHECKING:
    from m6rec_bench.engine.checkpoint import CheckpointPlan

EpochCallback = Callable[[int, float], None]

#: RecBole settings that locate files or tune logging; they do not change results, so they stay
#: out of the cell hash.
_VOLATILE = {"data_path", "checkpoint_dir", "show_progress", "benchmark_filename"}

#: CellSpec fields that make a cell a post-training variant of its plain twin (m6rec_bench.engine.twin).
POST_TRAINING = ("compress", "rerank")


class CellSpec(BaseModel):
    """One cell of a suite. ``overrides`` are RecBole settings or plugin config fields, allow-listed per
    model by :mod:`m6rec_bench.config_keys` (checked in ``validate_spec`` and ``build_config_dict``)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    model: str
    protocol: str = "default"
    seed: int = 2020
    epochs: int | None = Field(None, description="max training epochs (RecBole default 300, early stopping)")
    device: str = "cpu"
    overrides: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(None, description="leaderboard row name (default: the model name)")
    compress: str | None = Field(None, description="post-training compression of the trained model: int8 or prune:<ratio>")
    rerank: str | None = Field(None, description="re-ranking of the trained model's top-50 into its top-10: linucb or mmr")
    tuning: TuningSummary | None = Field(None, description="how --tune-budget chose the overrides (not part of the cell's identity)")

    @property
    def row(self) -> str:
        """The leaderboard row: the label (or model), plus ``[int8]``, ``[linucb]`` etc. for a post-training cell."""
        base = self.label or self.model
        variant = self.compress or self.rerank
        return f"{base} [{variant}]" if variant else base

    @property
    def post_training(self) -> bool:
        """A compressed or re-ranked cell: it loads its twin's trained artifact instead of training."""
        return any(getattr(self, name) is not None for name in POST_TRAINING)


def check_device(device: str) -> None:
    """Refuse ``cuda`` without a GPU, and unknown devices, with a clear message."""
    import torch

    if device not in ("cpu", "cuda"):
        raise UsageError(f"device '{device}' is not supported; use --device cpu or --device cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device cuda was asked for but torch {torch.__version__} sees no CUDA GPU; use --device cpu"
        )


def _plugin_settings(entry: ModelEntry, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split overrides into (validated plugin config, remaining RecBole settings); UsageError when bad.

    Every override passes :func:`m6rec_bench.config_keys.check_overrides` (the allow-list: no file
    keys, no unknown keys, no wrong types) — here, so ``validate_spec`` and ``build_config_dict``
    (hence ``plan``, ``run_cell``, ``reproduce``, tuning trials and record loading) all hold it.
    """
    config_keys.check_overrides(entry, overrides)
    if entry.plugin is None:
        return {}, dict(overrides)
    fields = entry.plugin.config_cls.model_fields
    mine = {k: v for k, v in overrides.items() if k in fields}
    rest = {k: v for k, v in overrides.items() if k not in fields}
    try:
        return entry.plugin.recbole_settings(mine), rest
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors())
        raise UsageError(f"bad config for plugin '{entry.name}': {msgs} — fix its overrides") from None
    except ValueError as exc:
        raise UsageError(f"bad config for plugin '{entry.name}': {exc}") from None


def check_protocol(entry: ModelEntry, protocol: Protocol) -> None:
    """Refuse a model the protocol cannot evaluate, or a plugin restricted to other protocols."""
    protocol.check_model(entry.name, entry.model_type)
    allowed = entry.plugin.protocols if entry.plugin is not None else None
    if allowed and protocol.name not in allowed:
        raise UsageError(f"plugin '{entry.name}' runs only under {' or '.join(f'--protocol {p}' for p in allowed)}, "
                         f"not '{protocol.name}' — run it there, or drop it from --models")


def validate_spec(spec: CellSpec) -> ModelEntry:
    """Check a cell's model, protocol, device and plugin config (UsageError) without running it."""
    entry = registry.get(spec.model)
    check_protocol(entry, get_protocol(spec.protocol))
    check_device(spec.device)
    _plugin_settings(entry, spec.overrides)
    if spec.compress is not None:
        from m6rec_bench import compress

        compress.parse(spec.compress)
    if spec.rerank is not None:
        from m6rec_bench import rerank

        rerank.parse(spec.rerank)
        if spec.compress is not None:
            raise UsageError(f"cell {spec.row}: a cell is either compressed or re-ranked, not both — drop one")
    return entry


def build_config_dict(
    spec: CellSpec, entry: ModelEntry, protocol: Protocol, ds: PreparedDataset, extra: dict[str, Any]
) -> dict[str, Any]:
    """The RecBole ``config_dict`` of a cell: protocol, then model, then the user's overrides."""
    plugin_cfg, rest = _plugin_settings(entry, spec.overrides)
    config: dict[str, Any] = {
        **protocol.settings(),
        **extra,
        **entry.recbole_config,
        "seed": spec.seed,
        "use_gpu": spec.device == "cuda",
        "m6_item_text_fields": list(ds.features.item_text),
        "m6_has_kg": ds.features.kg,
        "m6_dataset_checksum": ds.checksum,
        **plugin_cfg,
        **rest,
    }
    if spec.epochs is not None:
        config["epochs"] = spec.epochs
    return config


def code_of(entry: ModelEntry) -> str:
    """The code identity of a cell of ``entry``: the core package's, plus its plugin package's
    (:func:`m6rec_bench.engine.environment.code_identity`; a baseline's ignores plugin edits)."""
    folders = [environment.package_folder(__name__)]
    if entry.plugin is not None:
        folders.append(environment.package_folder(entry.plugin.model_cls.__module__))
    return environment.code_identity(*folders)


def cell_id(spec: CellSpec, entry: ModelEntry, ds: PreparedDataset, config: dict[str, Any]) -> str:
    """Identity of a cell: resolved settings + dataset checksum + versions of the code that matters,
    down to the commit and uncommitted changes (:func:`code_of`): resume never reuses a record of
    other code."""
    versions = {k: v for k, v in environment.versions().items() if k in ("m6rec-bench", "recbole", "torch")}
    if entry.kind == "plugin":
        versions[entry.package] = entry.version
    payload = {
        "model": entry.name,
        "protocol": spec.protocol,
        "dataset_checksum": ds.checksum,
        "device": spec.device,
        "config": {k: v for k, v in config.items() if k not in _VOLATILE},
        "versions": versions,
        "code": code_of(entry),
        "record_schema": SCHEMA_VERSION,
    }
    if spec.compress is not None:  # only then: every uncompressed cell keeps the id it always had
        from m6rec_bench import compress

        payload["compress"] = compress.parse(spec.compress).name
    if spec.rerank is not None:  # likewise: only re-ranked cells carry the method
        from m6rec_bench import rerank

        payload["rerank"] = rerank.parse(spec.rerank).name
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _jsonable(config: Any) -> dict[str, Any]:
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


#: Per-user test metrics kept in every record (for paired significance tests between rows).
PER_USER_METRICS = ("ndcg@10", "recall@10")


def per_user_and_beyond(run: CellRun) -> tuple[dict[str, list[Any]], dict[str, float]]:
    """Per-user test metrics of a finished run (keyed by external user id) and, from the same
    evaluator pass's top-10 lists, its beyond-accuracy group (:mod:`m6rec_bench.beyond`).

    They come from the pass that gave the run's ``test`` means (``run.test_pass``,
    :mod:`m6rec_bench.engine.fast_eval`), at the protocol's cut-offs, so a per-user mean is the
    tabled mean: ``torch.topk`` breaks ties differently for another ``k``, so a second pass at other
    cut-offs could rank tied items otherwise (issue #16: Pop 0.1005 vs 0.1033)."""
    from m6rec_bench import beyond
    from m6rec_bench.evaluation import evaluate_groups

    test_pass = getattr(run, "test_pass", None)
    if test_pass is not None:
        pu = test_pass.per_user
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


def _metrics(result: Any) -> dict[str, float]:
    return {str(k): float(v) for k, v in (result or {}).items()}


class CellRun:
    """Everything a finished RecBole run yields, kept for records and artifacts."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


class Built:
    """A cell's RecBole objects before training: config, dataset, the three loaders and the model,
    and ``setup_time`` (seconds to construct the model: pretraining, encoders, graphs)."""

    def __init__(self, config: Any, dataset: Any, train_data: Any, valid_data: Any, test_data: Any, model: Any,
                 setup_time: float = 0.0) -> None:
        self.config, self.dataset, self.model = config, dataset, model
        self.train_data, self.valid_data, self.test_data = train_data, valid_data, test_data
        self.setup_time = setup_time


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
    model = model_cls(config, train_data._dataset).to(config["device"])
    return Built(config, dataset, train_data, valid_data, test_data, model, time.perf_counter() - t0)


def model_size(model: Any) -> dict[str, int]:
    """Parameter counts of a model: all parameters (trainable and frozen), the trainable ones, and the
    values of its buffers (precomputed KG / text vectors, graphs: held, not learned)."""
    params = list(model.parameters())
    return {"n_params": sum(p.numel() for p in params),
            "n_trainable_params": sum(p.numel() for p in params if p.requires_grad),
            "n_buffers": sum(b.numel() for b in model.buffers())}


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

    The test pass goes through :mod:`m6rec_bench.engine.fast_eval` (``M6BENCH_ENGINE``: ``recbole``
    by default, RecBole's own batches; ``fast`` for large batches, validation included, and training
    batches replayed by :mod:`m6rec_bench.engine.fast_train`) and is kept
    as ``run.test_pass`` (its means are ``run.test``, its per-user values the record's).

    ``on_epoch(epoch, valid_score)`` is called after every validation; an exception it raises (e.g.
    Optuna's ``TrialPruned``) stops training and propagates. ``evaluate_test=False`` skips the test
    evaluation (tuning selects on validation only) and leaves ``test`` empty. With ``checkpoints``
    the full training state is saved after every epoch and a run interrupted mid-training resumes
    from its last finished epoch (:mod:`m6rec_bench.engine.checkpoint`).
    """
    from recbole.utils import get_trainer

    with tempfile.TemporaryDirectory(prefix="m6bench-ckpt-") as ckpt:
        b = build(entry, ds, config_dict, ckpt)
        config, model = b.config, b.model
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        engine = fast_eval.engine_from_env()
        if engine == "fast":  # RecBole's own batches, replayed from tensors (m6rec_bench.engine.fast_train)
            b.train_data = fast_train.wrap(b.train_data)
        fast_eval.install(trainer, engine)
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
        test_pass = fast_eval.evaluate_pass(trainer, b.test_data, engine=engine) \
            if evaluate_test and fast_eval.supports(trainer, b.test_data) else None
        test_result = test_pass.result if test_pass is not None else \
            trainer.evaluate(b.test_data, load_best_model=False, show_progress=False) if evaluate_test else {}
        eval_time = time.perf_counter() - t1
    return CellRun(
        config=config, dataset=b.dataset, model=model, trainer=trainer, test_data=b.test_data,
        train_data=b.train_data, valid_data=b.valid_data, valid=_metrics(valid_result), test=_metrics(test_result), test_pass=test_pass, best_epoch=best.get("epoch"),
        epochs_run=(max(epochs_seen) + 1) if epochs_seen else None, train_time=train_time, eval_time=eval_time,
        setup_time=b.setup_time, **model_size(model),
    )


def _reusable(store: RecordStore, cid: str) -> Record | None:
    done = store.find(cid)
    if done is not None and done.status in ("ok", "skipped"):
        done._reused = True
        return done
    return None


def finished_record(spec: CellSpec, store: RecordStore, prepared: PreparedDataset | None = None) -> Record | None:
    """The ``ok`` or ``skipped`` record ``run_cell(spec, resume=True)`` would reuse from ``store``, or None.

    Lets a scheduler skip a finished cell without sending it to a worker; a cell whose dataset
    lacks what its plugin needs is left to :func:`run_cell` (it writes a fresh ``skipped`` record).
    """
    from m6rec_bench import datasets

    entry = registry.get(spec.model)
    protocol = get_protocol(spec.protocol)
    ds = prepared or datasets.resolve(spec.dataset)
    if set(entry.needs) - ds.features.provides():
        return None
    _, extra = protocol.prepare(ds, spec.seed)
    return _reusable(store, cell_id(spec, entry, ds, build_config_dict(spec, entry, protocol, ds, extra)))


def run_cell(
    spec: CellSpec,
    *,
    store: RecordStore | None = None,
    resume: bool = True,
    on_epoch: EpochCallback | None = None,
    command: str | None = None,
    prepared: PreparedDataset | None = None,
    save_artifact: bool = True,
) -> Record:
    """Run one cell and return (and store) its record.

    Bad input (unknown model, protocol, device, config) raises :class:`UsageError` before anything
    runs. A model that fails while running becomes a ``failed`` record with the reason; a dataset
    lacking what a plugin needs gives a ``skipped`` record. With ``resume``, a cell whose ``ok`` or
    ``skipped`` record exists in ``store`` is not run again. With ``save_artifact`` (and a store) the
    trained model is saved beside its record (:mod:`m6rec_bench.artifacts`).
    """
    from m6rec_bench import beyond, datasets

    entry = registry.get(spec.model)
    protocol = get_protocol(spec.protocol)
    check_protocol(entry, protocol)
    check_device(spec.device)
    ds = prepared or datasets.resolve(spec.dataset)
    base = _record_base(spec, entry, protocol, ds, command)
    missing = set(entry.needs) - ds.features.provides()
    if missing:
        config = {"overrides": spec.overrides}
        cid = cell_id(spec, entry, ds, config)
        rec = Record(cell_id=cid, status="skipped", config=config, **base,
                     reason=f"dataset '{ds.name}' has no {', '.join(sorted(missing))} (plugin needs {', '.join(sorted(entry.needs))})")
        if store is not None:
            store.put(rec)
        return rec

    split_ds, extra = protocol.prepare(ds, spec.seed)
    config_dict = build_config_dict(spec, entry, protocol, ds, extra)
    cid = cell_id(spec, entry, ds, config_dict)
    if resume and store is not None:
        done = _reusable(store, cid)
        if done is not None:
            return done
    if spec.compress is not None:
        from m6rec_bench.engine.compressed import run_compressed

        return run_compressed(spec, protocol, ds, config_dict, cid, base, store=store, command=command)
    if spec.rerank is not None:
        from m6rec_bench.engine.reranked import run_reranked

        return run_reranked(spec, protocol, ds, config_dict, cid, base, store=store, command=command)

    plan = None
    if store is not None:  # a cell killed mid-training resumes from its last finished epoch
        from m6rec_bench.engine.checkpoint import CheckpointPlan, folder_for

        plan = CheckpointPlan(folder_for(store.root, cid), cid, resume=resume)
    load_start = threads.load()
    try:
        with environment.PeakMemory() as mem:
            run = train_and_evaluate(entry, split_ds, config_dict, on_epoch=on_epoch, checkpoints=plan)
            per_user, beyond_group = per_user_and_beyond(run)
            extra_metrics = {**protocol.extra_metrics(run), beyond.GROUP: beyond_group, **plugin_metrics(entry, run)}
        rec = Record(
            cell_id=cid, status="ok", config=config_dict, resolved_config=_jsonable(run.config), valid=run.valid,
            test=run.test, extra_metrics=extra_metrics, per_user=per_user, best_epoch=run.best_epoch, epochs_run=run.epochs_run,
            n_params=run.n_params, n_trainable_params=run.n_trainable_params, n_buffers=run.n_buffers,
            setup_time_s=round(run.setup_time, 3), train_time_s=round(run.train_time, 3), eval_time_s=round(run.eval_time, 3),
            peak_mem_mb=round(mem.peak_mb, 1), conditions=run_conditions(load_start), **base,
        )
    except M6BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - failure isolation: one broken model must not stop a suite
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        rec = Record(cell_id=cid, status="failed", reason=last, config=config_dict, conditions=run_conditions(load_start),
                     **base)
    if store is not None:
        if rec.status == "ok" and save_artifact:
            _save_artifact(run, rec, store)
        store.put(rec)
        if plan is not None:
            plan.discard()
    return rec


def _record_base(spec: CellSpec, entry: ModelEntry, protocol: Protocol, ds: PreparedDataset,
                 command: str | None) -> dict[str, Any]:
    """The fields every record of a cell carries, whatever its status."""
    return {
        "dataset": ds.name, "dataset_checksum": ds.checksum, "protocol": protocol.name, "model": entry.name,
        "label": row_label(spec, entry), "spec": spec.model_dump(mode="json", exclude={"tuning"}),
        "model_kind": entry.kind, "family": entry.family, "seed": spec.seed,
        "versions": {**environment.versions(), **({entry.package: entry.version} if entry.kind == "plugin" else {})},
        "hardware": environment.hardware(), "command": command if command is not None else environment.command_line(),
        "tuning": spec.tuning, "code": code_of(entry),
    }


def failed_record(spec: CellSpec, reason: str, *, store: RecordStore | None = None, prepared: PreparedDataset | None = None,
                  command: str | None = None) -> Record:
    """The ``failed`` record of a cell whose run ended outside :func:`run_cell` — its worker process
    died (``os._exit``, a segfault in native code, the OOM killer), so no exception came back — with
    the same cell id as the run would have had. Stored when ``store`` is given; a ``failed`` record
    is never reused, so a rerun retries the cell."""
    from m6rec_bench import datasets

    entry = registry.get(spec.model)
    protocol = get_protocol(spec.protocol)
    ds = prepared or datasets.resolve(spec.dataset)
    _, extra = protocol.prepare(ds, spec.seed)
    config_dict = build_config_dict(spec, entry, protocol, ds, extra)
    rec = Record(cell_id=cell_id(spec, entry, ds, config_dict), status="failed", reason=reason, config=config_dict,
                 **_record_base(spec, entry, protocol, ds, command))
    if store is not None:
        store.put(rec)
    return rec


def run_conditions(load_start: float | None) -> RunConditions:
    """The machine load (at the cell's start and now) and the thread policy the cell ran under."""
    return RunConditions(load_start=load_start, load_end=threads.load(), **threads.conditions())


def row_label(spec: CellSpec, entry: ModelEntry) -> str:
    """A cell's leaderboard row name with the model's canonical spelling (``bpr`` → ``BPR``)."""
    return CellSpec(**{**spec.model_dump(), "label": spec.label or entry.name}).row


def _save_artifact(run: CellRun, rec: Record, store: RecordStore) -> None:
    """Save the trained model beside its record (before the record: a record's artifact is complete).

    A model whose state cannot be stored keeps its record, with no artifact and the reason in its log.
    """
    from m6rec_bench import artifacts

    folder = artifacts.folder_for(store.path_for(rec))
    try:
        artifacts.save(run, rec, folder)
    except (TypeError, ValueError, RuntimeError, OSError) as exc:
        import logging

        logging.getLogger(__name__).warning("no artifact for %s seed %s: %s", rec.label, rec.seed, exc)
        return
    rec.artifact = folder.name
