"""Bounds on YAML from a user (m6rec_bench.untrusted.compose_yaml): the counts behind the refusals."""

from __future__ import annotations

import pytest

from m6rec_bench.untrusted import UntrustedInputError, compose_yaml, yaml_values


def _laughs(levels: int) -> str:
    """10 ** (levels + 1) strings once every alias is followed."""
    items = ['&a0 ["x","x","x","x","x","x","x","x","x","x"]']
    items += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "v: [" + ", ".join(items) + "]\n"


def test_values_count_each_alias_use_and_stop_at_the_cap():
    import yaml

    node = yaml.compose(_laughs(2))
    a0, a1, a2 = 1 + 10, 1 + 10 * 11, 1 + 10 * 111  # each list and what it holds, aliases expanded
    assert yaml_values(node, cap=10**6) == (1 + a0 + a1 + a2) + 2  # the outer list, its key, the mapping
    assert yaml_values(node, cap=500) == 501


def test_a_larger_limit_is_the_limit_counted_against():
    data, _ = compose_yaml(_laughs(5), max_values=10**7)  # 1.1 M values: within this limit
    assert len(data["v"]) == 6
    with pytest.raises(UntrustedInputError, match="more than 1,000,000 values"):
        compose_yaml(_laughs(7), max_values=10**6)  # 10^8 values, past a limit above the default
