"""``m6bench serve``: real models trained on the ml-100k slice, served by a really started uvicorn,
queried over HTTP (http.client on 127.0.0.1).

M6-Fusion uses cheap content stand-ins (hashed bag of words, as in tests/plugins/test_fusion.py),
patched in while it trains *and* while it loads: an artifact is rebuilt through the model's
constructor, which reads the content vectors again.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from m6rec_bench import artifacts
from m6rec_bench.cli import app as cli_app
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.results.store import RecordStore
from stand_ins import content_stand_ins, fake_text

MODELS = ("M6-Fusion", "BPR", "ItemKNN")
FOLD_IN = ("M6-Fusion", "ItemKNN")


class Server:
    """uvicorn serving ``app`` in a thread, on a socket bound before it starts (no port race)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def call(port: int, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    """One HTTP request to 127.0.0.1:port; (status, parsed JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        assert resp.getheader("Content-Type", "").startswith("application/json"), payload[:200]
        return resp.status, json.loads(payload)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(ml100k_slice, tmp_path_factory) -> Iterator[dict[str, tuple[Any, Server, Path]]]:
    """M6-Fusion, BPR and ItemKNN trained for 2 epochs, loaded from their artifacts and served."""
    from m6rec_bench.serve.app import create_app

    store = RecordStore(tmp_path_factory.mktemp("runs"))
    out: dict[str, tuple[Any, Server, Path]] = {}
    torch.set_num_threads(1)
    try:
        for model in MODELS:
            with content_stand_ins():
                rec = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model=model, epochs=2), store=store,
                               resume=False, prepared=ml100k_slice)
                assert rec.status == "ok", rec.reason
                path = store.path_for(rec)
                loaded = artifacts.load(path, prepared=ml100k_slice)
            out[model] = (loaded, Server(create_app(loaded)), path)
        yield out
    finally:
        for _, server, _ in out.values():
            server.stop()


def _reference_top(loaded: Any, uid: int, k: int, extra_excluded: list[int] = ()) -> tuple[list[str], np.ndarray]:
    """The model's own full_sort_predict ranking of user ``uid``: training items and padding masked,
    score descending, ties by smaller internal id."""
    from recbole.data.interaction import Interaction

    ds = loaded.dataset
    with torch.no_grad():
        scores = loaded.model.full_sort_predict(Interaction({ds.uid_field: torch.tensor([uid])})).view(-1).numpy().copy()
    train = loaded.train_data._dataset.inter_feat
    history = train[ds.iid_field][train[ds.uid_field] == uid].numpy()
    scores[0] = -np.inf
    scores[history] = -np.inf
    scores[list(extra_excluded)] = -np.inf
    ids = np.arange(len(scores))
    order = np.lexsort((ids, -scores))[:k]
    return [loaded.items[i] for i in order], scores


@pytest.mark.parametrize("model", MODELS)
def test_health_names_model_record_and_sizes(served, model):
    loaded, server, path = served[model]
    status, body = call(server.port, "GET", "/health")
    assert status == 200
    assert body["model"] == model and body["record"] == str(path) and body["cell_id"] == loaded.record.cell_id
    assert body["n_users"] == len(loaded.users) - 1 == 150 and body["n_items"] == len(loaded.items) - 1
    assert body["fold_in"] is (model in FOLD_IN)
    assert "M6-Fusion" in body["fold_in_models"] and any("ItemKNN" in m for m in body["fold_in_models"])


@pytest.mark.parametrize("model", MODELS)
def test_known_user_gets_the_models_own_ranking_without_history(served, model):
    loaded, server, _ = served[model]
    for uid in (1, 2, 3, 7):
        token = loaded.users[uid]
        expected, scores = _reference_top(loaded, uid, 10)
        status, body = call(server.port, "GET", f"/users/{token}/recommendations?k=10")
        assert status == 200, body
        got = [it["item_id"] for it in body["items"]]
        assert got == expected
        np.testing.assert_allclose([it["score"] for it in body["items"]],
                                   [scores[loaded.dataset.field2token_id[loaded.dataset.iid_field][t]] for t in got], rtol=1e-5)
        assert body["user_id"] == token and body["k"] == 10 and body["folded_in"] is False
        assert body["n_excluded"] == len(loaded.train_history()[uid])
    status, body = call(server.port, "GET", f"/users/{loaded.users[1]}/recommendations?k=3")
    assert [it["item_id"] for it in body["items"]] == _reference_top(loaded, 1, 3)[0]


def _fold_in_reference(loaded: Any, model: str, items: list[int], k: int) -> list[str]:
    """The documented fold-in rule, computed from the model's own tensors."""
    if model == "ItemKNN":
        scores = np.asarray(loaded.model.w.toarray()[items].sum(axis=0), dtype=np.float32).ravel()
    else:
        with torch.no_grad():
            _, vecs = loaded.model._all_vectors()
            u = torch.nn.functional.normalize(torch.nn.functional.normalize(vecs[items], dim=1).sum(0), dim=0)
            scores = (vecs @ u).numpy()
    scores = scores.copy()
    scores[0] = -np.inf
    scores[items] = -np.inf
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return [loaded.items[i] for i in order]


@pytest.mark.parametrize("model", FOLD_IN)
def test_anonymous_list_is_folded_in_deterministically(served, model):
    loaded, server, _ = served[model]
    ids = [int(i) for i in loaded.train_history()[20][:6]]
    tokens = [loaded.items[i] for i in ids]
    status, body = call(server.port, "POST", "/recommendations", {"items": tokens, "k": 10})
    assert status == 200, body
    got = [it["item_id"] for it in body["items"]]
    assert len(got) == 10 and not set(got) & set(tokens)
    assert body["user_id"] is None and body["folded_in"] is True and body["n_excluded"] == len(tokens)
    assert got == _fold_in_reference(loaded, model, ids, 10)
    assert call(server.port, "POST", "/recommendations", {"items": tokens, "k": 10})[1] == body  # deterministic
    ints = call(server.port, "POST", "/recommendations", {"items": [int(t) for t in tokens] + [tokens[0]], "k": 10})[1]
    assert ints == body  # numeric ids and duplicates are the same list
    other = [loaded.items[int(i)] for i in loaded.train_history()[40][:6]]
    assert [it["item_id"] for it in call(server.port, "POST", "/recommendations", {"items": other})[1]["items"]] != got


def test_itemknn_list_of_a_users_history_is_that_user(served):
    """ItemKNN scores a user with r_u W, so folding in a user's whole history gives their own answer."""
    loaded, server, _ = served["ItemKNN"]
    uid = 30
    history = [loaded.items[int(i)] for i in loaded.train_history()[uid]]
    by_list = call(server.port, "POST", "/recommendations", {"items": history, "k": 10})[1]["items"]
    by_user = call(server.port, "GET", f"/users/{loaded.users[uid]}/recommendations")[1]["items"]
    assert [i["item_id"] for i in by_list] == [i["item_id"] for i in by_user]
    np.testing.assert_allclose([i["score"] for i in by_list], [i["score"] for i in by_user], rtol=1e-5)


@pytest.mark.parametrize("model", MODELS)
def test_posted_interactions_change_the_next_answer(served, model):
    loaded, server, _ = served[model]
    uid = 50
    token = loaded.users[uid]
    before = [it["item_id"] for it in call(server.port, "GET", f"/users/{token}/recommendations?k=10")[1]["items"]]
    seen = loaded.items[int(loaded.train_history()[uid][0])]
    status, body = call(server.port, "POST", f"/users/{token}/interactions", {"items": before[:3] + [seen]})
    assert status == 200, body
    assert body["added"] == before[:3] and body["already_known"] == [seen] and body["n_added"] == 3
    assert body["folded_in"] is (model in FOLD_IN)
    status, after = call(server.port, "GET", f"/users/{token}/recommendations?k=10")
    got = [it["item_id"] for it in after["items"]]
    assert status == 200 and got != before and not set(got) & set(before[:3])
    assert after["folded_in"] is (model in FOLD_IN)
    assert after["n_excluded"] == len(loaded.train_history()[uid]) + 3
    if model == "BPR":  # no fold-in: the same ranking with the posted items left out
        iid = loaded.dataset.field2token_id[loaded.dataset.iid_field]
        assert got == _reference_top(loaded, uid, 10, [iid[t] for t in before[:3]])[0]
    again = call(server.port, "POST", f"/users/{token}/interactions", {"items": before[:1]})[1]
    assert again["added"] == [] and again["already_known"] == before[:1] and again["n_added"] == 3
    for k in (10, 50):
        items = call(server.port, "GET", f"/users/{token}/recommendations?k={k}")[1]["items"]
        assert not {it["item_id"] for it in items} & set(before[:3])


def test_fold_in_moves_the_user_toward_posted_items(served):
    """M6-Fusion: the user vector after posting items is closer to them than the trained one (the rule
    u' = normalise(n_u * u/|u| + sum f_j)); ItemKNN: the posted items' similarity rows are added."""
    loaded, server, _ = served["M6-Fusion"]
    scorer = server.server.config.app.state.recommender.scorer
    uid = 60
    token = loaded.users[uid]
    posted = [int(i) for i in loaded.train_history()[70][:15]]
    call(server.port, "POST", f"/users/{token}/interactions", {"items": [loaded.items[i] for i in posted]})
    new = [i for i in posted if i not in set(loaded.train_history()[uid].tolist())]
    direction = torch.nn.functional.normalize(scorer.fold[new].sum(0), dim=0)
    trained = torch.nn.functional.normalize(scorer.users[uid], dim=0)
    moved = scorer.user_vector(uid, new)
    assert float(moved @ direction) > float(trained @ direction) + 1e-3
    n = len(loaded.train_history()[uid])
    expected = torch.nn.functional.normalize(n * trained + scorer.fold[new].sum(0), dim=0)
    torch.testing.assert_close(moved, expected)
    body = call(server.port, "GET", f"/users/{token}/recommendations?k=10")[1]
    scores = (scorer.items @ moved).numpy()
    assert [it["score"] for it in body["items"]] == pytest.approx([float(scores[loaded.dataset.field2token_id[
        loaded.dataset.iid_field][it["item_id"]]]) for it in body["items"]], rel=1e-5)

    loaded, server, _ = served["ItemKNN"]
    token = loaded.users[uid]
    add = [int(i) for i in loaded.train_history()[70][:3] if int(i) not in set(loaded.train_history()[uid].tolist())]
    call(server.port, "POST", f"/users/{token}/interactions", {"items": [loaded.items[i] for i in add]})
    body = call(server.port, "GET", f"/users/{token}/recommendations?k=5")[1]
    expected = loaded.model.pred_mat.toarray()[uid] + loaded.model.w.toarray()[add].sum(axis=0)
    iid = loaded.dataset.field2token_id[loaded.dataset.iid_field]
    assert [it["score"] for it in body["items"]] == pytest.approx([float(expected[iid[it["item_id"]]]) for it in body["items"]], rel=1e-5)


def _bad_requests(users: list[str], item: str) -> list[tuple[str, str, Any, bytes | None, int, str]]:
    u = users[1]
    return [
        ("GET", "/users/no-such-user/recommendations", None, None, 404, "unknown_user"),
        ("POST", "/users/no-such-user/interactions", {"items": [item]}, None, 404, "unknown_user"),
        ("GET", f"/users/{u}/recommendations?k=0", None, None, 422, "invalid_request"),
        ("GET", f"/users/{u}/recommendations?k=100000", None, None, 422, "invalid_request"),
        ("GET", f"/users/{u}/recommendations?k=ten", None, None, 422, "invalid_request"),
        ("POST", f"/users/{u}/interactions", {"items": [item, "no-such-item", "nor-this"]}, None, 422, "unknown_items"),
        ("POST", f"/users/{u}/interactions", {"items": []}, None, 422, "invalid_request"),
        ("POST", f"/users/{u}/interactions", None, b"{not json", 422, "invalid_request"),
        ("POST", "/recommendations", {"items": [item], "k": 0}, None, 422, "invalid_request"),
        ("POST", "/recommendations", {"items": [item], "k": 5000}, None, 422, "invalid_request"),
        ("POST", "/recommendations", {"items": item}, None, 422, "invalid_request"),
        ("POST", "/recommendations", {"items": [1.5, None]}, None, 422, "invalid_request"),
        ("POST", "/recommendations", {"itmes": [item]}, None, 422, "invalid_request"),
        ("POST", "/recommendations", None, b"", 422, "invalid_request"),
        ("POST", "/recommendations", None, b"[1, 2", 422, "invalid_request"),
    ]


@pytest.mark.parametrize("model", ["M6-Fusion", "BPR"])
def test_bad_input_gets_a_json_4xx_never_a_500(served, model):
    loaded, server, _ = served[model]
    item = loaded.items[5]
    cases = _bad_requests(loaded.users, item)
    if model == "M6-Fusion":
        cases.append(("POST", "/recommendations", {"items": ["no-such-item", item]}, None, 422, "unknown_items"))
    else:
        cases.append(("POST", "/recommendations", {"items": [item]}, None, 400, "fold_in_unsupported"))
    for method, path, body, raw, status, code in cases:
        got_status, got = call(server.port, method, path, body, raw)
        assert (got_status, got["error"]) == (status, code), (method, path, body, raw, got)
        assert isinstance(got["detail"], str) and got["detail"] and "Traceback" not in got["detail"]
    status, body = call(server.port, "GET", "/users/no-such-user/recommendations")
    assert "no-such-user" in body["detail"] and "POST their items to /recommendations" in body["detail"]
    status, body = call(server.port, "POST", f"/users/{loaded.users[1]}/interactions",
                        {"items": [item, "no-such-item", "nor-this"]})
    assert body["unknown_items"] == ["no-such-item", "nor-this"] and "'no-such-item', 'nor-this'" in body["detail"]
    status, body = call(server.port, "GET", f"/users/{loaded.users[1]}/recommendations?k=0")
    assert body["errors"][0]["loc"] == ["query", "k"] and "query.k" in body["detail"]
    if model == "BPR":
        status, body = call(server.port, "POST", "/recommendations", {"items": [item]})
        assert "BPR cannot fold in" in body["detail"] and "M6-Fusion" in body["fold_in_models"]
        assert any("ItemKNN" in m for m in body["fold_in_models"])
    assert call(server.port, "GET", "/health")[0] == 200  # still serving


def test_k_beyond_the_catalogue_is_refused(served):
    from m6rec_bench.serve.scoring import KOutOfRange, Recommender

    loaded, _, _ = served["BPR"]
    rec = Recommender(loaded)
    rec.max_k = 20  # as for a catalogue of 20 items
    with pytest.raises(KOutOfRange, match="between 1 and 20"):
        rec.recommend_user(loaded.users[1], 21)
    assert len(rec.recommend_user(loaded.users[1], 20).items) == 20


def test_openapi_schema_documents_bodies_answers_and_errors(served):
    _, server, _ = served["M6-Fusion"]
    status, spec = call(server.port, "GET", "/openapi.json")
    assert status == 200 and spec["info"]["title"] == "m6rec-bench: M6-Fusion"
    paths = spec["paths"]
    assert set(paths) >= {"/health", "/users/{user_id}/recommendations", "/recommendations", "/users/{user_id}/interactions"}
    post = paths["/recommendations"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ItemsQuery")
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Recommendations")
    assert {"400", "422"} <= set(post["responses"])
    get = paths["/users/{user_id}/recommendations"]["get"]
    assert get["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    k = next(p for p in get["parameters"] if p["name"] == "k")
    assert k["schema"]["minimum"] == 1 and k["schema"]["maximum"] == 1000 and k["schema"]["default"] == 10
    schemas = spec["components"]["schemas"]
    assert schemas["ItemsQuery"]["additionalProperties"] is False
    assert {"items", "k"} <= set(schemas["ItemsQuery"]["properties"]) and schemas["ItemsQuery"]["required"] == ["items"]
    assert {"item_id", "score"} <= set(schemas["ScoredItem"]["properties"])
    assert {"n_users", "n_items", "fold_in", "record"} <= set(schemas["Health"]["properties"])


runner = CliRunner()


def test_serve_help_names_the_endpoints():
    result = runner.invoke(cli_app, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for text in ("--model", "--dataset", "--protocol", "--seed", "--runs-dir", "--host", "--port",
                 "/users/{user_id}/recommendations", "POST /recommendations", "/health"):
        assert text in result.output


def test_serve_bad_input_is_one_line_exit_2(served, ml100k_slice, tmp_path):
    _, server, path = served["BPR"]
    cases = [
        (["--model", "BPR", "--dataset", str(ml100k_slice.folder), "--runs-dir", str(tmp_path)], "no trained 'BPR'"),
        (["--model", str(tmp_path / "missing.json")], "does not exist"),
        (["--model", "BPR", "--dataset", "movielns"], "did you mean 'movielens'"),
        (["--model", str(path), "--port", str(server.port)], f"port {server.port} on 127.0.0.1 is in use — pick another with --port"),
    ]
    for args, message in cases:
        result = runner.invoke(cli_app, ["serve", *args], terminal_width=300)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_m6bench_serve_command_answers_like_the_app(served, ml100k_slice):
    """The real command in a subprocess, given the runs dir and a model name; SIGINT stops it cleanly."""
    loaded, server, path = served["BPR"]
    runs_dir = path.parents[3]
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "m6rec_bench", "serve", "--model", "BPR", "--dataset",
                             str(ml100k_slice.folder), "--runs-dir", str(runs_dir), "--port", str(port), "--no-access-log"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, health = call(port, "GET", "/health")
                break
            except (ConnectionRefusedError, http.client.RemoteDisconnected):
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "m6bench serve did not come up"
                time.sleep(0.25)
        assert status == 200 and health["record"].endswith(path.name)
        user = loaded.users[9]
        assert call(port, "GET", f"/users/{user}/recommendations")[1] == call(server.port, "GET", f"/users/{user}/recommendations")[1]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "serving BPR seed 2020 (150 users" in out and f"http://127.0.0.1:{port}/docs" in out


@pytest.fixture(scope="module")
def text_models(ml100k_slice, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Text-ZeroShot and Text-Tower (2 epochs) with a hashed stand-in for the MiniLM text vectors."""

    store = RecordStore(tmp_path_factory.mktemp("text-runs"))
    out = {}
    with content_stand_ins():
        for model in ("Text-ZeroShot", "Text-Tower"):
            rec = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model=model, epochs=2), store=store,
                           resume=False, prepared=ml100k_slice)
            assert rec.status == "ok", rec.reason
            out[model] = artifacts.load(store.path_for(rec), prepared=ml100k_slice)
        yield out


@pytest.mark.slow
def test_text_zeroshot_user_is_the_mean_text_vector_of_history_and_posted_items(text_models):
    from m6rec_bench.serve.scoring import Recommender

    loaded = text_models["Text-ZeroShot"]
    rec = Recommender(loaded)
    assert rec.scorer.can_fold_in
    uid = 11
    token, history = loaded.users[uid], [int(i) for i in loaded.train_history()[uid]]
    assert rec.recommend_user(token).items == _reference_top(loaded, uid, 10)[0]
    # a list of the user's whole history is that user
    assert rec.recommend_items([loaded.items[i] for i in history]).items == rec.recommend_user(token).items
    text = torch.from_numpy(fake_text(loaded.config, loaded.train_data._dataset))
    posted = [int(i) for i in loaded.train_history()[12][:5] if int(i) not in set(history)]
    rec.add_interactions(token, [loaded.items[i] for i in posted])
    expected = torch.nn.functional.normalize(text[history + posted].sum(0), dim=0)
    torch.testing.assert_close(rec.scorer.user_vector(uid, posted), expected)
    scores = (torch.nn.functional.normalize(text, dim=1) @ expected).numpy()
    scores[[0, *history, *posted]] = -np.inf
    assert rec.recommend_user(token).items == [loaded.items[i] for i in np.lexsort((np.arange(len(scores)), -scores))[:10]]


@pytest.mark.slow
def test_text_tower_serves_its_ranking_and_folds_in(text_models):
    from m6rec_bench.serve.scoring import Recommender

    loaded = text_models["Text-Tower"]
    rec = Recommender(loaded)
    assert rec.scorer.can_fold_in
    for uid in (3, 4):
        assert rec.recommend_user(loaded.users[uid]).items == _reference_top(loaded, uid, 10)[0]
    items = [loaded.items[int(i)] for i in loaded.train_history()[5][:4]]
    with torch.no_grad():
        vecs = loaded.model.item_vectors()
    ids = [loaded.dataset.field2token_id[loaded.dataset.iid_field][t] for t in items]
    u = torch.nn.functional.normalize(torch.nn.functional.normalize(vecs[ids], dim=1).sum(0), dim=0)
    scores = (vecs @ u).numpy()
    scores[[0, *ids]] = -np.inf
    assert rec.recommend_items(items).items == [loaded.items[i] for i in np.lexsort((np.arange(len(scores)), -scores))[:10]]
