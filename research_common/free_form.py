"""The rule of free-form numbers (`google.protobuf.Struct` / `Value`),
shared by the gateway, which sees the JSON literal, and the services, which
see the double it became (CONTRACT §3)."""

from __future__ import annotations

# A free-form number is a double, which holds every integer exactly only up
# to 2^53 - 1. Every double beyond is an integer that stands for many
# (2^53 + 1 arrives as 2^53), so it is refused rather than kept changed.
MAX_SAFE_INTEGER = 2**53 - 1


def unsafe_number(shown: str) -> str:
    """The problem of a free-form number beyond ±(2^53 - 1)."""
    return (
        f"is {shown}, beyond ±{MAX_SAFE_INTEGER} (2^53 - 1): a number in a free-form "
        "object is a double, which cannot keep it exactly; send it as a string"
    )
