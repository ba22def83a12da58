"""M6-Fusion-MTL: ranking and rating heads on one M6-Fusion encoder, fixed or uncertainty weighting.

Content vectors come from the cheap stand-ins of the ``fusion_content`` fixture; the real PyKEEN /
MiniLM loaders run in the plugin contract test. Every training runs on the 150-user slice.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import replace

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

import m6rec_plugins.multitask as multitask
from m6rec_bench.datasets.atomic import checksum_of
from m6rec_bench.engine.cell import CellRun, CellSpec, build, build_config_dict, run_cell, train_and_evaluate
from m6rec_bench.errors import DataError, UsageError
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol
from m6rec_plugins.fusion import M6Fusion

NAME = "M6-Fusion-MTL"
DEFAULT = get_protocol("default")


def _config(ds, model: str = NAME, epochs: int = 2, **overrides) -> dict:
    entry = registry.get(model)
    spec = CellSpec(dataset=ds.name, model=model, epochs=epochs, overrides=overrides)
    return build_config_dict(spec, entry, DEFAULT, ds, {})


def _train(ds, epochs: int = 2, **overrides):
    return train_and_evaluate(registry.get(NAME), ds, _config(ds, epochs=epochs, **overrides))


def _built(ds, model: str = NAME, **overrides):
    with tempfile.TemporaryDirectory() as ckpt:
        return build(registry.get(model), ds, _config(ds, model=model, **overrides), ckpt)


def test_plugin_declaration():
    plugin = registry.plugins()[NAME]
    assert plugin is multitask.plugin and plugin.family == "fusion"
    assert plugin.in_default_suite is False
    assert plugin.needs == {"inter", "kg", "item_text"}
    assert plugin.extra_metrics is multitask.rating_metrics
    assert plugin.ablations == {"rating only": {"rank_weight": 0.0}, "uncertainty": {"mtl_weighting": "uncertainty"}}
    for overrides in plugin.ablations.values():
        plugin.config_cls(**overrides)
    assert "Kendall" in multitask.__doc__ and "CVPR 2018" in multitask.__doc__
    # it is not in the default suite: `m6bench run` without --models leaves it out
    assert NAME not in registry.default_suite("default") and "M6-Fusion" in registry.default_suite("default")


def test_no_task_is_a_usage_error(ml100k_slice):
    spec = CellSpec(dataset=ml100k_slice.name, model=NAME, epochs=1,
                    overrides={"rank_weight": 0.0, "rating_weight": 0.0})
    with pytest.raises(UsageError, match="at least one task"):
        run_cell(spec, prepared=ml100k_slice)


def test_ranking_loss_is_m6_fusions_own(ml100k_slice, fusion_content):
    """Same seed, same encoder: the MTL loss is M6-Fusion's loss plus weight × rating MSE."""
    fus = _built(ml100k_slice, model="M6-Fusion")
    mtl = _built(ml100k_slice, rating_weight=0.5)
    mtl_state = mtl.model.state_dict()
    for key, value in fus.model.state_dict().items():
        torch.testing.assert_close(mtl_state[key], value, rtol=0, atol=0)
    batch = next(iter(mtl.train_data))
    torch.manual_seed(7)
    fus_loss = fus.model.calculate_loss(batch)
    torch.manual_seed(7)
    mtl_loss = mtl.model.calculate_loss(batch)
    mse = torch.mean((mtl.model.rating_head.mu - batch["rating"].float()) ** 2)  # the head starts at μ
    assert mtl_loss.item() == pytest.approx(fus_loss.item() + 0.5 * mse.item(), rel=1e-5)
    train_ratings = mtl.train_data._dataset.inter_feat["rating"].float()
    assert mtl.model.rating_head.mu.item() == pytest.approx(train_ratings.mean().item(), rel=1e-6)
    assert (mtl.model.rating_range == torch.tensor([1.0, 5.0])).all()  # the 1–5 scale, not min-max normalised


def test_trains_and_records_ranking_and_rating_metrics(ml100k_slice, fusion_content):
    rec = run_cell(CellSpec(dataset=ml100k_slice.name, model=NAME, epochs=4), prepared=ml100k_slice)
    assert rec.status == "ok", rec.reason
    assert rec.test and all(math.isfinite(v) for v in rec.test.values())
    assert rec.test["hit@20"] > 0
    rating = rec.extra_metrics["rating"]
    assert set(rating) == {"rmse", "mae"} and all(math.isfinite(v) and v > 0 for v in rating.values())
    assert rating["mae"] <= rating["rmse"]

    # the trivial reference on the very same split (same seed): predict the training mean for every test pair
    b = _built(ml100k_slice)
    mu = float(b.train_data._dataset.inter_feat["rating"].float().mean())
    test = b.test_data._dataset.inter_feat["rating"].float().numpy()
    assert len(test) > 1000  # the test interactions, not the test users
    mean_rmse = float(np.sqrt(np.mean((test - mu) ** 2)))
    mean_mae = float(np.mean(np.abs(test - mu)))
    assert 0.9 < mean_rmse < 1.4  # MovieLens ratings' spread around their mean
    assert rating["rmse"] < mean_rmse - 0.01, (rating, mean_rmse)
    assert rating["mae"] < mean_mae, (rating, mean_mae)


def test_uncertainty_loss_is_kendalls(ml100k_slice, fusion_content):
    """L = Σ_t exp(-s_t) L_t + s_t on a batch, and ∂L/∂s_t = 1 - exp(-s_t) L_t (Kendall et al. 2018)."""
    b = _built(ml100k_slice, mtl_weighting="uncertainty")
    model, batch = b.model, next(iter(b.train_data))
    with torch.no_grad():
        model.task_log_var.copy_(torch.tensor([math.log(2.0), -math.log(2.0)]))
    torch.manual_seed(3)
    rank, u, pos_e = model._ranking_pass(batch)
    pred = model.rating_head(batch["user_id"], batch["item_id"], u, pos_e)
    mse = torch.nn.functional.mse_loss(pred, batch["rating"].float())
    torch.manual_seed(3)  # the same modality dropout
    total = model.calculate_loss(batch)
    rank, mse = rank.item(), mse.item()
    assert total.item() == pytest.approx(rank / 2 + math.log(2.0) + 2 * mse - math.log(2.0), rel=1e-5)
    total.backward()
    grad = model.task_log_var.grad
    assert grad[0].item() == pytest.approx(1 - rank / 2, rel=1e-4)
    assert grad[1].item() == pytest.approx(1 - 2 * mse, rel=1e-4)


def test_uncertainty_weights_change_in_training(ml100k_slice, fusion_content):
    run = _train(ml100k_slice, epochs=2, mtl_weighting="uncertainty")
    model = run.model
    s = model.task_log_var
    assert isinstance(s, torch.nn.Parameter) and s.requires_grad
    assert any(p is s for p in model.parameters())  # RecBole's optimiser gets it
    # both started at 0; both losses are above 1 at first (softmax ≈ log #items, MSE ≈ rating variance),
    # so both log-variances grow: the tasks are weighed down by exp(-s_t)
    assert torch.isfinite(s).all() and (s.detach() > 1e-2).all(), s
    weights = model.task_weights()
    assert set(weights) == {"rank", "rating"}
    assert weights["rank"] == pytest.approx(math.exp(-s[0].item())) and weights["rating"] < 1
    assert math.isfinite(run.test["ndcg@10"])
    fixed = _built(ml100k_slice)
    assert not hasattr(fixed.model, "task_log_var")
    assert fixed.model.task_weights() == {"rank": 1.0, "rating": 1.0}


def test_rating_only_ranks_by_predicted_rating(ml100k_slice, fusion_content):
    run = _train(ml100k_slice, epochs=2, rank_weight=0.0)
    model = run.model
    assert model.ranks_by_rating
    batch = next(iter(run.test_data))[0]
    users = batch[model.USER_ID]
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(batch).view(len(users), -1)
        n_items = scores.shape[1]
        pairs_u = users.repeat_interleave(n_items)
        pairs_i = torch.arange(n_items).repeat(len(users))
        ratings = model.predict_rating(pairs_u, pairs_i, clip=False).view(len(users), -1)
        torch.testing.assert_close(scores, ratings, rtol=1e-5, atol=1e-5)
        point = model.predict(Interaction({model.USER_ID: pairs_u[:50], model.ITEM_ID: pairs_i[:50]}))
        torch.testing.assert_close(point, ratings.view(-1)[:50], rtol=1e-5, atol=1e-5)
        cosine = M6Fusion.full_sort_predict(model, batch).view(len(users), -1)  # the ranking head's scores
    assert not torch.allclose(scores, cosine)  # not the ranking head's cosine
    assert scores[:, 1:].std(dim=1).min() > 1e-3  # items are told apart by rating
    rating = multitask.rating_metrics(run)["rating"]
    assert math.isfinite(rating["rmse"]) and math.isfinite(rating["mae"])
    # a ranking-only row (rating weight 0) has an untrained head: it reports no RMSE
    ranking_only = _built(ml100k_slice, rating_weight=0.0)
    assert multitask.rating_metrics(CellRun(model=ranking_only.model, test_data=ranking_only.test_data)) == {}


def test_dataset_without_ratings_is_a_clear_error(ml100k_slice, tmp_path, fusion_content):
    name = "ml-100k-norating"
    folder = tmp_path / name
    folder.mkdir()
    for src in ml100k_slice.folder.iterdir():
        if src.name.startswith(ml100k_slice.name + "."):
            shutil.copy(src, folder / (name + src.name[len(ml100k_slice.name):]))
    inter = folder / f"{name}.inter"
    lines = inter.read_text(encoding="utf-8").splitlines()
    col = [h.split(":")[0] for h in lines[0].split("\t")].index("rating")
    kept = ["\t".join(f for k, f in enumerate(line.split("\t")) if k != col) for line in lines]
    inter.write_text("\n".join(kept) + "\n", encoding="utf-8")
    ds = replace(ml100k_slice, name=name, root=tmp_path, checksum=checksum_of(folder, name))
    with pytest.raises(DataError, match="no rating column 'rating'.*use M6-Fusion"):
        run_cell(CellSpec(dataset=name, model=NAME, epochs=1), prepared=ds)
    assert fusion_content["kg"] == 0  # refused before any content vector is loaded
