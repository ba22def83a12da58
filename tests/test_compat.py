import sys

import numpy as np
from scipy.sparse import dok_matrix

from m6rec_bench import compat


def test_numpy_aliases_and_dok_update():
    compat.apply()
    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.unicode_ is np.str_
    m = dok_matrix((3, 3), dtype=np.float32)
    m._update({(0, 1): 1.0, (2, 2): 3.0})
    assert m.toarray()[0, 1] == 1.0 and m.toarray()[2, 2] == 3.0 and m.nnz == 2


def test_argv_is_hidden_from_recbole_config(monkeypatch):
    compat.apply()
    from recbole.config import Config

    monkeypatch.setattr(sys, "argv", ["m6bench", "--epochs=7", "run"])
    with compat.shielded_argv():
        config = Config(model="Pop", dataset="ml-100k", config_dict={"show_progress": False})
    assert config["epochs"] != 7
    assert sys.argv == ["m6bench", "--epochs=7", "run"]


def test_data_path_is_honoured_for_a_dataset_named_ml_100k(tmp_path):
    compat.apply()
    config = compat.build_config("Pop", "ml-100k", {"data_path": str(tmp_path), "show_progress": False})
    assert config["data_path"] == str(tmp_path / "ml-100k")


def test_string_config_values_are_literals_never_code(tmp_path, recwarn):
    compat.apply()
    marker = tmp_path / "ran"
    config = compat.build_config("Pop", "ml-100k", {
        "show_progress": False, "learning_rate": "1e-3", "topk": "[10, 20]", "reproducibility": "false",
        "eval_args": "{'order': 'RO'}", "m6_tune_study": "BPR.ml-100k.default.205642d014",
        "m6_note": f"open({str(marker)!r}, 'w').write('x')",
    })
    assert config["learning_rate"] == 1e-3 and config["topk"] == [10, 20] and config["reproducibility"] is False
    assert config["eval_args"]["order"] == "RO"
    assert config["m6_tune_study"] == "BPR.ml-100k.default.205642d014"
    assert config["m6_note"].startswith("open(") and not marker.exists()  # RecBole would have run it
    assert not [w for w in recwarn if issubclass(w.category, SyntaxWarning)]
