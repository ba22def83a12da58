"""``m6bench datasets list|info|fetch`` through the real Typer app."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from m6rec_bench.cli import app

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["datasets", *args], env={"COLUMNS": "250"})


def test_list_shows_every_entry() -> None:
    result = invoke("list")
    assert result.exit_code == 0, result.output
    for needle in ("ml-100k", "ml-1m", "ml-10m", "ml-25m", "movielens", "bundled", "kg", "GroupLens"):
        assert needle in result.output


def test_info_shows_citation_source_and_checksum() -> None:
    result = invoke("info", "MovieLens")
    assert result.exit_code == 0, result.output
    for needle in ("ml-100k", "10.1145/2827872", "md5:0e33842e24a9c977be4e0107933c0723", "bundled with RecBole", "non-commercial"):
        assert needle in result.output


def test_unknown_name_is_one_line_and_exit_2() -> None:
    result = invoke("info", "movielns")
    assert result.exit_code == 2
    out = result.output.strip()
    assert "dataset 'movielns' not found in datasets.yaml — did you mean 'movielens'? (m6bench datasets list)" in out
    assert "Traceback" not in out and len(out.splitlines()) == 1


def test_fetch_bundled_prints_folder_and_checksum() -> None:
    result = invoke("fetch", "ml-100k", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "dataset_example/ml-100k" in result.output and "checksum: sha256:" in result.output


def test_fetch_url_and_checksum_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_server, dsh, isolated_home: Path) -> None:
    data = dsh.ml100k_zip(100)
    good = file_server.add("/good.zip", data)
    bad = file_server.add("/bad.zip", data)
    dsh.write_registry(
        tmp_path / "reg.yaml",
        [dsh.url_entry("good-ml", good, dsh.md5(data)), dsh.url_entry("bad-ml", bad, "md5:" + "1" * 32)],
        monkeypatch,
    )
    result = invoke("fetch", "good-ml")
    assert result.exit_code == 0, result.output
    assert str(isolated_home / "datasets" / "good-ml" / "ml100k-v1" / "good-ml") in result.output
    assert "yes" in invoke("list").output

    result = invoke("fetch", "bad-ml", "--no-progress")
    assert result.exit_code == 1
    assert "checksum mismatch for" in result.output and "Traceback" not in result.output
    assert not (isolated_home / "datasets" / "bad-ml").exists()


def test_fetch_unknown_source_kind_is_a_usage_error() -> None:
    result = invoke("fetch", "ml-1m", "--source", "huggingface")
    assert result.exit_code == 2
    assert "has no 'huggingface' source (it has: url)" in result.output


def test_malformed_registry_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "datasets.yaml"
    bad.write_text("datasets:\n  - name: [oops\n")
    monkeypatch.setenv("M6BENCH_DATASETS_YAML", str(bad))
    result = invoke("list")
    assert result.exit_code == 2 and "datasets.yaml line" in result.output


def test_every_option_has_help() -> None:
    for command in ("list", "info", "fetch"):
        result = invoke(command, "--help")
        assert result.exit_code == 0
    text = invoke("fetch", "--help").output
    assert "Source kind" in text and "progress bar" in text
