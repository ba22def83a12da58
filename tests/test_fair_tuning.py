"""Fair tuning: the defaults are trial 0, multi-fidelity pruning on epochs, comparable spaces, compute counted.

The slice tests run 2–3 BPR trials of at most 2 epochs; the rest only probe the spaces.
"""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from m6rec_bench.errors import M6BenchError
from m6rec_bench.models import registry
from m6rec_bench.tuning import open_storage, search_space, tune
from m6rec_bench.tuning.spaces import default_params, model_defaults, probe
from m6rec_bench.tuning.study import DEFAULT_ATTR, default_pruner

FAST = {"eval_batch_size": 1_000_000}


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def _trials(result):
    study = optuna.load_study(study_name=result.study_name, storage=open_storage(result.storage).backend)
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def test_every_models_defaults_lie_in_its_space():
    """Walk every registered model (baseline or plugin): each dimension of its space holds its default."""
    checked = 0
    for entry in registry.all_models():
        space = search_space(entry)
        if space is None:
            continue
        params = default_params(entry, space)  # raises, naming the dimension, when a default is outside
        probed = probe(space)
        assert probed is not None, entry.name
        dims = probed[1]
        assert set(params) == set(dims), entry.name
        for name, value in params.items():
            assert dims[name].contains(value), (entry.name, name, value)
        checked += 1
    assert checked > 20


def test_a_default_outside_the_space_is_refused():
    bpr = registry.get("BPR")

    def narrow(trial):
        return {"learning_rate": trial.suggest_categorical("learning_rate", [0.05, 0.1])}

    with pytest.raises(ValueError, match=r"learning_rate default 0\.001 is outside \{0\.05, 0\.1\}"):
        default_params(bpr, narrow)


def test_the_defaults_are_the_untuned_configuration():
    """Trial 0 is what an untuned cell trains with: RecBole's yaml for baselines, the config for plugins."""
    assert default_params(registry.get("BPR")) == {"learning_rate": 0.001, "embedding_size": 64}
    assert default_params(registry.get("NeuMF"))["mlp_hidden_size"] == "128,64"  # list settings as Optuna strings
    kg = registry.get("KG-TransE")
    assert default_params(kg)["reg_weight"] == model_defaults(kg)["reg_weight"] == 0.0


@pytest.mark.parametrize(("baseline", "plugin"), [("LightGCN", "GNN-LightGCN"), ("NGCF", "GNN-NGCF")])
def test_two_implementations_of_one_model_share_one_space(baseline, plugin):
    a, b = probe(search_space(registry.get(baseline))), probe(search_space(registry.get(plugin)))
    assert a is not None and b is not None
    assert a[1] == b[1]


def test_bpr_trained_plugins_share_bprs_grids():
    """KG-TransE and Text-Tower are BPR-trained: their learning rate and embedding size are BPR's grid."""
    bpr = probe(search_space(registry.get("BPR")))[1]
    for name in ("KG-TransE", "Text-Tower"):
        dims = probe(search_space(registry.get(name)))[1]
        for shared in ("learning_rate", "embedding_size"):
            assert dims[shared] == bpr[shared], (name, shared)
        assert dims["reg_weight"] == probe(search_space(registry.get("KG-TransE")))[1]["reg_weight"]


def test_the_default_pruner_is_hyperband_on_epochs():
    assert isinstance(default_pruner(30), optuna.pruners.HyperbandPruner)


def test_tuned_bpr_is_at_least_its_defaults_on_validation(ml100k_slice, tmp_path):
    res = tune("BPR", ml100k_slice, n_trials=3, epochs=2, overrides=FAST, runs_dir=tmp_path)
    trials = _trials(res)
    assert trials[0].params == {"learning_rate": 0.001, "embedding_size": 64}
    assert trials[0].user_attrs[DEFAULT_ATTR] is True and trials[0].state == TrialState.COMPLETE
    assert res.default_trial == 0 and res.default_value == trials[0].value
    assert res.best_value is not None and res.best_value >= res.default_value
    # the compute of the whole study is counted: every trial's epochs and seconds
    assert res.trial_epochs == sum(t.user_attrs["epochs_run"] for t in trials) >= 3
    assert res.trial_seconds > 0
    assert len(res.history) == 3 and res.history[0] == res.default_value


def test_the_default_trial_is_never_pruned_and_pruned_trials_count_their_epochs(ml100k_slice, tmp_path):
    res = tune("BPR", ml100k_slice, n_trials=2, epochs=2, overrides=FAST, runs_dir=tmp_path, pruner=_AlwaysPrune())
    first, second = _trials(res)
    assert first.state == TrialState.COMPLETE and second.state == TrialState.PRUNED
    assert res.best_trial == 0 and res.best_params == {"learning_rate": 0.001, "embedding_size": 64}
    assert second.user_attrs["epochs_run"] == 1 and res.trial_epochs == first.user_attrs["epochs_run"] + 1
    assert res.history == [res.default_value, None]


def test_a_plugin_whose_defaults_leave_its_space_cannot_be_tuned(ml100k_slice, tmp_path, monkeypatch):
    import m6rec_bench.tuning.study as study_mod

    def narrow(trial):
        return {"learning_rate": trial.suggest_categorical("learning_rate", [0.05, 0.1])}

    monkeypatch.setattr(study_mod, "search_space", lambda entry: narrow)
    with pytest.raises(M6BenchError, match="BPR: the defaults must lie in the search space"):
        tune("BPR", ml100k_slice, n_trials=1, epochs=1, overrides=FAST, runs_dir=tmp_path)


def test_a_tuned_run_records_its_study_and_the_site_plots_it(ml100k_slice, tmp_path):
    """``run --tune-budget``: the record's typed ``tuning`` field, the board's columns, the best-so-far plot."""
    import json

    from typer.testing import CliRunner

    from m6rec_bench.cli import app
    from m6rec_bench.leaderboard.site import build_site
    from m6rec_bench.results.record import Record

    cfg = tmp_path / "suite.yaml"
    cfg.write_text(f"datasets: ['{ml100k_slice.folder}']\nmodels: [BPR]\nepochs: 1\n"
                   f"overrides: {{BPR: {{eval_batch_size: 1000000}}}}\n")
    runs, lb = tmp_path / "runs", tmp_path / "lb"
    res = CliRunner().invoke(app, ["run", "--config", str(cfg), "--tune-budget", "2", "--runs-dir", str(runs),
                                   "-o", str(lb)])
    assert res.exit_code == 0, res.output
    (path,) = runs.rglob("seed*.json")
    rec = Record.model_validate_json(path.read_text())
    assert rec.tuning is not None and rec.tuning.budget == 2 and rec.tuning.trials == 2
    assert rec.tuning.best_valid is not None and rec.tuning.default_valid is not None
    assert rec.tuning.best_valid >= rec.tuning.default_valid
    assert rec.tuning.trial_epochs == 2 and rec.tuning.trial_seconds > 0 and len(rec.tuning.history) == 2
    assert "tuning" not in rec.spec  # the summary is not part of the cell's spec (nor of its id)
    # the typed run options name the budget; an older record derives the same from its m6_tune_* keys
    assert rec.run is not None and rec.run.tune_budget == 2 and rec.run.board == "tuned" and rec.run.tune_study
    assert rec.model_copy(update={"run": None}).options == rec.run

    board = json.loads((lb / ml100k_slice.name / "default-tuned" / "leaderboard.json").read_text())
    (row,) = board["rows"]
    assert row["reproduce"]["tuning"]["trials"] == 2 and row["reproduce"]["tuning"]["budget"] == 2
    build_site(lb)
    page = (lb / ml100k_slice.name / "default-tuned" / "index.html").read_text()
    assert "<th>Tuning epochs</th>" in page and "<th>Best valid</th>" in page
    assert "id='tuning'" in page and "best-so-far vs trials" in page


def test_an_implementation_runs_the_tuned_settings_of_the_model_it_implements(ml100k_slice, tmp_path):
    """GNN-LightGCN (``implements="LightGCN"``, the same grid) gets no study of its own: its cells run
    LightGCN's best settings, so the implementations table compares one configuration twice. GNN-NGCF
    declares no ``implements`` and keeps its own study."""
    from typer.testing import CliRunner

    from m6rec_bench.cli import app
    from m6rec_bench.results.record import Record
    from m6rec_bench.tuning.suite import shared_studies

    keys = {("d", "default", m): registry.get(m) for m in ("LightGCN", "GNN-LightGCN", "NGCF", "GNN-NGCF", "BPR")}
    assert shared_studies(keys) == {("d", "default", "GNN-LightGCN"): ("d", "default", "LightGCN")}
    assert shared_studies({k: v for k, v in keys.items() if k[2] != "LightGCN"}) == {}  # the original not in the suite

    cfg = tmp_path / "suite.yaml"
    cfg.write_text(f"datasets: ['{ml100k_slice.folder}']\nmodels: [LightGCN, GNN-LightGCN]\nepochs: 1\n"
                   "overrides: {LightGCN: {eval_batch_size: 1000000}, GNN-LightGCN: {eval_batch_size: 1000000}}\n")
    runs = tmp_path / "runs"
    res = CliRunner().invoke(app, ["run", "--config", str(cfg), "--tune-budget", "3", "--runs-dir", str(runs),
                                   "-o", str(tmp_path / "lb"), "--jobs", "1"])
    assert res.exit_code == 0, res.output
    recs = {r.model: r for r in (Record.model_validate_json(p.read_text()) for p in runs.rglob("seed*.json"))}
    original, impl = recs["LightGCN"], recs["GNN-LightGCN"]
    assert impl.tuning is not None and original.tuning is not None
    assert impl.tuning.study == original.tuning.study and impl.run.tune_study == original.run.tune_study
    tuned = {k: original.config[k] for k in ("learning_rate", "n_layers", "reg_weight")}
    assert {k: impl.config[k] for k in tuned} == tuned
    studies = optuna.get_all_study_names(open_storage(None, runs).backend)
    assert [s.split(".")[0] for s in studies] == ["LightGCN"]
