"""``m6bench datasets synth``: a synthetic dataset that is exact, skewed, deterministic and usable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from m6rec_bench.cli import app
from m6rec_bench.datasets import resolve
from m6rec_bench.datasets.synth import SynthSpec, default_name, synthesize

runner = CliRunner()
SMALL = SynthSpec(n_users=300, n_items=200, n_interactions=5000, seed=3)


def _inter(folder: Path) -> pd.DataFrame:
    df = pd.read_csv(folder / f"{folder.name}.inter", sep="\t", dtype=str)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder, generated = synthesize(SMALL, tmp_path_factory.mktemp("synth") / "toy")
    assert generated
    return folder


def test_counts_are_exact_and_pairs_unique(small: Path) -> None:
    df = _inter(small)
    assert len(df) == SMALL.n_interactions
    assert not df.duplicated(["user_id", "item_id"]).any()
    per_user = df.groupby("user_id").size()
    assert len(per_user) == SMALL.n_users and per_user.min() >= SMALL.min_user_interactions
    assert set(df["item_id"]) <= {str(i) for i in range(1, SMALL.n_items + 1)}
    ratings = df["rating"].astype(float)
    assert ratings.between(1, 5).all() and ratings.nunique() >= 4
    ts = df["timestamp"].astype(int)
    assert ts.min() >= 1420070400 and ts.max() < 1577836800
    item = pd.read_csv(small / "toy.item", sep="\t", dtype=str)
    assert list(item.columns) == ["item_id:token", "title:token_seq", "genre:token_seq", "year:token"]
    assert len(item) == SMALL.n_items and item.notna().all().all()
    link = pd.read_csv(small / "toy.link", sep="\t", dtype=str)
    kg = pd.read_csv(small / "toy.kg", sep="\t", dtype=str)
    assert len(link) == SMALL.n_items and set(kg["head_id:token"]) == set(link["entity_id:token"])
    assert {"film.genre", "film.year", "film.series"} <= set(kg["relation_id:token"])
    meta = json.loads((small / "synth.json").read_text())
    assert meta["counts"]["inter"] == SMALL.n_interactions


def test_popularity_and_activity_are_skewed(small: Path) -> None:
    df = _inter(small)
    counts = df["item_id"].value_counts().to_numpy()
    top = counts[: SMALL.n_items // 10].sum() / len(df)
    assert top > 0.25  # top 10 % of items hold far more than 10 % of interactions
    per_user = df.groupby("user_id").size().to_numpy()
    assert per_user.max() > 3 * np.median(per_user)


def test_same_seed_same_bytes_other_seed_differs(small: Path, tmp_path: Path) -> None:
    again, _ = synthesize(SMALL, tmp_path / "toy")
    for suffix in ("inter", "item", "kg", "link"):
        assert (again / f"toy.{suffix}").read_bytes() == (small / f"toy.{suffix}").read_bytes()
    other, _ = synthesize(SynthSpec(300, 200, 5000, seed=4), tmp_path / "other" / "toy")
    assert (other / "toy.inter").read_bytes() != (small / "toy.inter").read_bytes()
    mtime = (again / "toy.inter").stat().st_mtime_ns
    assert synthesize(SMALL, tmp_path / "toy") == (again, False)  # reused, not rewritten
    assert (again / "toy.inter").stat().st_mtime_ns == mtime


def test_text_carries_the_cluster_signal(small: Path) -> None:
    """Items sharing a first genre (their cluster's) are co-consumed more often than chance."""
    df = _inter(small)
    item = pd.read_csv(small / "toy.item", sep="\t", dtype=str)
    first = dict(zip(item["item_id:token"], item["genre:token_seq"].str.split().str[0], strict=True))
    df["g"] = df["item_id"].map(first)
    share = df.groupby("user_id")["g"].agg(lambda s: s.value_counts().iloc[0] / len(s)).mean()
    overall = df["g"].value_counts(normalize=True).iloc[0]
    assert share > overall + 0.1


def test_cli_writes_under_home_and_features_are_seen(isolated_home: Path) -> None:
    result = runner.invoke(app, ["datasets", "synth", "-u", "300", "-i", "200", "-n", "5000", "--no-progress"])
    assert result.exit_code == 0, result.output
    folder = isolated_home / "synth" / default_name(SynthSpec(300, 200, 5000))
    assert folder.name == "synth-u300-i200-n5k-s0"
    assert str(folder) in result.output and "item_text(title, genre, year), kg" in result.output
    ds = resolve(str(folder))
    assert ds.name == folder.name and ds.features.kg and ds.features.item_text == ("title", "genre", "year")
    assert ds.features.provides() == {"inter", "item_text", "kg"}


def test_run_bpr_one_epoch_on_it(tmp_path: Path, small: Path) -> None:
    runs, out = tmp_path / "runs", tmp_path / "lb"
    result = runner.invoke(app, ["run", "--dataset", str(small), "-m", "BPR", "--epochs", "1",
                                 "--runs-dir", str(runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rec = json.loads(next(runs.rglob("seed*.json")).read_text())
    assert rec["status"] == "ok" and rec["dataset"] == "toy" and 0 <= rec["test"]["ndcg@10"] <= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-u", "3", "-i", "2", "-n", "7"], "more than users × items"),
        (["-u", "0", "-i", "5", "-n", "7"], "--users must be a positive"),
        (["-u", "10", "-i", "20", "-n", "-5"], "--interactions must be a positive"),
        (["-u", "100", "-i", "20", "-n", "300"], "at least 5 interactions"),
        (["-u", "10", "-i", "20", "-n", "60", "--name", "bad name"], "must start with a letter"),
        (["-u", "10", "-i", "20", "-n", "60", "--name", "a", "--out", "b"], "not both"),
    ],
)
def test_bad_sizes_exit_2_without_traceback(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["datasets", "synth", *args, "--no-progress"])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_row_check_is_remembered_until_the_file_changes(small: Path, tmp_path: Path) -> None:
    """A local folder's rows are checked once (20M rows take ~45 s); an edited file is checked again."""
    import shutil

    from m6rec_bench.datasets import atomic
    from m6rec_bench.errors import DataError

    folder = tmp_path / "copy"
    shutil.copytree(small, folder)
    inter = folder / "copy.inter"
    for suffix in ("inter", "item", "kg", "link"):
        (folder / f"toy.{suffix}").rename(folder / f"copy.{suffix}")
    assert not atomic._content_checked(inter)
    resolve(str(folder))
    assert atomic._content_checked(inter)
    with open(inter, "a", encoding="utf-8") as fh:
        fh.write("1\t2\tnot-a-number\t3\n")
    with pytest.raises(DataError, match="not a number"):
        resolve(str(folder))
