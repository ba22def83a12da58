"""RecBole's run_recbole sequence written out with RecBole's API only: the reference the workbench's
numbers are compared against (tests/test_engine.py, tests/test_sequential.py)."""

from __future__ import annotations

from m6rec_bench import compat
from m6rec_bench.datasets import PreparedDataset


def raw_recbole(ds: PreparedDataset, model: str, config_dict: dict) -> dict[str, float]:
    """Test metrics of ``model`` trained by raw RecBole on ``ds`` with ``config_dict``."""
    compat.apply()
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    with compat.shielded_argv():
        config = Config(model=model, dataset=ds.name, config_dict={**config_dict, "data_path": str(ds.root), "show_progress": False})
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    best = compat.keep_best_in_memory(trainer)  # the only difference: best weights kept in memory
    trainer.fit(train, valid, saved=True, show_progress=False)
    compat.restore_best(trainer, best)
    return {k: float(v) for k, v in trainer.evaluate(test, load_best_model=False).items()}
