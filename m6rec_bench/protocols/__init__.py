"""The protocol registry: one place that maps a protocol name to its implementation."""

from __future__ import annotations

from m6rec_bench.errors import UsageError
from m6rec_bench.protocols.base import PROTOCOLS, Protocol, register

# Each protocol module registers itself on import; this order is the registry's (and --help's) order.
from m6rec_bench.protocols import default as _default  # noqa: F401, I001 - isort: skip
from m6rec_bench.protocols import cold_item as _cold_item  # noqa: F401
from m6rec_bench.protocols import sequential as _sequential  # noqa: F401
from m6rec_bench.protocols import user_group as _user_group  # noqa: F401


def get_protocol(name: str) -> Protocol:
    """Resolve a protocol name or raise a UsageError naming the known ones."""
    return PROTOCOLS.get(name)


def protocols_for(model_type: str) -> list[str]:
    """Names of the protocols that can evaluate a model of ``model_type`` (``general``, ``sequential``)."""
    return [p.name for p in PROTOCOLS.values() if p.runs(model_type)]


def home_protocol(model_type: str) -> Protocol:
    """The protocol built for ``model_type``: ``default`` for general models, ``sequential`` for sequential ones."""
    for protocol in PROTOCOLS.values():
        if protocol.model_type == model_type:
            return protocol
    raise UsageError(f"no protocol evaluates {model_type} models; known: {', '.join(PROTOCOLS)}")


__all__ = ["PROTOCOLS", "Protocol", "get_protocol", "home_protocol", "protocols_for", "register"]
