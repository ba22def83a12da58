"""M6-Adapt: a frozen pretrained backbone stays bit-identical, adapters learn, pretraining is cached.

Content vectors are the cheap stand-ins of the ``fusion_content`` fixture; pretraining runs 2
epochs on the source users of a 150-user slice of ml-100k.
"""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

import m6rec_plugins.adapters as adapters
from m6rec_bench.engine.cell import CellSpec, build_config_dict, run_cell, train_and_evaluate
from m6rec_bench.errors import UsageError
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol

NAME = "M6-Adapt"
PROTOCOL = get_protocol("user-group")


def _run(ds, seed: int = 2020, epochs: int = 2, protocol=PROTOCOL, **overrides):
    entry = registry.get(NAME)
    spec = CellSpec(dataset=ds.name, model=NAME, protocol=protocol.name, seed=seed, epochs=epochs,
                    overrides={"pretrain_epochs": 2, **overrides})
    split, extra = protocol.prepare(ds, seed)
    return train_and_evaluate(entry, split, build_config_dict(spec, entry, protocol, ds, extra))


def test_plugin_declares_modes_and_ablations():
    plugin = registry.plugins()[NAME]
    assert plugin is adapters.plugin and not plugin.in_default_suite
    assert plugin.ablations == {"full fine-tune": {"mode": "full"}, "scratch": {"mode": "scratch"}}
    assert plugin.default_config().mode == "adapter"
    for overrides in plugin.ablations.values():
        plugin.config_cls(**overrides)
    with pytest.raises(ValueError):
        plugin.config_cls(mode="prefix")
    for cite in ("2205.08084", "Houlsby", "LoRA"):
        assert cite in adapters.__doc__


def test_adapter_training_leaves_the_backbone_bit_identical(ml100k_slice, fusion_content):
    run = _run(ml100k_slice, mode="adapter", learning_rate=0.01)
    model = run.model
    cached = load_file(str(model.pretrained_path))
    state = model.backbone_state()
    assert set(state) == set(cached) and len(cached) > 5
    for name, tensor in cached.items():
        assert torch.equal(state[name].cpu(), tensor), f"frozen backbone tensor {name} changed"
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith("backbone.") and "lora_" not in n for n in frozen)
    # the adapters did learn: zero-initialised LoRA B factors and adapter up-projection moved
    lora_b = [p for n, p in model.named_parameters() if n.endswith("lora_B")]
    assert len(lora_b) == 5  # 2 layers per content tower (KG, text) + the user projection
    assert all(p.abs().sum() > 0 for p in lora_b)
    assert model.adapter.up.weight.abs().sum() > 0
    assert all(math.isfinite(v) for v in run.test.values()) and run.test["hit@20"] > 0


def test_full_fine_tuning_moves_the_pretrained_backbone(ml100k_slice, fusion_content):
    """The counterpart of the frozen check: the same comparison fails when the backbone trains."""
    run = _run(ml100k_slice, mode="full")
    cached = load_file(str(run.model.pretrained_path))
    state = run.model.backbone_state()
    assert set(state) == set(cached)
    assert not torch.equal(state["item_embedding.weight"], cached["item_embedding.weight"])
    assert not torch.equal(state["user_proj.weight"], cached["user_proj.weight"])


def test_trainable_share_and_adaptation_columns(ml100k_slice, fusion_content):
    shares = {}
    for mode in ("adapter", "full", "scratch"):
        rec = run_cell(CellSpec(dataset=ml100k_slice.name, model=NAME, protocol="user-group", epochs=1,
                                overrides={"mode": mode, "pretrain_epochs": 2}), prepared=ml100k_slice)
        assert rec.status == "ok", rec.reason
        group = rec.extra_metrics["adaptation"]
        assert set(group) == {"trainable_share", "adapt_time_s", "pretrain_time_s"}
        assert group["adapt_time_s"] == pytest.approx(rec.train_time_s, abs=1e-3)
        shares[mode] = group["trainable_share"]
        if mode == "scratch":
            assert group["pretrain_time_s"] == 0.0
        else:
            assert group["pretrain_time_s"] > 0
    assert 0 < shares["adapter"] < 0.05
    assert shares["full"] == shares["scratch"] == 1.0


def test_pretraining_is_cached_and_shared_by_the_modes(ml100k_slice, fusion_content, monkeypatch):
    calls = []
    real = adapters.pretrain_backbone

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(adapters, "pretrain_backbone", counting)
    first = _run(ml100k_slice, seed=7, epochs=1, mode="adapter").model  # a seed no other test pretrains
    assert calls == [1] and not first.pretrained_reused
    second = _run(ml100k_slice, seed=7, epochs=1, mode="full").model
    assert calls == [1] and second.pretrained_reused
    assert second.pretrained_path == first.pretrained_path
    assert second.pretrain_time_s == first.pretrain_time_s > 0  # read back from the cache's metadata
    _run(ml100k_slice, seed=7, epochs=1, mode="adapter", pretrain_epochs=3)  # another backbone: retrains
    assert calls == [1, 1]
    scratch = _run(ml100k_slice, seed=7, epochs=1, mode="scratch").model
    assert calls == [1, 1] and scratch.pretrained_path is None


def test_same_seed_same_scores_whether_pretraining_was_cached_or_not(ml100k_slice, fusion_content):
    """A cache miss (pretraining in the cell) and a hit give the very same model: isolated RNGs."""
    scores = []
    for _ in range(2):
        run = _run(ml100k_slice, seed=11, epochs=1, mode="adapter")
        batch = next(iter(run.test_data))[0]
        run.model.eval()
        with torch.no_grad():
            scores.append(run.model.full_sort_predict(batch))
    assert torch.equal(scores[0], scores[1])


def test_wrong_protocol_is_refused(ml100k_slice, fusion_content):
    with pytest.raises(UsageError, match="--protocol user-group"):
        run_cell(CellSpec(dataset=ml100k_slice.name, model=NAME, protocol="default", epochs=1),
                 prepared=ml100k_slice)
