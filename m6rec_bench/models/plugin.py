"""The plugin contract: what a model package declares to become a row of the leaderboard.

A plugin is found through the ``m6rec_bench.plugins`` entry-point group, exactly like a third-party
package (the built-ins under ``plugins/`` are a separate distribution registered the same way).
Each entry point names a :class:`Plugin` object, or a zero-argument callable returning one.

The model itself is a RecBole ``AbstractRecommender`` subclass (``calculate_loss``, ``predict``,
``full_sort_predict``), so RecBole's own trainer and evaluator run it unchanged, on the same splits
as the baselines. Its hyper-parameters are a pydantic :class:`PluginConfig`; the cell merges them
into RecBole's ``Config`` so the model reads them as ``config["embedding_size"]`` etc. Beside the
config sits the Optuna search space (LensKit style).

A plugin imports these names (and whatever else it may use of m6rec-bench) from
:mod:`m6rec_bench.plugin_api`, the one supported surface; the optional hooks below (``fold_in``,
``column_sets``, ``modality_weights``) are how a plugin — built in or not — gets what the core would
otherwise have to special-case for it.

Minimal example (one file plus one entry-point line, see README "Adding a plugin")::

    class MyConfig(PluginConfig):
        embedding_size: int = 64

    class MyModel(GeneralRecommender):
        input_type = InputType.PAIRWISE
        ...

    plugin = Plugin(name="MyModel", family="cf", description="…", config_cls=MyConfig,
                    model_cls=MyModel)

A cell interrupted mid-training resumes from its last finished epoch
(:mod:`m6rec_bench.engine.checkpoint`): parameters, buffers, ``other_parameter()`` and plain scalar
attributes are saved; any other model attribute that changes during training switches this off for
the model. A model keeping caches of its parameters that it rebuilds on demand (item vectors for an
evaluation pass, dropped by ``train()``) names them in a class attribute,
``cache_attributes = ("_cache",)``, so checkpoints leave them out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import optuna
    import torch

#: The dataset features a plugin may need; see :class:`m6rec_bench.datasets.base.DatasetFeatures`.
FEATURES = frozenset({"inter", "item_text", "kg"})


#: The kinds of model a protocol may evaluate (RecBole's ``ModelType`` names, lower-case).
MODEL_TYPES = frozenset({"general", "sequential"})


def recbole_model_type(model_cls: Any) -> str:
    """``sequential`` for a RecBole ``SequentialRecommender`` (``type = ModelType.SEQUENTIAL``), else ``general``."""
    kind = getattr(getattr(model_cls, "type", None), "name", "")
    return "sequential" if kind == "SEQUENTIAL" else "general"


class PluginConfig(BaseModel):
    """Base class of plugin hyper-parameters: typed, with defaults, dumpable to a record."""

    model_config = ConfigDict(extra="forbid", frozen=True)


SearchSpace = Callable[["optuna.Trial"], dict[str, Any]]
"""A plugin's search space, declared beside its config: ``trial -> config overrides``.

Rules every space follows (``tests/test_fair_tuning.py`` walks them): the plugin's defaults lie in
it (tuning enqueues them as trial 0), its docstring names where its ranges come from (a paper or
RecBole's hyper-parameter pages), and a model of a family that RecBole also tunes uses the same
grid as its RecBole relative (the shared grids below), so the rows of a family compare.
"""

#: RecBole's learning-rate grid for its general recommenders (https://recbole.io/hyperparameters/).
RECBOLE_LEARNING_RATES: tuple[float, ...] = (5e-5, 1e-4, 5e-4, 7e-4, 1e-3, 5e-3, 7e-3)
#: Embedding sizes searched for BPR-trained ID embeddings (BPR's grid in ``m6rec_bench.tuning.spaces``).
EMBEDDING_SIZES: tuple[int, ...] = (32, 64, 128)
#: L2 weights: 0 (BPR has none) plus RecBole's usual ``reg_weight`` choices (1e-6 … 1e-2).
L2_WEIGHTS: tuple[float, ...] = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


@dataclass(frozen=True)
class Column:
    """One leaderboard column: its heading, the key in the group, decimals, and whether a sign is printed."""

    heading: str
    key: str
    digits: int = 4
    signed: bool = False
    #: multiply before printing (0.0123 share → 1.23 %)
    scale: float = 1.0

    def fmt(self, mean: float) -> str:
        value = mean * self.scale
        return f"{value:+.{self.digits}f}" if self.signed else f"{value:,.{self.digits}f}"


@dataclass(frozen=True)
class ColumnSet:
    """The columns of one record ``extra_metrics`` group, in order, and the note that explains them
    (the registry of sets: :mod:`m6rec_bench.leaderboard.columns`)."""

    group: str
    columns: tuple[Column, ...]
    note: str
    #: CSV headers ``<group>_<key>``; the compression set keeps the bare keys it always had
    csv_prefix: bool = True
    #: place among a board's column sets (ascending): the core's are 10 (compression), 20 (beyond
    #: accuracy) and 50 (re-ranking); a plugin's default, 100, puts its columns after them
    order: float = 100.0

    def csv_key(self, col: Column) -> str:
        return f"{self.group}_{col.key}" if self.csv_prefix else col.key


@dataclass(frozen=True)
class FoldInVectors:
    """What ``m6bench serve`` needs to fold a user in (:mod:`m6rec_bench.serve.scoring`, all internal ids).

    The model must score item ``j`` for user ``u`` as ``items[j] @ users[u]`` (its own ranking). An
    anonymous item list ``L`` becomes ``normalise(sum_{j in L} fold[j])``; a known user ``u`` with
    ``n_u`` training interactions and items ``A`` posted through the API becomes
    ``normalise(n_u * base[u] + sum_{j in A} fold[j])``.

    Attributes:
        users: ``[n_users, d]`` trained user vectors (used as they are while nothing was posted).
        items: ``[n_items, d]`` item vectors the model scores with.
        fold: ``[n_items, d]`` each item's fold-in vector (e.g. its unit item vector).
        base: ``[n_users, d]`` each known user's vector before folding in (e.g. the unit user vector).
    """

    users: torch.Tensor
    items: torch.Tensor
    fold: torch.Tensor
    base: torch.Tensor


@dataclass(frozen=True)
class FoldIn:
    """A plugin's fold-in rule for ``m6bench serve``: ``vectors(loaded) -> FoldInVectors``.

    ``loaded`` is the trained model rebuilt from its artifact (:class:`m6rec_bench.artifacts.Loaded`:
    ``model``, ``config``, ``dataset``, ``train_data``…). ``name`` is what users are shown among the
    models that can fold in; plugins sharing one rule (a subclass's plugin) share one FoldIn and one name.
    """

    name: str
    vectors: Callable[[Any], FoldInVectors]


@dataclass(frozen=True)
class PluginCard:
    """What listing a plugin needs, declared without importing the model (torch, PyG, PyKEEN…).

    ``m6bench models list`` and a typo in ``--models`` should answer in a second, not after
    importing every plugin's stack. A plugin package may therefore describe its plugins in its
    top-level package (which must stay light) as ``PLUGIN_CARDS = {entry-point name: card or
    [cards]}``; the registry reads that instead of loading the entry point, and checks the card
    against the real :class:`Plugin` when the plugin is loaded (a disagreement marks the plugin
    broken, so a card cannot silently drift). A package without cards is loaded to describe it.
    The fields mean what the same-named :class:`Plugin` fields mean; ``model_type`` is explicit.
    """

    name: str
    family: str
    description: str
    needs: frozenset[str] = frozenset({"inter"})
    model_type: str = "general"
    in_default_suite: bool = True
    protocols: tuple[str, ...] | None = None
    #: the plugin's leaderboard column sets (:attr:`Plugin.column_sets`), so a board knows them unimported
    column_sets: tuple[ColumnSet, ...] = ()
    #: the name of its fold-in rule (``Plugin.fold_in.name``), or None when ``serve`` cannot fold it in
    fold_in: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_sets", tuple(self.column_sets))  # a list compares unequal to the plugin's


@dataclass(frozen=True)
class Plugin:
    """Everything the workbench needs to know about one plugin model.

    Attributes:
        name: the model's name in leaderboards and on the command line (``--models``).
        family: ``kg``, ``gnn``, ``text``, ``fusion``… (shown by ``m6bench plugins list``).
        description: one line naming the paper the model follows.
        config_cls: pydantic config with defaults; its fields become RecBole config keys.
        model_cls: a RecBole recommender class (constructed as ``model_cls(config, dataset)``).
        needs: dataset features required; a dataset lacking one skips the plugin with a reason.
        search_space: ``trial -> dict`` of config overrides for Optuna tuning.
        recbole_config: extra RecBole settings the model needs (e.g. negative sampling).
        in_default_suite: whether ``m6bench run`` includes it when ``--models`` is not given.
        ablations: ``label -> config overrides`` rows that ``m6bench run --ablation`` adds
            (e.g. ``{"w/o KG": {"use_kg": False}}``), shown as ``"<name> w/o KG"``.
        model_type: ``general`` (scores a user against items) or ``sequential`` (scores the next
            item after a user's item sequence; runs only under ``--protocol sequential``). ``None``
            (the default) reads it from the RecBole class: a ``SequentialRecommender`` is
            ``sequential``, anything else ``general``.
        protocols: the only protocols the plugin can run under (e.g. ``("user-group",)`` for a model
            that pretrains on that protocol's source users); ``None`` (the default): every protocol
            that evaluates its ``model_type``. The first is where its contract test runs.
        extra_metrics: ``run -> {group: {name: value}}``, called after test evaluation with the
            cell's finished run (``model``, ``dataset``, ``test_data``, ``config``…); the groups
            join the record's ``extra_metrics`` (e.g. ``{"rating": {"rmse": …, "mae": …}}``), and
            those named by a column set (the core's in :mod:`m6rec_bench.leaderboard.columns`, or
            a plugin's ``column_sets``) become leaderboard columns.
        implements: the RecBole model this plugin re-implements (e.g. ``"LightGCN"`` for a
            PyTorch Geometric LightGCN), or ``None`` for a model of its own. Where that model's row
            is on a board, the plugin's rows go to the board's implementations table (metric
            difference and speed ratio against RecBole's), not into the ranking and its tests: a
            faster implementation of the same model is not a better model.

    Optional hooks (what the core would otherwise have to know about one model; every plugin,
    built in or not, fills them the same way):
        fold_in: a :class:`FoldIn` rule: ``m6bench serve`` then answers anonymous item lists and
            moves known users toward posted items; without it the model serves known users only.
        column_sets: :class:`~m6rec_bench.leaderboard.columns.ColumnSet` s of the groups its
            ``extra_metrics`` writes; boards show them as columns (declare them in the plugin's
            card too when the package has ``PLUGIN_CARDS``, so boards need not import the model).
        modality_weights: ``model -> {modality: [n_items] weights}``: ``m6bench explain`` shows each
            recommended item's weights (e.g. a fusion gate's id / graph / kg / text).
    """

    name: str
    family: str
    description: str
    config_cls: type[PluginConfig]
    model_cls: type
    needs: frozenset[str] = frozenset({"inter"})
    search_space: SearchSpace | None = None
    recbole_config: dict[str, Any] = field(default_factory=dict)
    in_default_suite: bool = True
    ablations: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_type: str | None = None
    extra_metrics: Callable[[Any], dict[str, dict[str, float]]] | None = None
    protocols: tuple[str, ...] | None = None
    implements: str | None = None
    fold_in: FoldIn | None = None
    column_sets: tuple[ColumnSet, ...] = ()
    modality_weights: Callable[[Any], dict[str, np.ndarray]] | None = None

    def __post_init__(self) -> None:
        if self.model_type is None:  # frozen: set the derived default once, here
            object.__setattr__(self, "model_type", recbole_model_type(self.model_cls))
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"plugin {self.name!r} has model_type {self.model_type!r}; known: {sorted(MODEL_TYPES)}")
        unknown = set(self.needs) - FEATURES
        if unknown:
            raise ValueError(f"plugin {self.name!r} needs unknown features {sorted(unknown)}; known: {sorted(FEATURES)}")
        if self.implements is not None and (not isinstance(self.implements, str) or not self.implements):
            raise TypeError(f"plugin {self.name!r}: implements must name a RecBole model, e.g. 'LightGCN'")
        if not isinstance(self.config_cls, type) or not issubclass(self.config_cls, PluginConfig):
            raise TypeError(f"plugin {self.name!r}: config_cls must subclass m6rec_bench.models.plugin.PluginConfig")
        if self.fold_in is not None and not isinstance(self.fold_in, FoldIn):
            raise TypeError(f"plugin {self.name!r}: fold_in must be a FoldIn(name, vectors) (m6rec_bench.plugin_api)")
        object.__setattr__(self, "column_sets", tuple(self.column_sets))
        if not all(isinstance(cs, ColumnSet) for cs in self.column_sets):
            raise TypeError(f"plugin {self.name!r}: column_sets must be ColumnSet objects (m6rec_bench.plugin_api)")

    @property
    def card(self) -> PluginCard:
        """This plugin's listing fields (compared with a declared :class:`PluginCard`)."""
        return PluginCard(self.name, self.family, self.description, frozenset(self.needs), str(self.model_type),
                          self.in_default_suite, tuple(self.protocols) if self.protocols is not None else None,
                          self.column_sets, self.fold_in.name if self.fold_in is not None else None)

    def default_config(self) -> PluginConfig:
        """The config with every default."""
        return self.config_cls()

    def recbole_settings(self, config: PluginConfig | dict[str, Any] | None = None) -> dict[str, Any]:
        """RecBole config entries for this plugin: its fixed settings plus its (validated) config."""
        if config is None:
            cfg = self.default_config()
        elif isinstance(config, PluginConfig):
            cfg = config
        else:
            cfg = self.config_cls(**config)
        return {**self.recbole_config, **cfg.model_dump(mode="json")}
