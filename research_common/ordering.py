"""The order of both lists (CONTRACT §10, as Google's AIP-132): parsed once
here into a tuple of keys that each service turns into its own store's
order (SQL for experiments, MLflow's `order_by` for runs).

Grammar (whitespace around names and words is free; words in any case):

    order_by = key { "," key }
    key      = field [ "asc" | "desc" | "best" ]
    field    = name [ "." key ]        as in research_common.filters

A key without a word is ascending (AIP-132). `best` orders a metric by its
direction (CONTRACT §7: the request's maximize / minimize, then the built-in
rules, then the service's default), so it is resolved here into asc or desc
and a token binds to the resolved order. Ties always end on the row's id,
which each service adds. Bounds: 1 KiB of text, 8 keys, each field once.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from research_common import diff
from research_common.errors import InvalidArgument
from research_common.filters import Field, Fields, field_named

FIELD = "order_by"
MAX_CHARS = 1024
MAX_KEYS = 8
WORDS = ("asc", "desc", "best")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One key of the order, its direction resolved."""

    field: Field
    descending: bool

    def __str__(self) -> str:
        return f"{self.field} {'desc' if self.descending else 'asc'}"


@dataclass(frozen=True, slots=True)
class Directions:
    """What `best` means for a list: the request's overrides and the
    service's default direction (§7)."""

    default: diff.Direction
    maximize: Collection[str] = ()
    minimize: Collection[str] = ()

    def descending(self, metric: str) -> bool:
        direction = diff.choose_direction(
            metric, maximize=self.maximize, minimize=self.minimize, default=self.default
        )
        return direction == diff.MAXIMIZE


def _error(problem: str) -> InvalidArgument:
    return InvalidArgument.field(FIELD, problem)


def parse(text: str, fields: Fields, best_of: str, directions: Directions) -> tuple[OrderKey, ...]:
    """The keys of an order; () for an empty one (the list's default order).
    `best_of` names the map whose entries `best` may order (the metrics)."""
    if len(text) > MAX_CHARS:
        raise _error(f"is {len(text)} characters; at most {MAX_CHARS}")
    diff.check_overrides(directions.maximize, directions.minimize)
    if not text.strip():
        return ()
    keys: list[OrderKey] = []
    position = 1
    for part in text.split(","):
        keys.append(_key(part, position, fields, best_of, directions))
        position += len(part) + 1
    if len(keys) > MAX_KEYS:
        raise _error(f"has {len(keys)} keys; at most {MAX_KEYS}")
    named = [str(key.field) for key in keys]
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        raise _error(f"names {twice[0]!r} more than once")
    return tuple(keys)


def _key(
    part: str, position: int, fields: Fields, best_of: str, directions: Directions
) -> OrderKey:
    """One comma-separated key; `position` is where `part` starts (1-based)."""
    words = [(match.group(), position + match.start()) for match in _WORD.finditer(part)]
    if not words:
        raise _error(f"has an empty key at position {position}: expects a field name")
    (name, at), rest = words[0], words[1:]
    field = field_named(name, at, fields, FIELD)
    if not rest:
        return OrderKey(field, descending=False)
    if len(rest) > 1:
        raise _error(f"expects ',' or the end at position {rest[1][1]}, found {rest[1][0]!r}")
    written, at = rest[0]
    word = written.lower()
    if word not in WORDS:
        raise _error(
            f"has an unknown word {written!r} at position {at} after {field}; "
            f"expects {', '.join(WORDS)}"
        )
    if word != "best":
        return OrderKey(field, descending=word == "desc")
    if field.name != best_of:
        raise _error(f"orders {field} by best at position {at}: best orders {best_of}.<key> only")
    return OrderKey(field, descending=directions.descending(field.key or ""))


def canonical(keys: tuple[OrderKey, ...]) -> str:
    """The order as text with every direction written out: what a page
    token binds to (`x`, `x asc` and a `best` that resolved to asc are one
    order)."""
    return ", ".join(str(key) for key in keys)
