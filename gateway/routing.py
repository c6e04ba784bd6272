"""Matching a request's method and path to a route: anything with a path
`template` and an `http_method`, the proto-derived bindings and the
gateway's own pages alike.

Rules (CONTRACT §4): literal segments win over variables; a trailing slash
matches the same route; variables are percent-decoded; a path that some
route matches, asked with another method, is 405 with the methods it has.

Routes with the same shape (the same template up to variable names) form
one group; groups are tried most specific first, and the first group whose
template matches the path decides: its method, or 405. A path whose last
segment holds a ':' is read with the custom verb split off and without,
and a reading whose route has the method wins. Paths made only of
literals are looked up in a dict first, which is every request to a
collection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar
from urllib.parse import unquote

from gateway.templates import PathTemplate


class Routable(Protocol):
    """What the router matches on."""

    @property
    def template(self) -> PathTemplate: ...

    @property
    def http_method(self) -> str: ...

    @property
    def name(self) -> str:
        """What the route serves, for messages (a gRPC method, a page)."""
        ...


R = TypeVar("R", bound=Routable)


class PathError(ValueError):
    """The path cannot be decoded (bad percent-encoding, invalid UTF-8)."""


@dataclass(slots=True)
class _Group(Generic[R]):
    template: PathTemplate
    by_method: dict[str, R] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Match(Generic[R]):
    route: R
    variables: dict[str, str]


@dataclass(frozen=True, slots=True)
class WrongMethod:
    """The path is known, not with this method; `allowed` is sorted."""

    allowed: tuple[str, ...]
    template: str


class Router(Generic[R]):
    def __init__(self, routes: Iterable[R]) -> None:
        groups: dict[object, _Group[R]] = {}
        for route in routes:
            group = groups.setdefault(route.template.shape, _Group(route.template))
            if route.http_method in group.by_method:
                other = group.by_method[route.http_method]
                raise ValueError(
                    f"{route.http_method} {route.template.source} is bound twice: "
                    f"{other.name} and {route.name}"
                )
            group.by_method[route.http_method] = route
        self._groups = sorted(groups.values(), key=lambda g: g.template.specificity)
        self._literal = {
            "/" + "/".join(s.text for s in g.template.segments): g
            for g in self._groups
            if not g.template.captures
            and not g.template.verb
            and all(s.kind == "literal" for s in g.template.segments)
        }
        # Only split a custom verb (":cancel") off the last segment when some
        # route has one; otherwise a ':' is part of a value.
        self._verbs = any(g.template.verb for g in self._groups)

    @property
    def routes(self) -> list[R]:
        return [r for g in self._groups for r in g.by_method.values()]

    def match(self, method: str, raw_path: str) -> Match[R] | WrongMethod | None:
        """The route for `method raw_path`, WrongMethod, or None (404).
        `raw_path` is still percent-encoded; PathError if it cannot be."""
        path = raw_path[:-1] if len(raw_path) > 1 and raw_path.endswith("/") else raw_path
        group = self._literal.get(path) if "%" not in path else None
        if group is not None:
            return _pick(group, method, {})
        # A path ending in ":verb" is read both ways: with the verb split off
        # (tried first: a literal verb is more specific than a variable) and
        # with the ':' inside the last segment. The first group matching each
        # reading is a candidate, and one that has the method wins; without
        # that, a route's verb form (`/things/{name}:cancel`) was shadowed by
        # a same-shape or `**` route of other methods and answered 405.
        readings = [_split(path, verb=True)] if self._verbs else []
        readings.append(_split(path, verb=False))
        found: list[Match[R] | WrongMethod] = []
        for parts, verb in readings:
            if parts is None:
                continue
            for group in self._groups:
                variables = group.template.match(parts, verb)
                if variables is not None:
                    route = group.by_method.get(_routed(method))
                    if route is not None and route.template is not group.template:
                        # Routes of one shape may name their variables
                        # differently (`{name}`, `{widget.name}`): each route
                        # gets its own names, not those of the group's first.
                        variables = route.template.match(parts, verb) or {}
                    found.append(_pick(group, method, variables))
                    break
        for each in found:
            if isinstance(each, Match):
                return each
        if not found:
            return None
        wrong = [each for each in found if isinstance(each, WrongMethod)]
        allowed = sorted({name for each in wrong for name in each.allowed})
        return WrongMethod(tuple(allowed), wrong[0].template)


def _pick(group: _Group[R], method: str, variables: dict[str, str]) -> Match[R] | WrongMethod:
    route = group.by_method.get(_routed(method))
    if route is None:
        return WrongMethod(allowed_methods(group.by_method), group.template.source)
    return Match(route, variables)


def _routed(method: str) -> str:
    """HEAD is answered wherever GET is, by the GET binding (RFC 9110 §9.3.2)."""
    return "GET" if method == "HEAD" else method


def allowed_methods(methods: Iterable[str]) -> tuple[str, ...]:
    """The methods a path answers, sorted, HEAD included wherever GET is."""
    found = set(methods)
    if "GET" in found:
        found.add("HEAD")
    return tuple(sorted(found))


def _split(path: str, *, verb: bool) -> tuple[list[str] | None, str | None]:
    """Percent-decoded segments and, when `verb`, the custom verb after the
    last ':'; None for a path with an empty segment."""
    if not path.startswith("/"):
        return None, None
    raw = path[1:].split("/")
    found = None
    if verb:
        if ":" not in raw[-1]:
            return None, None
        raw[-1], found = raw[-1].rsplit(":", 1)
    if any(not part for part in raw):
        return None, None
    try:
        return [unquote(part, errors="strict") for part in raw], found
    except UnicodeDecodeError:
        raise PathError("the path is not valid UTF-8 once percent-decoded") from None
