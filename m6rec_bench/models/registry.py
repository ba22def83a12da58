"""One registry of every runnable model: RecBole baselines and entry-point plugins.

Baselines are RecBole's own general and sequential recommenders, looked up by name with RecBole's
``get_model`` and never re-implemented; sequential ones run only under ``--protocol sequential``. Plugins come only from installed entry points in the
``m6rec_bench.plugins`` group (built-ins included); ``M6BENCH_PLUGINS=a,b`` restricts which load.
A plugin that fails to import is reported as broken with its error and never stops the others —
whatever it raises, ``sys.exit()`` included (only Ctrl-C goes through).
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata

from m6rec_bench.errors import UsageError, did_you_mean
from m6rec_bench.models.plugin import Plugin

ENTRY_POINT_GROUP = "m6rec_bench.plugins"
ALLOW_ENV = "M6BENCH_PLUGINS"

#: The classical baselines of the default suite (issue #3), in leaderboard order.
DEFAULT_BASELINES: tuple[str, ...] = ("Pop", "ItemKNN", "BPR", "NeuMF", "LightGCN", "MultiVAE")

#: RecBole general recommenders that run on this stack (KGAT needs dgl, KGIN/MCCLK torch_scatter —
#: not installable here; context-aware and sequential models need other protocols).
BASELINES: tuple[str, ...] = (
    "Pop", "ItemKNN", "BPR", "NeuMF", "ConvNCF", "DMF", "FISM", "NAIS", "SpectralCF", "GCMC",
    "NGCF", "LightGCN", "DGCF", "LINE", "MultiVAE", "MultiDAE", "MacridVAE", "CDAE", "ENMF",
    "NNCF", "RaCT", "RecVAE", "EASE", "SLIMElastic", "SGL", "ADMMSLIM", "NCEPLRec", "SimpleX",
    "NCL", "DiffRec", "LDiffRec", "Random",
)

#: RecBole sequential recommenders that run on this stack (tested under ``--protocol sequential``).
#: All train with RecBole's default ``loss_type: CE`` over every item, which needs
#: ``train_neg_sample_args: None`` (RecBole refuses sampled negatives with CE). Models needing item
#: features (FDSA, GRU4RecF, SASRecF, S3Rec), a KG (KSR, GRU4RecKG) or labels (DIN, DIEN) are left out.
SEQUENTIAL_BASELINES: tuple[str, ...] = (
    "GRU4Rec", "SASRec", "SRGNN", "NARM", "STAMP", "Caser", "NextItNet", "GCSAN", "LightSANs", "BERT4Rec", "CORE",
)
_SEQUENTIAL_SETTINGS: dict[str, object] = {"train_neg_sample_args": None}


@dataclass(frozen=True)
class ModelEntry:
    """A row of ``m6bench models list``: a baseline or a loaded plugin."""

    name: str
    kind: str  # "baseline" | "plugin"
    family: str
    description: str
    needs: frozenset[str]
    package: str
    version: str
    plugin: Plugin | None = None
    model_type: str = "general"
    #: fixed RecBole settings of a baseline (a plugin's are in ``plugin.recbole_config``)
    recbole_config: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that could not be loaded, with the reason."""

    name: str
    package: str
    version: str
    error: str


def _allowed() -> set[str] | None:
    raw = os.environ.get(ALLOW_ENV, "").strip()
    if not raw:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _load_entry_point(ep: metadata.EntryPoint) -> list[Plugin]:
    obj = ep.load()
    if callable(obj) and not isinstance(obj, Plugin):
        obj = obj()
    items = obj if isinstance(obj, list | tuple) else [obj]
    for item in items:
        if not isinstance(item, Plugin):
            raise TypeError(f"entry point {ep.name!r} gave {type(item).__name__}, expected m6rec_bench Plugin")
    return list(items)


@lru_cache(maxsize=1)
def _discover() -> tuple[tuple[ModelEntry, ...], tuple[BrokenPlugin, ...]]:
    allowed = _allowed()
    entries: list[ModelEntry] = []
    broken: list[BrokenPlugin] = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if allowed is not None and ep.name not in allowed:
            continue
        dist = ep.dist
        package = dist.name if dist else "?"
        version = dist.version if dist else "?"
        try:
            plugins = _load_entry_point(ep)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a broken plugin never stops the others, whatever it raises (SystemExit, GeneratorExit…)
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            broken.append(BrokenPlugin(ep.name, package, version, last))
            continue
        for plugin in plugins:
            entries.append(
                ModelEntry(plugin.name, "plugin", plugin.family, plugin.description, plugin.needs,
                           package, version, plugin, model_type=str(plugin.model_type))
            )
    return tuple(entries), tuple(broken)


def refresh() -> None:
    """Forget discovered plugins (after installing a package or changing ``M6BENCH_PLUGINS``)."""
    _discover.cache_clear()


def plugins() -> dict[str, Plugin]:
    """Loaded plugins by name."""
    return {e.name: e.plugin for e in _discover()[0] if e.plugin is not None}


def broken_plugins() -> list[BrokenPlugin]:
    """Entry points that failed to load."""
    return list(_discover()[1])


def baseline_entry(name: str) -> ModelEntry:
    import recbole

    if name in SEQUENTIAL_BASELINES:
        return ModelEntry(name, "baseline", "recbole", f"RecBole {name} (sequential)", frozenset({"inter"}),
                          "recbole", recbole.__version__, model_type="sequential",
                          recbole_config=dict(_SEQUENTIAL_SETTINGS))
    return ModelEntry(name, "baseline", "recbole", f"RecBole {name}", frozenset({"inter"}), "recbole",
                      recbole.__version__)


def all_models() -> list[ModelEntry]:
    """Every runnable model: baselines first (general, then sequential), then plugins."""
    return [baseline_entry(n) for n in BASELINES + SEQUENTIAL_BASELINES] + list(_discover()[0])


def get(name: str) -> ModelEntry:
    """Resolve a model name (case-insensitive) or raise a UsageError suggesting the nearest name.

    Baselines resolve without loading any plugin (importing PyKEEN, PyG and sentence-transformers
    costs seconds that a BPR-only run should not pay).
    """
    baseline = {n.lower(): n for n in BASELINES + SEQUENTIAL_BASELINES}.get(name.lower())
    if baseline is not None:
        return baseline_entry(baseline)
    by_lower = {m.name.lower(): m for m in all_models()}
    found = by_lower.get(name.lower())
    if found is not None:
        return found
    for b in broken_plugins():
        if b.name.lower() == name.lower():
            raise UsageError(f"plugin '{name}' is installed but failed to load: {b.error} (m6bench plugins list)")
    names = [m.name for m in all_models()]
    raise UsageError(f"model '{name}' not found{did_you_mean(name, names)} (m6bench models list)")


def default_suite(protocol: str = "default") -> list[str]:
    """Models ``m6bench run --protocol P`` runs without ``--models``: P's baselines, then default plugins of P's kind.

    The baselines are the protocol's ``default_models`` (the default protocol's are
    :data:`DEFAULT_BASELINES`); plugins join when ``in_default_suite`` and built for the protocol's
    own kind of model (general plugins under ``default`` / ``cold-item``, sequential ones under
    ``sequential``).
    """
    from m6rec_bench.protocols import get_protocol

    proto = get_protocol(protocol)
    baselines = proto.default_models if proto.default_models is not None else DEFAULT_BASELINES
    plugins_ = [e.name for e in _discover()[0] if e.plugin and e.plugin.in_default_suite and e.model_type == proto.model_type]
    return list(baselines) + plugins_
