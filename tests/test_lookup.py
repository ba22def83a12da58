"""The one generic registry (m6rec_bench.lookup) and the registries built on it keep their words."""

from __future__ import annotations

import pytest

from m6rec_bench import compress, rerank
from m6rec_bench.datasets.convert import CONVERTERS, get_converter
from m6rec_bench.datasets.registry import get_spec
from m6rec_bench.errors import UsageError
from m6rec_bench.lookup import Registry
from m6rec_bench.models import registry as models
from m6rec_bench.protocols import PROTOCOLS, get_protocol
from m6rec_bench.tuning.spaces import BASELINE_SPACES, bpr, learning_rate_only, search_space


def _fruit() -> Registry[int]:
    reg: Registry[int] = Registry("fruit")
    reg.register("Apple", 1, aliases=["pomme"])
    reg.register("Banana", 2)
    return reg


def test_names_are_normalised_and_aliases_resolve():
    reg = _fruit()
    assert reg.get("apple") == reg.get(" APPLE ") == reg.get("Pomme") == reg["apple"] == 1
    assert reg.canonical("pomme") == "Apple" and reg.find("cherry") is None
    assert "banana" in reg and "cherry" not in reg and 3 not in reg  # type: ignore[operator]
    assert reg.names() == list(reg) == ["Apple", "Banana"] and reg.all_names() == ["Apple", "pomme", "Banana"]
    assert reg.values() == [1, 2] and reg.items() == [("Apple", 1), ("Banana", 2)] and len(reg) == 2


def test_unknown_names_suggest_the_name_as_written():
    reg = _fruit()
    with pytest.raises(UsageError) as exc:
        reg.get("appel")
    assert str(exc.value) == "fruit 'appel' not found — did you mean 'Apple'?; known: Apple, Banana"
    assert reg.hint("zzz") == "" and reg.hint("pome") == " — did you mean 'pomme'?"


def test_a_template_takes_context_and_may_drop_the_hint():
    reg: Registry[int] = Registry("method", unknown="--opt {text!r}: no {what}{hint}{extra}")
    reg.register("int8", 1)
    assert str(reg.error("int9", text="INT9", extra=" (see --help)")) == \
        "--opt 'INT9': no method — did you mean 'int8'? (see --help)"
    assert str(reg.error("int8", text="int8:x", extra="", hint="")) == "--opt 'int8:x': no method"


def test_case_sensitive_registries_match_exactly():
    reg: Registry[str] = Registry("protocol", case_sensitive=True)
    reg.register("cold-item", "c")
    assert reg.find("Cold-Item") is None and reg.find(" cold-item") is None and reg.get("cold-item") == "c"
    assert reg.hint("cold_item") == " — did you mean 'cold-item'?"


def test_a_name_or_alias_cannot_be_taken_twice():
    reg = _fruit()
    reg.register("Apple", 10)  # the same name again replaces (a module imported twice)
    assert reg.get("apple") == 10
    with pytest.raises(ValueError, match="'APPLE' is already used by 'Apple'"):
        reg.register("APPLE", 3)
    with pytest.raises(ValueError, match="'pomme' is already used by 'Apple'"):
        reg.register("Cherry", 3, aliases=["pomme"])
    with pytest.raises(ValueError, match="already used"):
        reg.register("Banana", 4, replace=False)


@pytest.mark.parametrize(("lookup", "message"), [
    (lambda: get_protocol("colditem"),
     "protocol 'colditem' not found — did you mean 'cold-item'?; known: default, cold-item, sequential, user-group"),
    (lambda: get_converter("ml1n"), "unknown converter 'ml1n' — did you mean 'ml1m'? (known: ml100k, ml1m, mlcsv) "
                                    "— fix datasets.yaml"),
    (lambda: get_spec("movielns"),
     "dataset 'movielns' not found in datasets.yaml — did you mean 'movielens'? (m6bench datasets list)"),
    (lambda: models.get("BRP"), "model 'BRP' not found — did you mean 'BPR'? (m6bench models list)"),
    (lambda: compress.parse("int4"), "--compress 'int4' is not a compression method — did you mean 'int8'?; "
                                     "use int8 or prune:<ratio> (e.g. prune:0.5)"),
    (lambda: compress.parse("prune"), "--compress 'prune' is not a compression method; use int8 or prune:<ratio> "
                                      "(e.g. prune:0.5)"),
    (lambda: compress.parse("int8:2"), "--compress 'int8:2' is not a compression method; use int8 or "
                                       "prune:<ratio> (e.g. prune:0.5)"),
])
def test_every_registry_says_what_it_said(lookup, message):
    with pytest.raises(UsageError) as exc:
        lookup()
    assert str(exc.value) == message


def test_the_ported_registries_resolve_as_before():
    assert PROTOCOLS["cold-item"] is get_protocol("cold-item") and get_protocol("default").name == "default"
    assert "Default" not in PROTOCOLS  # protocols stay case-sensitive (folder names)
    assert CONVERTERS.names() == sorted(CONVERTERS.names()) and get_converter("ml1m").__name__.endswith(".ml1m")
    assert get_spec(" ML-100K").name == "ml-100k" and get_spec("movielens").name == "ml-100k"
    assert models.get("bpr").name == "BPR" and models.get("lightgcn").name == "LightGCN"
    assert compress.parse(" PRUNE:0.25 ").name == "prune:0.25" and rerank.parse("MMR:0.7").name == "mmr:0.7"
    assert BASELINE_SPACES.get("BPR") is bpr
    assert search_space(models.get("BPR")) is bpr and search_space(models.get("DMF")) is learning_rate_only
    assert search_space(models.get("Pop")) is None
