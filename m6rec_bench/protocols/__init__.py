"""The protocol registry: one place that maps a protocol name to its implementation."""

from __future__ import annotations

from m6rec_bench.errors import UsageError, did_you_mean
from m6rec_bench.protocols.base import Protocol
from m6rec_bench.protocols.default import DEFAULT

PROTOCOLS: dict[str, Protocol] = {DEFAULT.name: DEFAULT}


def register(protocol: Protocol) -> Protocol:
    """Add a protocol to the registry (used by the protocol modules themselves)."""
    PROTOCOLS[protocol.name] = protocol
    return protocol


def get_protocol(name: str) -> Protocol:
    """Resolve a protocol name or raise a UsageError naming the known ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UsageError(
            f"protocol '{name}' not found{did_you_mean(name, PROTOCOLS)}; known: {', '.join(PROTOCOLS)}"
        ) from None


__all__ = ["PROTOCOLS", "Protocol", "get_protocol", "register"]
from m6rec_bench.protocols import cold_item as _cold_item  # noqa: F401
