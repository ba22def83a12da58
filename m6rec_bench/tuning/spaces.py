"""Optuna search spaces: RecBole baselines here, plugins bring their own (``Plugin.search_space``).

A space is ``trial -> dict`` of config overrides, exactly what a cell's ``overrides`` hold. The
baseline grids follow the ``choice`` ranges of RecBole's hyper-parameter pages
(https://recbole.io/hyperparameters/) over the parameters each model declares in
``recbole/properties/model/<Model>.yaml``. List-valued settings (``mlp_hidden_size``) are suggested
as strings, because Optuna's categorical choices must be scalars, and parsed back here.

A RecBole model without a grid below gets the learning-rate grid when it is trained by gradient
descent; the non-trained ones (Pop, Random) have nothing to tune and run once.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from m6rec_bench.lookup import Registry
from m6rec_bench.models.plugin import RECBOLE_LEARNING_RATES, SearchSpace
from m6rec_bench.models.registry import ModelEntry

if TYPE_CHECKING:  # pragma: no cover
    import optuna

#: RecBole's learning-rate grid for its general recommenders (shared with plugins through the plugin API).
LEARNING_RATES = list(RECBOLE_LEARNING_RATES)


def _ints(trial: optuna.Trial, name: str, choices: list[str]) -> list[int]:
    """A list-valued setting: ``"64,32,16"`` → ``[64, 32, 16]``."""
    return [int(x) for x in trial.suggest_categorical(name, choices).split(",")]


def _lr(trial: optuna.Trial, choices: list[float] | None = None) -> float:
    return trial.suggest_categorical("learning_rate", choices or LEARNING_RATES)


def bpr(trial: optuna.Trial) -> dict[str, Any]:
    """BPR (Rendle et al., UAI 2009)."""
    return {"learning_rate": _lr(trial), "embedding_size": trial.suggest_categorical("embedding_size", [32, 64, 128])}


def lightgcn(trial: optuna.Trial) -> dict[str, Any]:
    """LightGCN (He et al., SIGIR 2020)."""
    return {
        "learning_rate": _lr(trial, [5e-4, 1e-3, 2e-3]),
        "n_layers": trial.suggest_categorical("n_layers", [1, 2, 3, 4]),
        "reg_weight": trial.suggest_categorical("reg_weight", [1e-5, 1e-4, 1e-3, 1e-2]),
    }


def neumf(trial: optuna.Trial) -> dict[str, Any]:
    """NeuMF (He et al., WWW 2017)."""
    return {
        "learning_rate": _lr(trial, [5e-6, 1e-5, 1e-4, 5e-4, 1e-3]),
        "mf_embedding_size": trial.suggest_categorical("mf_embedding_size", [32, 64, 128]),
        "mlp_hidden_size": _ints(trial, "mlp_hidden_size", ["64,32,16", "32,16,8", "128,64"]),
        "dropout_prob": trial.suggest_categorical("dropout_prob", [0.0, 0.1, 0.3]),
    }


def multivae(trial: optuna.Trial) -> dict[str, Any]:
    """Mult-VAE (Liang et al., WWW 2018)."""
    return {
        "learning_rate": _lr(trial),
        "latent_dimension": trial.suggest_categorical("latent_dimension", [64, 128, 200, 256]),
        "dropout_prob": trial.suggest_categorical("dropout_prob", [0.1, 0.3, 0.5]),
        "anneal_cap": trial.suggest_categorical("anneal_cap", [0.1, 0.2, 0.3, 0.5]),
    }


def multidae(trial: optuna.Trial) -> dict[str, Any]:
    """Mult-DAE (Liang et al., WWW 2018)."""
    return {
        "learning_rate": _lr(trial),
        "latent_dimension": trial.suggest_categorical("latent_dimension", [64, 128, 200]),
        "dropout_prob": trial.suggest_categorical("dropout_prob", [0.1, 0.3, 0.5]),
    }


def itemknn(trial: optuna.Trial) -> dict[str, Any]:
    """ItemKNN (Deshpande & Karypis, TOIS 2004); nothing is trained, only k and shrink."""
    return {
        "k": trial.suggest_categorical("k", [10, 50, 100, 200, 250, 300, 400]),
        "shrink": trial.suggest_categorical("shrink", [0.0, 0.1, 0.5, 1.0, 2.0]),
    }


def ngcf(trial: optuna.Trial) -> dict[str, Any]:
    """NGCF (Wang et al., SIGIR 2019)."""
    return {
        "learning_rate": _lr(trial, [1e-4, 5e-4, 1e-3]),
        "node_dropout": trial.suggest_categorical("node_dropout", [0.0, 0.1]),
        "message_dropout": trial.suggest_categorical("message_dropout", [0.0, 0.1, 0.2]),
        "reg_weight": trial.suggest_categorical("reg_weight", [1e-5, 1e-4]),
        "hidden_size_list": _ints(trial, "hidden_size_list", ["64,64,64", "128,128,128"]),
    }


def ease(trial: optuna.Trial) -> dict[str, Any]:
    """EASE (Steck, WWW 2019)."""
    return {"reg_weight": trial.suggest_categorical("reg_weight", [1.0, 10.0, 100.0, 250.0, 500.0, 1000.0])}


def slim_elastic(trial: optuna.Trial) -> dict[str, Any]:
    """SLIM with ElasticNet (Ning & Karypis, ICDM 2011)."""
    return {
        "alpha": trial.suggest_categorical("alpha", [0.2, 0.4, 0.6, 0.8]),
        "l1_ratio": trial.suggest_categorical("l1_ratio", [0.02, 0.05, 0.1]),
    }


def admmslim(trial: optuna.Trial) -> dict[str, Any]:
    """ADMM SLIM (Steck et al., WSDM 2020)."""
    return {
        "lambda1": trial.suggest_categorical("lambda1", [0.5, 1.0, 3.0, 5.0]),
        "lambda2": trial.suggest_categorical("lambda2", [50.0, 100.0, 200.0, 500.0]),
        "alpha": trial.suggest_categorical("alpha", [0.25, 0.5, 0.75, 1.0]),
    }


def nceplrec(trial: optuna.Trial) -> dict[str, Any]:
    """NCE-PLRec (Wu et al., SIGIR 2019)."""
    return {
        "rank": trial.suggest_categorical("rank", [100, 200, 450]),
        "beta": trial.suggest_categorical("beta", [0.8, 1.0, 1.3]),
        "reg_weight": trial.suggest_categorical("reg_weight", [1.0, 10.0, 100.0]),
    }


def enmf(trial: optuna.Trial) -> dict[str, Any]:
    """ENMF (Chen et al., TOIS 2020)."""
    return {
        "learning_rate": _lr(trial, [0.001, 0.005, 0.01, 0.05]),  # + RecBole's default 0.001
        "dropout_prob": trial.suggest_categorical("dropout_prob", [0.3, 0.5, 0.7]),
        "negative_weight": trial.suggest_categorical("negative_weight", [0.001, 0.005, 0.01, 0.05, 0.1, 0.5]),
    }


def recvae(trial: optuna.Trial) -> dict[str, Any]:
    """RecVAE (Shenbin et al., WSDM 2020)."""
    return {
        "learning_rate": _lr(trial),
        "latent_dimension": trial.suggest_categorical("latent_dimension", [64, 128, 200]),
        "dropout_prob": trial.suggest_categorical("dropout_prob", [0.1, 0.3, 0.5]),
        "beta": trial.suggest_categorical("beta", [0.1, 0.2, 0.4]),
    }


def sgl(trial: optuna.Trial) -> dict[str, Any]:
    """SGL (Wu et al., SIGIR 2021)."""
    return {
        "learning_rate": _lr(trial, [5e-4, 1e-3, 2e-3]),
        "ssl_tau": trial.suggest_categorical("ssl_tau", [0.1, 0.2, 0.5]),
        "drop_ratio": trial.suggest_categorical("drop_ratio", [0.0, 0.1, 0.2, 0.4]),
        "ssl_weight": trial.suggest_categorical("ssl_weight", [0.005, 0.05, 0.1, 0.5]),
    }


def ncl(trial: optuna.Trial) -> dict[str, Any]:
    """NCL (Lin et al., WWW 2022)."""
    return {
        "learning_rate": _lr(trial, [5e-4, 1e-3, 2e-3]),
        "num_clusters": trial.suggest_categorical("num_clusters", [100, 1000]),
        "ssl_temp": trial.suggest_categorical("ssl_temp", [0.05, 0.07, 0.1]),
        "ssl_reg": trial.suggest_categorical("ssl_reg", [1e-7, 1e-6]),
        "proto_reg": trial.suggest_categorical("proto_reg", [1e-8, 8e-8, 1e-7, 1e-6]),  # + RecBole's default 8e-8
    }


def simplex(trial: optuna.Trial) -> dict[str, Any]:
    """SimpleX (Mao et al., CIKM 2021)."""
    return {
        "learning_rate": _lr(trial, [1e-4, 5e-4, 1e-3]),
        "margin": trial.suggest_categorical("margin", [0.3, 0.5, 0.7, 0.9]),
        "negative_weight": trial.suggest_categorical("negative_weight", [1, 10, 50]),
        "gamma": trial.suggest_categorical("gamma", [0.3, 0.5, 0.7]),
    }


def learning_rate_only(trial: optuna.Trial) -> dict[str, Any]:
    """Fallback for trained RecBole models without a grid of their own."""
    return {"learning_rate": _lr(trial)}


#: Grids of RecBole baselines by model name.
BASELINE_SPACES: Registry[SearchSpace] = Registry("search space")
for _name, _space in {
    "BPR": bpr, "LightGCN": lightgcn, "NeuMF": neumf, "MultiVAE": multivae, "MultiDAE": multidae,
    "ItemKNN": itemknn, "NGCF": ngcf, "EASE": ease, "SLIMElastic": slim_elastic, "ADMMSLIM": admmslim,
    "NCEPLRec": nceplrec, "ENMF": enmf, "RecVAE": recvae, "SGL": sgl, "NCL": ncl, "SimpleX": simplex,
}.items():
    BASELINE_SPACES.register(_name, _space)

#: Baselines with no hyper-parameters: they run once, untuned.
NOTHING_TO_TUNE = frozenset({"Pop", "Popularity", "Random"})


def search_space(entry: ModelEntry) -> SearchSpace | None:
    """The search space of a model, or ``None`` when it has nothing to tune."""
    if entry.plugin is not None:
        return entry.plugin.search_space
    if entry.name in NOTHING_TO_TUNE:
        return None
    return BASELINE_SPACES.find(entry.name) or learning_rate_only


# ------------------------------------------------------------------- dimensions and defaults


@dataclass(frozen=True)
class Dimension:
    """One dimension of a space as a probe saw it: categorical ``choices`` or a numeric range."""

    name: str
    kind: str  # "categorical" | "float" | "int"
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (in Optuna's form: list settings as ``"64,32"``) lies in this dimension."""
        if self.kind == "categorical":
            return any(_same(value, c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        assert self.low is not None and self.high is not None
        if not self.low - 1e-12 <= value <= self.high + 1e-12:
            return False
        if self.kind == "int":
            return float(value).is_integer() and (self.step is None or (value - self.low) % self.step == 0)
        return True

    def shown(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        return f"[{self.low:g}, {self.high:g}]"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
    return a == b


class _Probe:
    """A stand-in trial that takes the first choice / lower bound of every suggestion and records it."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.dimensions: dict[str, Dimension] = {}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.dimensions[name] = Dimension(name, "categorical", tuple(choices))
        self.params[name] = list(choices)[0]
        return self.params[name]

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, **_: Any) -> float:
        self.dimensions[name] = Dimension(name, "float", low=low, high=high, step=step)
        self.params[name] = low
        return low

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, **_: Any) -> int:
        self.dimensions[name] = Dimension(name, "int", low=low, high=high, step=step)
        self.params[name] = low
        return low

    def __getattr__(self, name: str) -> Any:  # set_user_attr, report… are harmless no-ops
        return lambda *a, **k: None


def probe(space: SearchSpace) -> tuple[dict[str, Any], dict[str, Dimension]] | None:
    """One sample of ``space`` (config overrides) and its dimensions; None if it cannot tell."""
    p = _Probe()
    try:
        sample = dict(space(p))  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - a space using other Trial APIs is simply not probed
        return None
    return sample, p.dimensions


def suggests_nothing(space: SearchSpace | None) -> bool:
    """No space, or one whose probe suggests no parameter: the model has nothing to tune and runs its
    defaults (``tune``'s rule; a space that cannot be probed counts as tunable)."""
    if space is None:
        return True
    probed = probe(space)
    return probed is not None and probed[0] == {}


@functools.cache
def _recbole_yaml(name: str) -> dict[str, Any]:
    """RecBole's own defaults: ``overall.yaml`` or ``model/<Model>.yaml`` of the installed RecBole."""
    import recbole

    path = Path(recbole.__file__).parent / "properties" / name
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, str):  # PyYAML reads 1e-05 as a string; RecBole's loader reads a float
            try:
                value = float(value)
            except ValueError:
                pass
        out[key] = value
    return out


def model_defaults(entry: ModelEntry) -> dict[str, Any]:
    """The settings an untuned cell of ``entry`` trains with (RecBole's, then the model's own)."""
    base = {**_recbole_yaml("overall.yaml")}
    if entry.plugin is not None:
        return {**base, **entry.plugin.recbole_config, **entry.plugin.default_config().model_dump(mode="json")}
    return {**base, **_recbole_yaml(f"model/{entry.name}.yaml"), **entry.recbole_config}


def default_params(entry: ModelEntry, space: SearchSpace | None = None) -> dict[str, Any]:
    """The model's defaults as Optuna params of its space: what ``study.enqueue_trial`` takes as trial 0.

    Raises :class:`ValueError` naming every dimension whose default is unknown or outside the
    space: a space must contain the configuration it is compared with, or tuning could end worse
    than not tuning.
    """
    space = space if space is not None else search_space(entry)
    if space is None:
        return {}
    probed = probe(space)
    if probed is None:
        raise ValueError(f"{entry.name}: its search space cannot be probed, so its defaults cannot be trial 0")
    defaults = model_defaults(entry)
    params: dict[str, Any] = {}
    problems: list[str] = []
    for name, dim in probed[1].items():
        if name not in defaults:
            problems.append(f"{name} has no default")
            continue
        value = defaults[name]
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        if not dim.contains(value):
            problems.append(f"{name} default {value!r} is outside {dim.shown()}")
            continue
        if dim.kind == "categorical":  # Optuna matches categorical values exactly: take the choice itself
            value = next(c for c in dim.choices if _same(value, c))
        params[name] = value
    if problems:
        raise ValueError(f"{entry.name}: the defaults must lie in the search space, but " + "; ".join(problems))
    return params
