"""Compression: int8 and magnitude pruning of trained plugin models, as rows of the leaderboard."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from m6rec_bench import artifacts, compress
from m6rec_bench.cli import app
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.errors import UsageError
from m6rec_bench.results.store import RecordStore


def test_parse_methods():
    assert compress.parse("int8").name == "int8"
    assert compress.parse(" Prune:0.25 ") == compress.Method("prune", 0.25)
    for bad, why in (("int4", "not a compression method"), ("prune:1.5", "between 0 and 1"),
                     ("prune:x", "between 0 and 1"), ("prune", "not a compression method")):
        with pytest.raises(UsageError, match=why):
            compress.parse(bad)


@pytest.fixture(scope="module")
def loaded(ml100k_slice, tmp_path_factory):
    """M6-Fusion trained for 2 epochs on the slice (stand-in content), loaded back from its artifact."""
    from stand_ins import content_stand_ins

    store = RecordStore(tmp_path_factory.mktemp("runs"))
    with content_stand_ins():
        rec = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model="M6-Fusion", epochs=2), store=store,
                       resume=False, prepared=ml100k_slice)
        assert rec.status == "ok", rec.reason
        yield artifacts.load(store.path_for(rec), prepared=ml100k_slice)


def test_int8_quantizes_layers_and_tables(loaded):
    small = compress.apply(loaded.model, compress.parse("int8"))
    qlinear = torch.ao.nn.quantized.dynamic.Linear
    assert not any(isinstance(m, nn.Linear) for m in small.modules())
    assert sum(isinstance(m, qlinear) for m in small.modules()) == sum(isinstance(m, nn.Linear) for m in loaded.model.modules())
    # every embedding row and content-table row holds at most 255 levels: int8 times one scale
    for table in (small.item_embedding.weight, small.towers["text"].table):
        for row in table[1:50]:
            assert len(torch.unique(row)) <= 255
            codes, scale = compress._int8_rows(row.unsqueeze(0))
            torch.testing.assert_close(codes.float() * scale, row.unsqueeze(0), rtol=0, atol=1e-6)
    assert loaded.model.item_embedding.weight.dtype == torch.float32  # the original is untouched
    assert len(torch.unique(loaded.model.item_embedding.weight[1])) > 60
    base, size = compress.model_bytes(loaded.model), compress.model_bytes(small)
    assert size < 0.35 * base  # int8 values + one scale per row, against float32
    with torch.no_grad():
        batch = next(iter(loaded.test_data))[0]
        a, b = loaded.model.full_sort_predict(batch), small.full_sort_predict(batch)
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.99  # the same ranking function, rounded


def test_pruning_zeroes_the_smallest_weights(loaded):
    small = compress.apply(loaded.model, compress.parse("prune:0.7"))
    weights = [m.weight for m in small.modules() if isinstance(m, nn.Linear | nn.Embedding)]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == pytest.approx(0.7 * total, abs=0.01 * total)
    orig = [m.weight for m in loaded.model.modules() if isinstance(m, nn.Linear | nn.Embedding)]
    cut = max(float(o.detach()[w == 0].abs().max()) for o, w in zip(orig, weights) if (w == 0).any())
    kept = min(float(w.detach()[w != 0].abs().min()) for w in weights if (w != 0).any())
    assert cut <= kept  # global magnitude: nothing kept is smaller than anything removed
    assert compress.nonzero_params(small) < compress.nonzero_params(loaded.model)
    assert compress.model_bytes(small) < compress.model_bytes(loaded.model)


def test_nothing_to_prune_is_a_clear_error():
    with pytest.raises(UsageError, match="no Linear or Embedding weights to prune"):
        compress.prune_magnitude(nn.Sequential(nn.ReLU()), 0.5)


def test_run_compress_adds_rows_and_trains_once(ml100k_slice, fusion_content, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "lb"
    args = ["run", "-d", str(ml100k_slice.folder), "-m", "M6-Fusion,BPR", "--epochs", "2",
            "--compress", "int8,prune:0.5", "--runs-dir", str(runs), "-o", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "M6-Fusion [int8] seed 2020: test NDCG@10" in res.output  # a label, not rich markup
    store = RecordStore(runs)
    recs = {r.label: r for r in store.records()}
    assert set(recs) == {"M6-Fusion", "M6-Fusion [int8]", "M6-Fusion [prune:0.5]", "BPR"}  # baselines stay as they are
    twin = recs["M6-Fusion"]
    assert fusion_content["text"] == 3  # trained once; each compressed cell only loads the artifact
    for label in ("M6-Fusion [int8]", "M6-Fusion [prune:0.5]"):
        rec = recs[label]
        c = rec.extra_metrics["compression"]
        assert rec.status == "ok" and rec.train_time_s == twin.train_time_s
        assert c["size_mb"] < c["base_size_mb"] and c["users_per_s"] > 0 and c["base_users_per_s"] > 0
        assert c["ndcg@10_delta"] == pytest.approx(rec.test["ndcg@10"] - twin.test["ndcg@10"])
        assert rec.per_user["users"] == twin.per_user["users"]
        assert rec.run is not None and (rec.run.variant, rec.run.method) == ("compress", label.split("[")[1][:-1])
        old = rec.model_copy(update={"run": None, "config": {**rec.config, "m6_compress": rec.run.method}})
        assert "m6_compress" not in rec.config and old.options == rec.run  # an older record derives the same
    board = next(out.rglob("leaderboard.md")).read_text()
    assert "Size MB" in board and "| M6-Fusion [int8] |" in board
    table = [[c.strip() for c in line.split("|")] for line in board.splitlines() if line.startswith("| ")]
    size_col = table[0].index("Size MB")
    fusion_row = next(row for row in table if row[2] == "M6-Fusion")
    assert float(fusion_row[size_col]) > 0  # the uncompressed row shows the size its twins measured it at
    data = json.loads(next(out.rglob("leaderboard.json")).read_text())
    cmd = {r["label"]: r["reproduce"]["command"] for r in data["rows"]}
    assert cmd["M6-Fusion [int8]"].endswith("--compress int8")
    # resumed: nothing is trained or compressed again
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "0 failed" in again.output and fusion_content["text"] == 3


def test_bad_compress_value_exits_2(ml100k_slice, tmp_path):
    res = CliRunner().invoke(app, ["run", "-d", str(ml100k_slice.folder), "-m", "BPR", "--compress", "int3",
                                   "--runs-dir", str(tmp_path / "runs"), "-o", str(tmp_path / "lb")])
    assert res.exit_code == 2 and "int8 or prune:<ratio>" in res.output
    assert not (tmp_path / "lb").exists()  # refused before anything ran
