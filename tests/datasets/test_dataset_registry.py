"""The registry: the packaged datasets.yaml, name/alias lookup, and errors that name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from m6rec_bench.datasets.registry import PACKAGED_YAML, get_spec, load_registry
from m6rec_bench.errors import UsageError


def test_packaged_registry_has_the_movielens_entries() -> None:
    registry = load_registry()
    assert registry.path == PACKAGED_YAML
    names = [s.name for s in registry]
    assert names[:4] == ["ml-100k", "ml-1m", "ml-10m", "ml-25m"]
    ml100k = registry.get("ml-100k")
    assert ml100k.sources[0].kind == "recbole-bundled"
    assert ml100k.source("url").checksum == "md5:0e33842e24a9c977be4e0107933c0723"
    assert ml100k.features.kg and "movie_title" in ml100k.features.item_text
    checksums = {s.name: s.source("url").checksum for s in registry}
    assert checksums["ml-1m"] == "md5:c4d9eecfca2ab87c1945afe126590906"
    assert checksums["ml-10m"] == "md5:ce571fd55effeba0271552578f2648bd"
    assert checksums["ml-25m"] == "md5:6b51fb2759a8657d3bfcbfc42b592ada"
    for spec in registry:
        assert "10.1145/2827872" in spec.citation
        assert "non-commercial" in spec.licence
        assert spec.description


def test_aliases_and_case_resolve_to_the_same_entry() -> None:
    assert get_spec("movielens").name == "ml-100k"
    assert get_spec("MovieLens").name == "ml-100k"
    assert get_spec("ML-1M").name == "ml-1m"
    assert get_spec("  ml-25m ").name == "ml-25m"


def test_unknown_name_suggests_the_nearest() -> None:
    with pytest.raises(UsageError) as exc:
        get_spec("movielns")
    assert str(exc.value) == "dataset 'movielns' not found in datasets.yaml — did you mean 'movielens'? (m6bench datasets list)"
    assert exc.value.exit_code == 2
    with pytest.raises(UsageError, match=r"not found in datasets.yaml \(m6bench datasets list\)$"):
        get_spec("zzzzzzzz")


def test_env_var_overrides_the_packaged_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dsh) -> None:
    dsh.write_registry(tmp_path / "reg.yaml", [dsh.url_entry("tiny", "http://x/t.zip", "md5:" + "0" * 32)], monkeypatch)
    registry = load_registry()
    assert [s.name for s in registry] == ["tiny"]
    assert get_spec("TINY-alias").name == "tiny"


def _write(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "datasets.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("M6BENCH_DATASETS_YAML", str(path))
    return path


def test_malformed_yaml_names_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "datasets:\n  - name: a\n    aliases: [x, y\n  - name: b\n", monkeypatch)
    with pytest.raises(UsageError) as exc:
        load_registry()
    msg = str(exc.value)
    assert "datasets.yaml line 4" in msg and "malformed YAML" in msg and "\n" not in msg


def test_invalid_entry_names_its_line_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "# header\n"
        "datasets:\n"
        "  - name: good\n"
        "    sources: [{kind: recbole-bundled}]\n"
        "  - name: bad\n"
        "    converter: ml1m\n"
        "    sources:\n"
        "      - {kind: url, url: 'http://x/y.zip', checksum: 'md5:123'}\n"
    )
    _write(tmp_path, text, monkeypatch)
    with pytest.raises(UsageError) as exc:
        load_registry()
    msg = str(exc.value)
    assert "line 5" in msg and "'bad'" in msg and "sources.0.checksum" in msg


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("datasets:\n  - name: a\n    sources: [{kind: url, url: 'http://x'}]\n", "needs 'checksum'"),
        ("datasets:\n  - name: a\n    sources: [{kind: ftp}]\n", "sources.0.kind"),
        ("datasets:\n  - name: a\n    sources: []\n", "sources"),
        ("datasets:\n  - name: a\n    colour: red\n    sources: [{kind: recbole-bundled}]\n", "colour"),
        ("datasets:\n  - name: a\n    sources: [{kind: recbole-bundled}]\n  - name: b\n    aliases: [A]\n    sources: [{kind: recbole-bundled}]\n", "already used"),
        ("datasets:\n  - just a string\n", "must be a mapping"),
        ("datasets:\n  - name: a\n    converter: ml1n\n    sources: [{kind: recbole-bundled}]\n", "unknown converter 'ml1n' — did you mean 'ml1m'"),
        ("datasets:\n  - name: a\n    sources: [{kind: url, url: 'http://x', checksum: 'md5:00000000000000000000000000000000'}]\n", "needs a converter"),
        ("- name: a\n", "top-level 'datasets:'"),
        ("", "top-level 'datasets:'"),
    ],
)
def test_invalid_registries_are_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, needle: str) -> None:
    _write(tmp_path, text, monkeypatch)
    with pytest.raises(UsageError, match="datasets.yaml") as exc:
        load_registry()
    assert needle in str(exc.value)


def test_missing_registry_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("M6BENCH_DATASETS_YAML", str(tmp_path / "nope.yaml"))
    with pytest.raises(UsageError, match="nope.yaml not found.*M6BENCH_DATASETS_YAML"):
        load_registry()


def test_yaml_is_loaded_safely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "datasets: !!python/object/apply:os.system ['echo hi']\n", monkeypatch)
    with pytest.raises(UsageError, match="line 1"):
        load_registry()
