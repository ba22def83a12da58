"""The protocol registry: one place that maps a protocol name to its implementation."""

from __future__ import annotations

from m6rec_bench.errors import UsageError
from m6rec_bench.lookup import Registry
from m6rec_bench.protocols.base import Protocol
from m6rec_bench.protocols.default import DEFAULT

#: Protocols by name (case-sensitive: a protocol's name is a folder of every board and record).
PROTOCOLS: Registry[Protocol] = Registry("protocol", case_sensitive=True,
                                         unknown="protocol '{name}' not found{hint}; known: {known}")
PROTOCOLS.register(DEFAULT.name, DEFAULT)


def register(protocol: Protocol) -> Protocol:
    """Add a protocol to the registry (used by the protocol modules themselves)."""
    return PROTOCOLS.register(protocol.name, protocol)


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
from m6rec_bench.protocols import cold_item as _cold_item  # noqa: F401, E402
from m6rec_bench.protocols import sequential as _sequential  # noqa: F401, E402
from m6rec_bench.protocols import user_group as _user_group  # noqa: F401, E402
