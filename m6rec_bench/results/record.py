"""The record: one JSON per finished cell, the only input of leaderboards and ``reproduce``.

A record can be handed to us (a published board, someone's runs folder), so the names that become
path components — ``dataset``, ``protocol``, ``cell_id`` and the row folder made from ``label`` —
are checked here, when it is parsed (:mod:`m6rec_bench.names`): a record naming ``../../x`` is
refused before any path is built from it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, SerializerFunctionWrapHandler,
                      model_serializer, model_validator)

from m6rec_bench.defaults import DEFAULT_SEED
from m6rec_bench.names import label_slug, slug

#: 2: per-user test metrics; 3: code identity, set-up time, run conditions, run options (all optional).
#: Hashed into every cell id (engine.cell.cell_id): an optional field added is no reason to bump it.
SCHEMA_VERSION = 3
Status = Literal["ok", "failed", "skipped"]
#: A string that becomes a path component of the runs or leaderboard folders.
PathName = Annotated[str, AfterValidator(slug)]


class TuningSummary(BaseModel):
    """How the suite tuned a cell's model before it ran (``m6bench run --tune-budget``), typed.

    Not part of the cell's identity (its ``cell_id`` hashes the chosen settings, which are in
    ``config``): this says what the choice cost and how good it was on validation, for the board.
    """

    model_config = ConfigDict(extra="forbid")

    budget: int = Field(description="trials the study was given (the same for every model of the suite)")
    trials: int = Field(0, description="finished trials (complete + pruned)")
    pruned: int = 0
    metric: str = "NDCG@10"
    best_trial: int | None = None
    best_valid: float | None = Field(None, description="validation score of the chosen (best) trial")
    default_valid: float | None = Field(None, description="validation score of the defaults (trial 0)")
    trial_epochs: int = Field(0, description="epochs trained by all the study's trials together")
    trial_seconds: float = Field(0.0, description="wall seconds of all the study's trials together")
    history: list[float | None] = Field(default_factory=list,
                                        description="validation score per trial number (None: pruned or failed)")
    study: str = ""
    note: str | None = None


Variant = Literal["compress", "rerank", "ablation"]
#: The ``m6_tune_*`` config keys a tuned cell carries in its overrides (so in its cell id) → RunOptions fields.
_TUNE_KEYS = {"m6_tune_budget": "tune_budget", "m6_tune_study": "tune_study", "m6_tune_note": "tune_note",
              "m6_tune_timeout": "tune_timeout", "m6_tune_epochs": "tune_epochs"}


class RunOptions(BaseModel):
    """The ``m6bench run`` options of a record's row, typed: which variant of its model it is, how its
    suite tuned it, and the command that reruns the row (:meth:`command`, given the row's seeds).

    Written by the engine (``Record.run``); :meth:`Record.options` derives it from the label and the
    ``m6_*`` config keys of an older record, so both read the same. The dataset is the spec's (as the
    user named it; :meth:`Record.reproduce`). The ``m6_tune_*`` keys stay in a tuned cell's overrides:
    they are part of its cell id (a tuned model with nothing to tune would otherwise share its plain
    cell's id).
    """

    model_config = ConfigDict(extra="forbid")

    protocol: str
    model: str
    epochs: int | None = Field(None, description="--epochs: the training cap the suite set (None: RecBole's)")
    variant: Variant | None = Field(None, description="how the row differs from its model's plain row: compressed, "
                                                      "re-ranked or an ablation of the plugin")
    method: str | None = Field(None, description="the compression or re-ranking method: int8, prune:0.5, linucb, mmr")
    tune_budget: int | None = Field(None, description="--tune-budget: trials per model (None: untuned)")
    tune_study: str | None = Field(None, description="the Optuna study that chose the row's settings")
    tune_note: str | None = Field(None, description="why the defaults ran although tuned: nothing to tune, no trial finished")
    tune_timeout: int | float | None = Field(None, description="--tune-timeout: seconds per study")
    tune_epochs: int | None = Field(None, description="--tune-epochs: the trials' epoch cap, when set apart from --epochs")

    @classmethod
    def of(cls, *, protocol: str, model: str, label: str | None = None, epochs: int | None = None,
           compress: str | None = None, rerank: str | None = None, config: dict[str, Any] | None = None) -> RunOptions:
        """The options of a cell: ``label`` is the row label asked for (an ablation's), ``config`` holds
        the ``m6_tune_*`` keys its suite's tuning put in its overrides (part of its cell id)."""
        variant: Variant | None = "compress" if compress else "rerank" if rerank else (
            "ablation" if label and label != model else None)
        tune = {name: config[key] for key, name in _TUNE_KEYS.items() if key in (config or {})}
        return cls(protocol=protocol, model=model, epochs=epochs, variant=variant,
                   method=compress or rerank, **tune)

    @property
    def board(self) -> str:
        """Which board of its (dataset, protocol) the row is on: ``tuned`` or the plain one (``""``)."""
        return "tuned" if self.tune_budget is not None else ""

    def tuning(self) -> dict[str, Any]:
        """The tuning options that were set, by short name (``budget``, ``study``, ``note``, ``timeout``, ``epochs``)."""
        return {key.removeprefix("tune_"): value for key, value in
                (("tune_budget", self.tune_budget), ("tune_study", self.tune_study), ("tune_note", self.tune_note),
                 ("tune_timeout", self.tune_timeout), ("tune_epochs", self.tune_epochs)) if value is not None}

    def command(self, dataset: str, seeds: list[int]) -> str:
        """``m6bench run …`` that reruns the row on ``dataset`` (as the spec names it: a folder of this
        machine is made portable) and ``seeds`` (a tuned row: its seeded study reruns and picks the
        same trial). ``--seeds N`` when they are the first N seeds of a suite."""
        from m6rec_bench.results.portable import portable_path

        seeds = sorted(seeds)
        first = list(range(DEFAULT_SEED, DEFAULT_SEED + len(seeds)))
        cmd = [f"m6bench run --dataset {portable_path(dataset)} --protocol {self.protocol} --models {self.model}",
               f"--seeds {len(seeds)}" if seeds == first else f"--seeds {','.join(map(str, seeds))}"]
        if self.epochs is not None:
            cmd.append(f"--epochs {self.epochs}")
        if self.variant == "ablation":
            cmd.append("--ablation")
        elif self.variant is not None:
            cmd.append(f"--{self.variant} {self.method}")
        for flag, value in (("--tune-budget", self.tune_budget), ("--tune-epochs", self.tune_epochs),
                            ("--tune-timeout", self.tune_timeout)):
            if value is not None:
                cmd.append(f"{flag} {value}")
        return " ".join(cmd)


class RunConditions(BaseModel):
    """The machine's state while a cell ran: what its times can be compared under (issue #19)."""

    load_start: float | None = Field(None, description="1-minute load average when the cell started")
    load_end: float | None = Field(None, description="1-minute load average when it finished")
    cores: int | None = Field(None, description="CPU cores the process could run on (its affinity)")
    torch_threads: int | None = Field(None, description="torch intra-op threads the cell used")
    omp_wait_policy: str | None = Field(None, description="OMP_WAIT_POLICY the OpenMP runtime loaded with")
    parallel_cells: int | None = Field(None, description="cells running at once on this machine (--jobs)")
    engine: str | None = Field(None, description="M6BENCH_ENGINE the cell ran under: replay, recbole or fast (m6rec_bench.engine.fast_eval)")

    @property
    def load(self) -> float | None:
        """The mean of the start and end load, or whichever is known."""
        known = [v for v in (self.load_start, self.load_end) if v is not None]
        return sum(known) / len(known) if known else None


class Record(BaseModel):
    """What a cell leaves behind: identity, outcome, metrics, cost and how to reproduce it."""

    schema_version: int = SCHEMA_VERSION
    cell_id: PathName = Field(description="hash of the resolved config, dataset checksum and code versions")
    status: Status
    reason: str | None = Field(None, description="why a cell failed or was skipped")
    dataset: PathName
    dataset_checksum: str
    protocol: PathName
    model: str
    label: str = Field("", description="leaderboard row name: the model, or the model plus a variant")
    model_kind: str = Field(description="baseline or plugin")
    family: str
    seed: int
    spec: dict[str, Any] = Field(default_factory=dict, description="the CellSpec that ran: rerun it to reproduce")
    config: dict[str, Any] = Field(description="the settings the cell was given (protocol + model + overrides)")
    resolved_config: dict[str, Any] = Field(default_factory=dict, description="RecBole's final config")
    valid: dict[str, float] = Field(default_factory=dict)
    test: dict[str, float] = Field(default_factory=dict)
    extra_metrics: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="metric groups beyond test (e.g. cold / warm items)"
    )
    per_user: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="test metrics per user for paired tests: 'users' (external ids) + one list per metric",
    )
    best_epoch: int | None = None
    epochs_run: int | None = None
    n_params: int | None = Field(None, description="the model's parameters, trainable and frozen (buffers not included)")
    n_trainable_params: int | None = Field(None, description="parameters the optimiser updates (requires_grad)")
    n_buffers: int | None = Field(None, description="values of the model's buffers: precomputed KG / text vectors, graphs, tries")
    setup_time_s: float | None = Field(
        None, description="model construction before training: pretraining (TransE), text encoding, graph building"
    )
    train_time_s: float | None = None
    eval_time_s: float | None = None
    peak_mem_mb: float | None = None
    artifact: str | None = Field(None, description="folder of the trained model beside this record (m6rec_bench.artifacts)")
    tuning: TuningSummary | None = Field(None, description="how the model was tuned on validation before this run")
    versions: dict[str, str] = Field(default_factory=dict)
    code: str | None = Field(
        None, description="the code that ran: git:<commit>[+dirty.<diff hash>] or src:<hash of the package files>"
    )
    conditions: RunConditions | None = Field(None, description="machine load and thread policy while the cell ran")
    run: RunOptions | None = Field(None, description="the row's run options: variant, method, tuning budget, "
                                                    "reproduce command (older records: Record.options derives them)")
    hardware: dict[str, Any] = Field(default_factory=dict)
    command: str = ""
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    _reused: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _row_folder(self) -> Record:
        """The row folder (``label`` or ``model`` through :func:`~m6rec_bench.names.label_slug`) must be a path name."""
        slug(label_slug(self.label or self.model), f"label {self.label or self.model!r} as a folder name")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A record read from before ``run`` was written is written back as it was read: the same bytes."""
        out = handler(self)
        if self.run is None and isinstance(out, dict):
            out.pop("run", None)
        return out

    @property
    def options(self) -> RunOptions:
        """The row's run options: ``run`` as written, or for a record written before it, derived from
        its label and the ``m6_*`` keys its suite put in ``config``."""
        if self.run is not None:
            return self.run
        config = self.config
        epochs = config.get("epochs")
        compress, rerank = config.get("m6_compress"), config.get("m6_rerank")
        return RunOptions.of(
            protocol=self.protocol, model=self.model,
            label=self.label, epochs=epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None,
            compress=str(compress) if compress is not None else None,
            rerank=str(rerank) if rerank is not None and compress is None else None, config=config)

    def reproduce(self, seeds: list[int]) -> str:
        """The ``m6bench run`` command that reruns this record's row on ``seeds`` (:meth:`RunOptions.command`)."""
        return self.options.command(str(self.spec.get("dataset", self.dataset)), seeds)

    @property
    def reused(self) -> bool:
        """True when this record was found in the store instead of being computed now (resume)."""
        return self._reused

    def metric(self, name: str, split: str = "test") -> float | None:
        """A metric by RecBole name (``ndcg@10``), from ``test``/``valid`` or an extra group."""
        group = {"test": self.test, "valid": self.valid}.get(split, self.extra_metrics.get(split, {}))
        return group.get(name.lower())
