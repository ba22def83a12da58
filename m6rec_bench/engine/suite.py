"""A suite — datasets × protocols × models × seeds — planned into cells and run with resume.

Finished cells are never recomputed: a cell whose ``ok`` or ``skipped`` record exists for the same
config hash is reused (``--no-resume`` forces a rerun). A failing model becomes a ``failed`` record
and the suite goes on; the caller decides the exit code from :attr:`SuiteResult.failed`.
Cells run in ``--jobs`` worker processes (one with ``--jobs 1``: a model that kills its process is
a ``failed`` record too) or on a Dask cluster (:mod:`m6rec_bench.engine.executors`), with the same
records either way; ``M6BENCH_IN_PROCESS=1`` runs ``--jobs 1`` cells in this process.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.engine.cell import CellSpec, EpochCallback, failed_record, finished_record, run_cell, validate_spec
from m6rec_bench.engine.estimate import longest_first
from m6rec_bench.engine.executors import Pool, open_pool, task_slot
from m6rec_bench.engine.threads import default_jobs
from m6rec_bench.engine.workers import WorkerDied, report
from m6rec_bench.defaults import DEFAULT_SEED
from m6rec_bench.errors import DataError, M6BenchError, UsageError
from m6rec_bench.listeners import SuiteListener
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol
from m6rec_bench.resolve import post_training_method
from m6rec_bench.results.record import Record
from m6rec_bench.results.store import RecordStore
from m6rec_bench.untrusted import UntrustedInputError, compose_yaml, read_text

#: numpy's and torch's seeds are unsigned 32-bit: RecBole's ``init_seed`` fails on anything else.
MAX_SEED = 2**32 - 1


def check_seed(seed: int) -> int:
    """``seed`` if numpy, torch and RecBole accept it; ValueError (a readable message) otherwise."""
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed {seed} is out of range: seeds are whole numbers from 0 to {MAX_SEED}")
    return seed


class SuiteConfig(BaseModel):
    """Everything ``m6bench run`` does, as one object; a ``--config`` YAML file holds these keys."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[str] = Field(default_factory=lambda: ["ml-100k"])
    protocols: list[str] = Field(default_factory=lambda: ["default"])
    models: list[str] | None = Field(None, description="default: the RecBole baselines + default plugins")
    seeds: int | list[int] = Field(1, description="a count (2020, 2021, …) or explicit seeds")
    epochs: int | None = Field(None, ge=1)
    device: str = "cpu"
    ablation: bool = False
    compress: list[str] = Field(
        default_factory=list, description="also evaluate each plugin's trained model compressed: int8, prune:<ratio>"
    )
    rerank: list[str] = Field(
        default_factory=list, description="also evaluate every model's trained top-50 re-ranked into its top-10: linucb, mmr"
    )
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per model name: RecBole settings or plugin config fields"
    )
    tune_budget: int | None = Field(None, ge=1, description="tune every model with this many Optuna trials first")
    tune_timeout: float | None = Field(None, gt=0, description="and at most this many seconds of tuning per model")
    tune_epochs: int | None = Field(None, ge=1, description="max epochs of a tuning trial (default: epochs)")
    tune_storage: str | None = Field(
        None, description="Optuna storage of the studies: a database URL or journal file (default: under runs_dir)"
    )
    runs_dir: Path = Path("runs")
    leaderboard_dir: Path = Path("leaderboards")
    resume: bool = True
    jobs: int | None = Field(None, ge=1, description="cells run in parallel worker processes on this machine (local "
                             "executor); default: one per core, at most one per cell (engine.threads.default_jobs)")
    executor: Literal["local", "dask"] = Field("local", description="local: this machine; dask: a Dask cluster")
    scheduler: str | None = Field(None, description="the Dask scheduler address (tcp://HOST:PORT) for executor dask")

    @field_validator("compress")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        return [post_training_method("compress", m).name for m in v]

    @field_validator("rerank")
    @classmethod
    def _rerankers(cls, v: list[str]) -> list[str]:
        return [post_training_method("rerank", m).name for m in v]

    @field_validator("seeds")
    @classmethod
    def _positive(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and v < 1:
            raise ValueError("seeds must be ≥ 1")
        if isinstance(v, list) and not v:
            raise ValueError("seeds must not be empty")
        if isinstance(v, list):
            for seed in v:
                check_seed(seed)
        return v

    @model_validator(mode="after")
    def _executor_needs(self) -> SuiteConfig:
        if self.executor == "dask" and not self.scheduler:
            raise ValueError("--executor dask needs --scheduler tcp://HOST:PORT (the address `dask scheduler` prints)")
        if self.executor == "local" and self.scheduler:
            raise ValueError(f"--scheduler {self.scheduler} is only used with --executor dask")
        return self

    def seed_list(self) -> list[int]:
        return list(range(DEFAULT_SEED, DEFAULT_SEED + self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @classmethod
    def from_yaml(cls, path: Path, **cli: Any) -> SuiteConfig:
        """Load a suite file; options given on the command line (not None) win over the file."""
        try:
            data = compose_yaml(read_text(path, "suite config"))[0]
        except OSError as exc:
            raise UsageError(f"cannot read suite config {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise UsageError(f"suite config {path}{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
        except UntrustedInputError as exc:
            raise UsageError(f"suite config {path} cannot be a suite: {exc} — fix the file") from None
        if data is None:
            # an empty file would silently run the whole default suite: almost surely the wrong file
            raise UsageError(f"suite config {path} is empty — write the settings to run (e.g. 'models: [BPR]'), "
                             "or drop --config to run the default suite")
        if not isinstance(data, dict):
            raise UsageError(f"suite config {path} must be a mapping of settings, got {type(data).__name__}")
        if cli.get("models") is not None and isinstance(data.get("overrides"), dict):
            # --models narrows the file's suite: its overrides of the models left out no longer apply
            # (a name no registry knows stays, so plan() still reports the typo)
            chosen = {registry.get(n).name for n in cli["models"]}
            data["overrides"] = {m: o for m, o in data["overrides"].items() if _canonical(m) in chosen | {None}}
        data.update({k: v for k, v in cli.items() if v is not None})
        return cls.validated(**data)

    @classmethod
    def validated(cls, **data: Any) -> SuiteConfig:
        """Build a config, turning pydantic errors into one readable UsageError."""
        try:
            return cls(**data)
        except ValidationError as exc:
            msgs = "; ".join(f"{'.'.join(map(str, e['loc'])) + ': ' if e['loc'] else ''}{e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
            raise UsageError(f"bad suite settings: {msgs}") from None


def _canonical(name: Any) -> str | None:
    """A model's registered spelling, or None for a name no registry knows."""
    try:
        return registry.get(str(name)).name
    except UsageError:
        return None


def plan(cfg: SuiteConfig) -> list[CellSpec]:
    """Expand a suite into cells (validating every model name first)."""
    # without --models each protocol runs its own default suite (sequential models only where they can run)
    suites = {p: [registry.get(n) for n in (cfg.models or registry.default_suite(p))] for p in cfg.protocols}
    unknown = set(cfg.overrides) - {e.name for entries in suites.values() for e in entries}
    if unknown:
        raise UsageError(f"overrides given for models not in the suite: {sorted(unknown)}")
    cells: list[CellSpec] = []
    for dataset in cfg.datasets:
        for protocol in cfg.protocols:
            for entry in suites[protocol]:
                variants: list[tuple[str | None, dict[str, Any]]] = [(None, {})]
                if cfg.ablation and entry.plugin is not None:
                    variants += [(f"{entry.name} {label}", o) for label, o in entry.plugin.ablations.items()]
                # compressed rows: a plugin's own trained model, compressed after training (no retraining)
                methods = [None, *cfg.compress] if entry.plugin is not None else [None]
                for label, extra in variants:
                    for method in methods if label is None else [None]:
                        for seed in cfg.seed_list():
                            cells.append(
                                CellSpec(dataset=dataset, protocol=protocol, model=entry.name, seed=seed,
                                         epochs=cfg.epochs, device=cfg.device, label=label, compress=method,
                                         overrides={**cfg.overrides.get(entry.name, {}), **extra})
                            )
            # re-ranked rows: every model's own trained model, its top-50 re-ranked after training (no retraining)
            for entry in suites[protocol]:
                for method in cfg.rerank:
                    for seed in cfg.seed_list():
                        cells.append(CellSpec(dataset=dataset, protocol=protocol, model=entry.name, seed=seed,
                                              epochs=cfg.epochs, device=cfg.device, rerank=method,
                                              overrides=dict(cfg.overrides.get(entry.name, {}))))
    for spec in cells:  # bad input stops the suite before anything runs, not halfway through
        validate_spec(spec)
    return cells


@dataclass
class SuiteResult:
    """Records of a suite run, in plan order."""

    records: list[Record] = field(default_factory=list)
    reused: int = 0
    tuning: list[Any] = field(default_factory=list)  # m6rec_bench.tuning.TuningResult per tuned model

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.status == "failed"]


#: What runs between planning and the cells, in the suite's pool (the pipeline's tuning step):
#: ``before_cells(cells, prepared datasets, pool or None)`` → (cells to run, results to keep on ``SuiteResult.tuning``).
BeforeCells = Callable[[list[CellSpec], dict[str, PreparedDataset], Pool | None], tuple[list[CellSpec], list[Any]]]


def run_suite(cfg: SuiteConfig, listener: SuiteListener | None = None, command: str | None = None, *,
              before_cells: BeforeCells | None = None) -> SuiteResult:
    """Run every cell of ``cfg`` (resuming finished ones) and return their records.

    The engine never tunes: ``cfg.tune_*`` is the business of :func:`m6rec_bench.pipeline.pipeline`,
    which passes its tuning step as ``before_cells`` (run in the same worker pool as the cells).
    """
    if cfg.tune_budget and before_cells is None:  # never silently untuned
        raise UsageError("this suite has tune_budget set: run it with m6rec_bench.pipeline.pipeline(cfg), "
                         "which tunes before the cells run")
    listener = listener or SuiteListener()
    cells = plan(cfg)
    with output_folders(cfg):
        return _run_planned(cfg, cells, listener, command, before_cells)


@contextlib.contextmanager
def output_folders(cfg: SuiteConfig) -> Iterator[None]:
    """Create ``--runs-dir`` and ``--out`` before any cell runs, and take back what stayed empty on failure.

    Made up front, a folder that cannot be used fails now, not when a result has to be written an
    hour later. If the suite then fails (bad dataset, unreachable cluster, Ctrl-C before the first
    cell finished) the folders this call created are removed again where they are still empty, so
    a failed command leaves no empty ``runs/`` or ``leaderboards/`` behind. Only empty folders that
    did not exist before are removed (``rmdir``), never a file.
    """
    created: list[Path] = []
    try:
        for option, folder in (("--runs-dir", cfg.runs_dir), ("--out", cfg.leaderboard_dir)):
            missing = [p for p in (folder, *folder.parents) if not p.exists()]
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                why = "it is a file" if folder.is_file() else exc.strerror
                raise UsageError(f"{option} {folder} cannot be used ({why}) — give a writable folder") from None
            created += [p for p in reversed(missing) if p not in created]  # outermost first
        yield
    except BaseException:
        _remove_empty(created)
        raise


def _remove_empty(created: list[Path]) -> None:
    """Remove the folders in ``created`` (and empty folders inside them) that hold no file."""
    for top in created:
        if not top.is_dir():
            continue
        for inner in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                inner.rmdir()
    for folder in reversed(created):  # innermost first: a parent empties once its child is gone
        with contextlib.suppress(OSError):
            folder.rmdir()


def _run_planned(cfg: SuiteConfig, cells: list[CellSpec], listener: SuiteListener, command: str | None,
                 before_cells: BeforeCells | None = None) -> SuiteResult:
    from m6rec_bench import datasets

    store = RecordStore(cfg.runs_dir)
    store.sweep()  # temporary files of a run killed mid-write
    prepared = {name: datasets.resolve(name) for name in cfg.datasets}
    for dataset, protocol in dict.fromkeys((c.dataset, c.protocol) for c in cells):
        get_protocol(protocol).check_dataset(prepared[dataset])  # before any cell runs, not as NaN rows
    result = SuiteResult()
    # contain=True: even --jobs 1 runs its cells in a worker process, so a model that kills its process
    # (os._exit, a segfault, the OOM killer) is one failed cell, not the end of the suite
    jobs = cfg.jobs or default_jobs(len(cells))
    with open_pool(cfg.executor, jobs=jobs, scheduler=cfg.scheduler, contain=True) as pool:
        if before_cells is not None:
            cells, result.tuning = before_cells(cells, prepared, pool)
        # compressed and re-ranked cells go last: each reuses its plain twin's record and artifact (trained once)
        cells = [c for c in cells if not c.post_training] + [c for c in cells if c.post_training]
        if pool is not None:
            records = []
            for phase in ([c for c in cells if not c.post_training], [c for c in cells if c.post_training]):
                if phase:
                    records += _run_parallel(cfg, pool, phase, prepared, store, listener, command)
        else:  # M6BENCH_IN_PROCESS=1 with --jobs 1
            records = []
            for i, spec in enumerate(cells):
                listener.cell_started(i, len(cells), spec)
                record = run_cell(spec, store=store, resume=cfg.resume, on_epoch=_bind(listener.epoch, spec),
                                  command=command, prepared=prepared[spec.dataset])
                records.append(record)
                listener.cell_finished(i, len(cells), spec, record, record.reused)
    result.records = records
    result.reused = sum(r.reused for r in records)
    return result


def _cell_job(spec: CellSpec, runs_dir: Path, resume: bool, command: str | None, prepared: Any,
              threads: int | None) -> tuple[str, bool]:
    """One cell in a worker; returns the record as JSON (records cross processes and machines as data).

    The worker writes the record into ``runs_dir`` when it sees that folder (a shared filesystem);
    otherwise it only returns it and the client stores it. Epochs are reported to a local parent
    (:func:`~m6rec_bench.engine.workers.report`; nothing on Dask).
    """
    import socket

    if not Path(prepared.folder).is_dir():
        raise DataError(f"dataset folder {prepared.folder} does not exist on worker {socket.gethostname()} — the "
                        "dataset cache (M6BENCH_HOME) must be on a filesystem every worker shares")
    store = RecordStore(runs_dir) if Path(runs_dir).is_dir() else None
    with task_slot(threads):
        record = run_cell(spec, store=store, resume=resume, command=command, prepared=prepared, on_epoch=_report_epoch)
    return record.model_dump_json(), record.reused


def _report_epoch(epoch: int, score: float) -> None:
    report(("epoch", epoch, score))


#: Seconds between two looks at the workers' progress events while waiting for cells.
_POLL_S = 0.2


def _run_parallel(cfg: SuiteConfig, pool: Pool, cells: list[CellSpec], prepared: dict[str, Any], store: RecordStore,
                  listener: SuiteListener, command: str | None) -> list[Record]:
    """Run cells on ``pool`` (local worker processes or a Dask cluster), one code path for both.

    Finished cells are looked up here, before anything is sent, so resume is the same whether or
    not the workers share the runs directory. Local workers get ``cores // jobs`` torch threads so
    the jobs share the machine instead of oversubscribing it; Dask workers their own thread count.
    Records come back in plan order; a cell that fails is a ``failed`` record exactly as in the
    sequential path, and a record a worker could not write is written here. A cell whose local
    worker process died (:class:`~m6rec_bench.engine.workers.WorkerDied`) is a ``failed`` record
    with how it died; the cells beside it and after it go on. Local workers say when a cell starts
    and report its epochs, so the listener hears them as in the sequential path.
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    runs_dir = cfg.runs_dir.resolve()  # workers may run elsewhere: absolute paths only
    out: list[Record | None] = [None] * len(cells)
    futures = {}
    for i in longest_first(cells) if pool.parallel else range(len(cells)):  # records still come back in plan order
        spec = cells[i]
        done = finished_record(spec, store, prepared[spec.dataset]) if cfg.resume else None
        if done is not None or pool.events is None:  # Dask says nothing of when a cell starts: now, then
            listener.cell_started(i, len(cells), spec)
        if done is not None:
            out[i] = done
            listener.cell_finished(i, len(cells), spec, done, True)
            continue
        job = pool.executor.submit(_cell_job, spec, runs_dir, cfg.resume, command, prepared[spec.dataset], pool.threads)
        futures[job] = i
    pending = set(futures)
    try:
        while pending:
            finished, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            _relay_events(pool, futures, cells, listener)  # a task's events all arrive before its result
            for future in sorted(finished, key=futures.__getitem__):
                i = futures[future]
                out[i] = record = _collect(future, cells[i], pool, store, prepared, command)
                listener.cell_finished(i, len(cells), cells[i], record, record.reused)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return [r for r in out if r is not None]


def _collect(future: Any, spec: CellSpec, pool: Pool, store: RecordStore, prepared: dict[str, Any],
             command: str | None) -> Record:
    """The record of a finished job: the worker's, or a ``failed`` one when its worker process died."""
    try:
        payload, reused = future.result()
    except WorkerDied as exc:  # os._exit, a segfault, the OOM killer: the process, not an exception, ended the cell
        return failed_record(spec, str(exc), store=store, prepared=prepared[spec.dataset], command=command)
    except M6BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - the cluster lost it: not a model failure
        raise M6BenchError(
            f"{spec.row} seed {spec.seed} ({spec.dataset}/{spec.protocol}) was lost on {pool.where}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} — finished cells are kept; "
            "run the same command again to resume"
        ) from None
    record = Record.model_validate_json(payload)
    record._reused = reused
    if not store.path_for(record).is_file():  # a worker without the shared runs directory
        store.put(record)
    return record


def _relay_events(pool: Pool, futures: dict[Any, int], cells: list[CellSpec], listener: SuiteListener) -> None:
    """Pass the local workers' events — a cell started, an epoch ended — to the listener, in this thread."""
    if pool.events is None:
        return
    while True:
        try:
            future, event = pool.events.get_nowait()
        except queue.Empty:
            return
        i = futures.get(future)
        if i is None:  # a tuning study's, or a cancelled cell's
            continue
        if event[0] == "started":
            listener.cell_started(i, len(cells), cells[i])
        elif event[0] == "epoch":
            listener.epoch(cells[i], event[1], event[2])


def _bind(fn: Callable[[CellSpec, int, float], None], spec: CellSpec) -> EpochCallback:
    return lambda epoch, score: fn(spec, epoch, score)
