"""Optuna tuning of one model: a persistent, resumable, shareable study over its search space.

* **Selection on validation only.** A trial trains through the cell's own path
  (:func:`~m6rec_bench.resolve.resolve`, the checks, config and split of every cell →
  :func:`~m6rec_bench.training.train_and_evaluate` with ``evaluate_test=False``) and returns the
  best validation score of the protocol's ``valid_metric``; the test split is never looked at.
* **The defaults are trial 0.** Every new study enqueues the model's untuned settings
  (:func:`~m6rec_bench.tuning.spaces.default_params`; a default outside the space is refused), and
  that trial is never pruned: the best trial is at least as good as not tuning, on validation.
* **Multi-fidelity, not short trials.** Trials train like the final runs (same ``epochs``, same
  early stopping). Every validation is reported to the trial (step = epoch) and Optuna's
  ``HyperbandPruner`` stops weak trials at its rungs; a stopped trial is recorded ``PRUNED``, not as
  a failure. (The old setting — trials capped at 20 epochs and a median pruner after one trial —
  favoured fast learners.) A time budget cuts the running trial the same way at the next validation.
* **Compute is counted.** Each trial records the epochs it trained and its seconds whatever its end;
  :class:`TuningResult` sums them over the study (``trial_epochs``, ``trial_seconds``), so models
  given the same number of trials can be compared on what they spent.
* **Resume.** The study name is derived from everything that changes what a trial measures
  (dataset checksum, protocol, model, epochs, seed, device, fixed overrides, metric), so running the
  same command again opens the same study and only the trials still missing to reach ``n_trials``
  (``COMPLETE`` + ``PRUNED``) are run; failed and abandoned trials do not count.
* **Sharing.** The default storage is one Optuna journal file under the runs directory, safe for
  several processes on one machine; a database URL (``postgresql://…``) lets workers on many
  machines share a study. Each worker counts the others' running trials, so the total stays at
  ``n_trials`` (up to one extra trial per worker when two start in the same instant).
* **Determinism.** The TPE sampler of trial *n* is seeded from (seed, *n*): a single worker
  proposes the same configurations whether it runs in one go or resumes after an interrupt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import socket
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.errors import M6BenchError, UsageError
from m6rec_bench.defaults import DEFAULT_SEED
from m6rec_bench.listeners import TuningListener
from m6rec_bench.models import registry
from m6rec_bench.resolve import CellSpec, resolve
from m6rec_bench.training import train_and_evaluate
from m6rec_bench.tuning.spaces import SearchSpace, default_params, probe, search_space, suggests_nothing

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    from optuna.trial import FrozenTrial

#: RecBole's default seed: the seed a suite's first cell uses, and the one tuning runs on.
#: The journal file a study lives in when no ``--storage`` is given, relative to the runs directory.
DEFAULT_JOURNAL = Path("tuning") / "optuna.journal"
#: Heartbeat of database storages: a trial silent this long (its worker died) is marked failed.
HEARTBEAT_S, GRACE_S = 60, 180
#: User attribute of the trial that runs the model's defaults (trial 0 of a new study).
DEFAULT_ATTR = "default_config"
#: A running trial with no worker tag older than this is taken as abandoned.
UNTAGGED_STALE_S = 300


# ------------------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class Storage:
    """An opened Optuna storage, with what to show the user about it."""

    backend: Any  # optuna.storages.BaseStorage
    url: str  # journal path or database URL, as optuna-dashboard takes it
    shown: str  # the same, password hidden
    kind: str  # "journal" | "database"

    @property
    def dashboard(self) -> str:
        """The command that opens this storage in optuna-dashboard."""
        return f"optuna-dashboard {shlex.quote(self.url)}"


def default_storage_path(runs_dir: Path | str) -> Path:
    """The default journal file of ``runs_dir``."""
    return Path(runs_dir) / DEFAULT_JOURNAL


def _mask(url: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://user:***@host`` (for messages)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def open_storage(storage: str | None = None, runs_dir: Path | str = "runs") -> Storage:
    """Open a study storage: a journal file path (default under ``runs_dir``) or a database URL.

    Anything with ``://`` is a SQLAlchemy URL (``postgresql://user:pw@host:5432/db``,
    ``mysql://…``, ``sqlite:///file.db``); anything else is the path of a journal file.
    Raises :class:`UsageError` for a URL that cannot be understood or lacks its driver, and
    :class:`M6BenchError` when the database cannot be reached.
    """
    import optuna

    if storage is None or "://" not in storage:
        path = Path(storage).expanduser() if storage else default_storage_path(runs_dir)
        if path.is_dir():
            raise UsageError(f"--storage {path} is a directory; give a journal file path such as {path / 'optuna.journal'}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        except OSError as exc:
            raise UsageError(f"cannot open journal file {path}: {exc.strerror or exc}") from None
        return Storage(backend, str(path), str(path), "journal")

    import sqlalchemy
    from sqlalchemy.engine import make_url

    url = "postgresql://" + storage[len("postgres://"):] if storage.startswith("postgres://") else storage
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise UsageError(
            f"--storage '{_mask(storage)}' is not a database URL; use postgresql://user:password@host:5432/dbname "
            "or a journal file path"
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
            backend = optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
            )
    except sqlalchemy.exc.NoSuchModuleError:
        raise UsageError(
            f"--storage {shown}: unknown database kind '{url.split('://', 1)[0]}'; "
            "use postgresql://…, mysql://… or sqlite:///…"
        ) from None
    except ImportError as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        hint = " (pip install 'psycopg[binary]')" if url.startswith("postgresql://") else ""
        raise UsageError(f"--storage {shown}: the database driver is not installed ({cause}){hint}") from None
    except sqlalchemy.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        raise M6BenchError(f"cannot reach the study storage {shown}: {reason}") from None
    return Storage(backend, url, shown, "database")


# ---------------------------------------------------------------------------------- the result


@dataclass
class TuningResult:
    """What a tuning run leaves: the best configuration and how the budget was spent.

    ``best_params`` are config overrides (list settings as lists), ready for ``CellSpec.overrides``.
    """

    model: str
    dataset: str
    protocol: str
    budget: int
    metric: str
    study_name: str = ""
    storage: str = ""
    dashboard: str = ""
    timeout_s: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None
    best_trial: int | None = None
    n_complete: int = 0
    n_pruned: int = 0
    n_failed: int = 0
    n_running: int = 0
    ran: list[int] = field(default_factory=list)
    wall_time_s: float = 0.0
    nothing_to_tune: bool = False
    last_failure: str | None = None
    #: the trial that ran the model's defaults (enqueued first, never pruned) and its validation score
    default_trial: int | None = None
    default_value: float | None = None
    #: compute the whole study spent (all workers, all trials whatever their end): epochs and seconds
    trial_epochs: int = 0
    trial_seconds: float = 0.0
    #: validation score of each trial by number (None: pruned, failed or running), for best-so-far plots
    history: list[float | None] = field(default_factory=list)

    @property
    def n_trials(self) -> int:
        """Finished trials in the study: complete + pruned (what the budget counts)."""
        return self.n_complete + self.n_pruned

    def note(self) -> dict[str, Any]:
        """A JSON-able summary for a leaderboard header or a record."""
        return asdict(self) | {"n_trials": self.n_trials}


# ------------------------------------------------------------------------------------ helpers


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's own per-trial log lines while a front end reports progress itself."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def _probe(space: SearchSpace) -> dict[str, Any] | None:
    """One sample of ``space`` (to validate and to see whether it is empty); None if it cannot tell."""
    probed = probe(space)
    return probed[0] if probed is not None else None


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=str))


def _last_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def study_name_for(model: str, ds: PreparedDataset, protocol: str, *, epochs: int | None, seed: int, device: str,
                   overrides: dict[str, Any], metric: str, version: str | None = None) -> str:
    """The study of a tuning setting: the same settings always give the same name (so it resumes)."""
    payload = {
        "model": model, "dataset_checksum": ds.checksum, "protocol": protocol, "epochs": epochs, "seed": seed,
        "device": device, "overrides": overrides, "metric": metric, "version": version,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{model}.{ds.name}.{protocol}.{digest}"


def _sampler(seed: int, number: int, n_trials: int) -> optuna.samplers.TPESampler:
    import optuna

    startup = min(10, max(2, n_trials // 3))  # tiny budgets: random search (TPE needs a few points)
    return optuna.samplers.TPESampler(seed=(seed * 1_000_003 + number) % 2**32, n_startup_trials=startup)


def default_pruner(n_trials: int) -> optuna.pruners.BasePruner:
    """Hyperband on epochs: unbiased towards fast learners, unlike an epoch cap or early median pruning.

    A trial reports its validation score every epoch (``trial.report``); Hyperband runs several
    successive-halving brackets with different minimum epochs (rungs at 1, 3, 9, … epochs,
    ``reduction_factor`` 3), so a slow starter is compared with the others late in some bracket,
    and the survivors of a bracket train on to convergence with the final runs' early stopping.
    ``max_resource="auto"`` takes the epochs of the first finished trial (the defaults, trial 0,
    which is never pruned). ``n_trials`` is kept for the signature: Hyperband needs no warm-up count.
    """
    import optuna

    del n_trials
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)


def _worker_tag() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _count(study: optuna.Study, storage: Storage) -> tuple[int, int, int, int]:
    """(complete, pruned, failed, live running) trials; abandoned running trials are marked failed.

    A running trial is abandoned when its worker ran on this host and is gone, when a database
    heartbeat went stale, or when it never got a worker tag and is old.
    """
    import optuna
    from optuna.trial import TrialState

    if storage.kind == "database":  # heartbeats: trials of workers that died elsewhere
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    host, now = socket.gethostname(), time.time()
    complete = pruned = failed = live = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            complete += 1
        elif t.state == TrialState.PRUNED:
            pruned += 1
        elif t.state == TrialState.FAIL:
            failed += 1
        elif t.state == TrialState.RUNNING:
            tag = t.user_attrs.get("worker")
            started = t.datetime_start.timestamp() if t.datetime_start else now
            stale = (tag is None and now - started > UNTAGGED_STALE_S) or (
                tag is not None and tag.get("host") == host and tag.get("pid") != os.getpid()
                and not _pid_alive(int(tag.get("pid", 0)))
            )
            if stale:
                try:
                    storage.backend.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                    failed += 1
                except optuna.exceptions.UpdateFinishedTrialError:
                    pass  # it finished meanwhile
                continue
            live += 1
    return complete, pruned, failed, live


# ---------------------------------------------------------------------------------------- tune


def tune(
    model: str,
    dataset: str | PreparedDataset,
    *,
    n_trials: int,
    protocol: str = "default",
    epochs: int | None = None,
    seed: int = DEFAULT_SEED,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    runs_dir: Path | str = "runs",
    study_name: str | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    listener: TuningListener | None = None,
) -> TuningResult:
    """Tune ``model`` on ``dataset``'s validation split until its study holds ``n_trials`` finished trials.

    Only the missing trials run (``COMPLETE`` + ``PRUNED`` count; failed ones are retried on the next
    call). ``timeout`` (seconds) stops this call from starting new trials and cuts the running one at
    its next validation. ``overrides`` are fixed settings; they win over the search space. A model
    with nothing to tune (Pop) returns at once with ``nothing_to_tune``. Bad input raises
    :class:`UsageError` before any trial runs; a trial that crashes is recorded ``FAIL`` with its
    reason (``user_attrs["fail_reason"]``) and tuning goes on.
    """
    import optuna

    if n_trials < 1:
        raise UsageError(f"the number of trials must be at least 1, got {n_trials}")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"the tuning timeout must be positive (seconds), got {timeout}")
    fixed = dict(overrides or {})
    listener = listener or TuningListener()
    entry = registry.get(model)
    space = search_space(entry)
    sample = _probe(space) if space is not None else {}
    ds = dataset if isinstance(dataset, PreparedDataset) else None
    # resolved like any cell, so m6bench run and m6bench tune refuse the same cells with the same message
    # (UsageError for bad fixed overrides, a plugin outside its protocols, a device without a GPU)
    probe_spec = CellSpec(dataset=ds.name if ds is not None else str(dataset), model=entry.name, protocol=protocol,
                          seed=seed, epochs=epochs, device=device, overrides={**(sample or {}), **fixed})
    cell = resolve(probe_spec, prepared=ds)
    proto, ds = cell.protocol, cell.dataset
    if cell.missing:
        raise UsageError(f"dataset '{ds.name}' has no {', '.join(sorted(cell.missing))}, which {entry.name} needs; "
                         "pick a dataset that provides it (m6bench datasets list)")
    probe_config = cell.config
    metric = str(probe_config.get("valid_metric", "NDCG@10"))
    direction = "maximize" if probe_config.get("valid_metric_bigger", True) else "minimize"
    result = TuningResult(model=entry.name, dataset=ds.name, protocol=proto.name, budget=n_trials, metric=metric,
                          timeout_s=timeout)
    if suggests_nothing(space):
        result.nothing_to_tune = True
        return result

    try:
        defaults = default_params(entry, space)
    except ValueError as exc:
        raise M6BenchError(f"{exc}; widen {entry.name}'s search space so its defaults are trial 0") from None
    name = study_name or study_name_for(entry.name, ds, proto.name, epochs=epochs, seed=seed, device=device,
                                        overrides=fixed, metric=metric,
                                        version=entry.version if entry.kind == "plugin" else None)
    store = open_storage(storage, runs_dir)
    result.study_name, result.storage, result.dashboard = name, store.shown, store.dashboard
    study = optuna.create_study(storage=store.backend, study_name=name, sampler=_sampler(seed, 0, n_trials),
                                pruner=pruner or default_pruner(n_trials), direction=direction, load_if_exists=True)
    if not study.user_attrs:
        for key, value in {"model": entry.name, "dataset": ds.name, "dataset_checksum": ds.checksum,
                           "protocol": proto.name, "epochs": epochs, "seed": seed, "device": device,
                           "overrides": _jsonable(fixed), "metric": metric}.items():
            study.set_user_attr(key, value)
    if not any(t.user_attrs.get(DEFAULT_ATTR) for t in study.get_trials(deepcopy=False)):
        study.enqueue_trial(defaults, user_attrs={DEFAULT_ATTR: True}, skip_if_exists=True)

    t0 = time.monotonic()
    deadline = t0 + timeout if timeout is not None else None
    metric_key = metric.lower()

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", _worker_tag())
        study.sampler = _sampler(seed, trial.number, n_trials)  # per-trial seed: resumes replay nothing
        listener.trial_started(entry.name, trial.number, index, attempts)
        is_default = bool(trial.user_attrs.get(DEFAULT_ATTR))
        reported = [0]
        started = time.monotonic()

        def on_epoch(epoch: int, score: float) -> None:
            trial.report(score, epoch)
            reported[0] += 1
            listener.trial_epoch(entry.name, trial.number, epoch, score)
            if deadline is not None and time.monotonic() > deadline:
                trial.set_user_attr("stopped", "time budget")
                raise optuna.TrialPruned(f"time budget of {timeout:g}s reached at epoch {epoch}")
            # the defaults are never pruned: the chosen config is then at least as good on validation
            if not is_default and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} (valid {metric} {score:.4f})")

        def spent(epochs_run: int | None = None) -> None:
            """Compute of this trial, whatever its end: the study's budget is counted in both."""
            trial.set_user_attr("epochs_run", epochs_run if epochs_run is not None else reported[0])
            trial.set_user_attr("trial_time_s", round(time.monotonic() - started, 3))

        try:
            params = space(trial)
            trial.set_user_attr("overrides", _jsonable(params))
            trial_cell = cell.with_overrides({**params, **fixed})  # the checks and config of any cell
            run = train_and_evaluate(entry, trial_cell.split, trial_cell.config, on_epoch=on_epoch, evaluate_test=False)
            if metric_key not in run.valid:
                raise RuntimeError(f"validation gave no {metric} (got {sorted(run.valid)})")
        except optuna.TrialPruned:
            spent()
            raise
        except Exception as exc:
            spent()
            trial.set_user_attr("fail_reason", _last_line(exc))
            raise
        spent(run.epochs_run)
        trial.set_user_attr("valid", run.valid)
        trial.set_user_attr("best_epoch", run.best_epoch)
        trial.set_user_attr("train_time_s", round(run.train_time, 3))
        return run.valid[metric_key]

    def finished(_: optuna.Study, trial: FrozenTrial) -> None:
        result.ran.append(trial.number)
        listener.trial_finished(entry.name, trial)

    complete, pruned, failed, live = _count(study, store)
    attempts = max(0, n_trials - complete - pruned - live)
    result.n_complete, result.n_pruned, result.n_failed, result.n_running = complete, pruned, failed, live
    listener.tuning_started(result, attempts)
    index = 0
    while index < attempts:
        complete, pruned, _, live = _count(study, store)
        if complete + pruned + live >= n_trials or (deadline is not None and time.monotonic() >= deadline):
            break
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[finished], gc_after_trial=True)
        index += 1

    result.wall_time_s = round(time.monotonic() - t0, 3)
    _fill(result, study, store)
    return result


def _fill(result: TuningResult, study: optuna.Study, store: Storage) -> None:
    """Counts, best trial and last failure of ``study`` into ``result``."""
    from optuna.trial import TrialState

    result.n_complete, result.n_pruned, result.n_failed, result.n_running = _count(study, store)
    trials = study.get_trials(deepcopy=False)
    fails = [t for t in trials if t.state == TrialState.FAIL and "fail_reason" in t.user_attrs]
    result.last_failure = fails[-1].user_attrs["fail_reason"] if fails else None
    result.trial_epochs = sum(int(t.user_attrs.get("epochs_run", 0)) for t in trials)
    result.trial_seconds = round(sum(float(t.user_attrs.get("trial_time_s", 0.0)) for t in trials), 3)
    result.history = [float(t.value) if t.state == TrialState.COMPLETE and t.value is not None else None
                      for t in sorted(trials, key=lambda t: t.number)]
    default = [t for t in trials if t.user_attrs.get(DEFAULT_ATTR) and t.state == TrialState.COMPLETE]
    if default:
        result.default_trial, result.default_value = default[0].number, float(default[0].value)
    if result.n_complete:
        best = study.best_trial
        result.best_trial, result.best_value = best.number, float(best.value)
        result.best_params = dict(best.user_attrs.get("overrides", best.params))

