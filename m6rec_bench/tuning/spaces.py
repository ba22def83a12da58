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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from m6rec_bench.models.registry import ModelEntry

if TYPE_CHECKING:  # pragma: no cover
    import optuna

Space = Callable[["optuna.Trial"], dict[str, Any]]

#: RecBole's learning-rate grid for its general recommenders.
LEARNING_RATES = [5e-5, 1e-4, 5e-4, 7e-4, 1e-3, 5e-3, 7e-3]


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
        "learning_rate": _lr(trial, [0.005, 0.01, 0.05]),
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
        "proto_reg": trial.suggest_categorical("proto_reg", [1e-8, 1e-7, 1e-6]),
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
BASELINE_SPACES: dict[str, Space] = {
    "BPR": bpr, "LightGCN": lightgcn, "NeuMF": neumf, "MultiVAE": multivae, "MultiDAE": multidae,
    "ItemKNN": itemknn, "NGCF": ngcf, "EASE": ease, "SLIMElastic": slim_elastic, "ADMMSLIM": admmslim,
    "NCEPLRec": nceplrec, "ENMF": enmf, "RecVAE": recvae, "SGL": sgl, "NCL": ncl, "SimpleX": simplex,
}

#: RecBole models with no hyper-parameters: they run once, untuned.
NOTHING_TO_TUNE = frozenset({"Pop", "Random"})


def search_space(entry: ModelEntry) -> Space | None:
    """The search space of a model, or ``None`` when it has nothing to tune."""
    if entry.plugin is not None:
        return entry.plugin.search_space
    if entry.name in NOTHING_TO_TUNE:
        return None
    return BASELINE_SPACES.get(entry.name, learning_rate_only)
