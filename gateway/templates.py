"""Path templates of `google.api.http` rules: parsing, matching and expansion.

The grammar (google/api/http.proto)::

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    Verb     = ":" LITERAL ;

A template is flattened into one matcher per path segment; a variable
captures the run of segments its sub-pattern covers (`{name}` is `{name=*}`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_LITERAL = re.compile(r"[^/{}*=:]+")

Kind = Literal["literal", "single", "multi"]
# Sort weight of a segment kind: literals are the most specific.
_WEIGHT: dict[Kind, int] = {"literal": 0, "single": 1, "multi": 2}


class TemplateError(ValueError):
    """A `google.api.http` path template that cannot be served."""


@dataclass(frozen=True, slots=True)
class Segment:
    kind: Kind
    text: str = ""  # the literal, for kind == "literal"


@dataclass(frozen=True, slots=True)
class Capture:
    """Variable `field` covers segments [start, end) of the template."""

    field: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class PathTemplate:
    source: str
    segments: tuple[Segment, ...]
    captures: tuple[Capture, ...]
    verb: str | None

    @property
    def shape(self) -> tuple[tuple[Kind, str], ...]:
        """The template without its variable names: two rules with the same
        shape match exactly the same paths."""
        return (*((s.kind, s.text) for s in self.segments), ("literal", f":{self.verb or ''}"))

    @property
    def specificity(self) -> tuple[int, ...]:
        """Sort key: on the first segment where two templates differ, a literal
        beats a variable and a variable beats `**`."""
        return (*(_WEIGHT[s.kind] for s in self.segments), 0 if self.verb else 1)

    def match(self, parts: list[str], verb: str | None) -> dict[str, str] | None:
        """The variables when `parts` (percent-decoded segments) match."""
        if verb != self.verb:
            return None
        multi = next((i for i, s in enumerate(self.segments) if s.kind == "multi"), None)
        if multi is None:
            if len(parts) != len(self.segments):
                return None
        elif len(parts) < len(self.segments) - 1:
            return None
        # Index of part for each template segment (a `**` may cover several).
        tail = len(parts) - len(self.segments)
        for index, segment in enumerate(self.segments):
            if segment.kind == "literal":
                at = index if multi is None or index < multi else index + tail
                if parts[at] != segment.text:
                    return None
        values: dict[str, str] = {}
        for capture in self.captures:
            start = (
                capture.start if multi is None or capture.start <= multi else capture.start + tail
            )
            end = capture.end if multi is None or capture.end <= multi else capture.end + tail
            values[capture.field] = "/".join(parts[start:end])
        return values

    def expand(self, values: dict[str, str]) -> str:
        """The path with each variable replaced by its percent-encoded value."""
        out: list[str] = []
        index = 0
        for capture in self.captures:
            out.extend(s.text or "*" for s in self.segments[index : capture.start])
            # google/api/http.proto: a variable of several segments keeps its
            # '/' when expanded (quoting it made a Location that routes nowhere).
            covered = self.segments[capture.start : capture.end]
            single = len(covered) == 1 and covered[0].kind == "single"
            out.append(quote(values[capture.field], safe="" if single else "/"))
            index = capture.end
        out.extend(s.text or "*" for s in self.segments[index:])
        return "/" + "/".join(out) + (f":{self.verb}" if self.verb else "")


def parse_template(source: str) -> PathTemplate:
    """Parse `source`; TemplateError names what is wrong with it."""
    if not source.startswith("/"):
        raise TemplateError(f"path template must start with '/': {source!r}")
    body, verb = source[1:], None
    # A verb is a ':' after the last '/' and outside any variable.
    last = body.rfind("/")
    colon = body.rfind(":")
    if colon > last and "}" not in body[colon:]:
        body, verb = body[:colon], body[colon + 1 :]
        if not _LITERAL.fullmatch(verb):
            raise TemplateError(f"bad verb in path template {source!r}")
    segments: list[Segment] = []
    captures: list[Capture] = []
    for token in _split(body, source):
        if token.startswith("{"):
            name, _, pattern = token[1:-1].partition("=")
            if not _IDENT.fullmatch(name):
                raise TemplateError(f"bad variable {token!r} in path template {source!r}")
            start = len(segments)
            for part in (pattern or "*").split("/"):
                if part.startswith("{"):
                    raise TemplateError(f"nested variable in path template {source!r}")
                segments.append(_segment(part, source))
            # The same field twice would be set twice from one path.
            if any(c.field == name for c in captures):
                raise TemplateError(f"variable {name!r} twice in path template {source!r}")
            captures.append(Capture(name, start, len(segments)))
        else:
            segments.append(_segment(token, source))
    if [s.kind for s in segments].count("multi") > 1:
        raise TemplateError(f"more than one '**' in path template {source!r}")
    return PathTemplate(source, tuple(segments), tuple(captures), verb)


def _split(body: str, source: str) -> list[str]:
    """Split on '/' outside braces."""
    tokens: list[str] = []
    depth = 0
    current = ""
    for char in body:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise TemplateError(f"unbalanced '}}' in path template {source!r}")
        if char == "/" and depth == 0:
            tokens.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise TemplateError(f"unbalanced '{{' in path template {source!r}")
    tokens.append(current)
    return tokens


def _segment(token: str, source: str) -> Segment:
    if token == "*":
        return Segment("single")
    if token == "**":
        return Segment("multi")
    if not _LITERAL.fullmatch(token):
        raise TemplateError(f"bad segment {token!r} in path template {source!r}")
    return Segment("literal", token)
