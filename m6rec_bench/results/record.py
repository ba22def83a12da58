"""The record: one JSON per finished cell, the only input of leaderboards and ``reproduce``.

A record can be handed to us (a published board, someone's runs folder), so the names that become
path components — ``dataset``, ``protocol``, ``cell_id`` and the row folder made from ``label`` —
are checked here, when it is parsed (:mod:`m6rec_bench.names`): a record naming ``../../x`` is
refused before any path is built from it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from m6rec_bench.names import label_slug, slug

SCHEMA_VERSION = 3  # 2: per-user test metrics; 3: code identity, set-up time, run conditions (all optional)
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


class RunConditions(BaseModel):
    """The machine's state while a cell ran: what its times can be compared under (issue #19)."""

    load_start: float | None = Field(None, description="1-minute load average when the cell started")
    load_end: float | None = Field(None, description="1-minute load average when it finished")
    cores: int | None = Field(None, description="CPU cores the process could run on (its affinity)")
    torch_threads: int | None = Field(None, description="torch intra-op threads the cell used")
    omp_wait_policy: str | None = Field(None, description="OMP_WAIT_POLICY the OpenMP runtime loaded with")
    parallel_cells: int | None = Field(None, description="cells running at once on this machine (--jobs)")
    engine: str | None = Field(None, description="M6BENCH_ENGINE the cell ran under: recbole or fast (m6rec_bench.engine.fast_train)")

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
    hardware: dict[str, Any] = Field(default_factory=dict)
    command: str = ""
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    _reused: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _row_folder(self) -> Record:
        """The row folder (``label`` or ``model`` through :func:`~m6rec_bench.names.label_slug`) must be a path name."""
        slug(label_slug(self.label or self.model), f"label {self.label or self.model!r} as a folder name")
        return self

    @property
    def reused(self) -> bool:
        """True when this record was found in the store instead of being computed now (resume)."""
        return self._reused

    def metric(self, name: str, split: str = "test") -> float | None:
        """A metric by RecBole name (``ndcg@10``), from ``test``/``valid`` or an extra group."""
        group = {"test": self.test, "valid": self.valid}.get(split, self.extra_metrics.get(split, {}))
        return group.get(name.lower())
