"""The filter language of both lists (CONTRACT §10): a subset of Google's
AIP-160, parsed once here into a small tree that each service compiles into
its own store's query (never pasted into one).

Grammar (whitespace between tokens is free; keywords are upper case):

    filter      = expression
    expression  = conjunction | disjunction | unary
    conjunction = unary "AND" unary { "AND" unary }
    disjunction = unary "OR" unary { "OR" unary }
    unary       = [ "NOT" ] primary
    primary     = "(" expression ")" | comparison
    comparison  = field operator value
    field       = name [ "." key ]          name: [A-Za-z_][A-Za-z0-9_]*
                                            key:  [A-Za-z0-9_.:-]{1,128}, to the
                                            end of the field (`metrics.oos.sharpe`
                                            is the key `oos.sharpe`)
    operator    = "=" | "!=" | "<" | "<=" | ">" | ">="
    value       = string | number | "true" | "false" | "null"
    string      = '"' { character | '\\"' | '\\\\' } '"'
    number      = [ "-" ] digits [ "." digits ] [ ( "e" | "E" ) [ "+" | "-" ] digits ]

AND and OR may not be mixed without parentheses: AIP-160 binds OR tighter
than AND and SQL the other way round, so `a AND b OR c` would mean what one
reader does not expect; it is refused, naming the position. `null` takes
`=` and `!=` only. Bounds: 4 KiB of text, 50 comparisons, 10 levels of
nesting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from research_common.errors import InvalidArgument

FIELD = "filter"
MAX_CHARS = 4096
MAX_COMPARISONS = 50
MAX_DEPTH = 10

OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
KEYWORDS = ("AND", "OR", "NOT")

Value = str | float | bool | None

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<op>!=|<=|>=|=|<|>)
  | (?P<paren>[()])
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_.:-]))
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_.:-]+)?)
    """,
    re.VERBOSE,
)
_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


@dataclass(frozen=True, slots=True)
class Field:
    """`name` (a column, or a map such as `metrics`) and the map's `key`."""

    name: str
    key: str | None = None

    def __str__(self) -> str:
        return self.name if self.key is None else f"{self.name}.{self.key}"


@dataclass(frozen=True, slots=True)
class Comparison:
    field: Field
    op: str
    value: Value
    position: int  # of the field in the text, 1-based


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]
    position: int = dataclass_field(default=0, compare=False)  # of the first OR


@dataclass(frozen=True, slots=True)
class Not:
    item: Node
    position: int = dataclass_field(default=0, compare=False)  # of the NOT


Node = Comparison | And | Or | Not


@dataclass(frozen=True, slots=True)
class Fields:
    """The fields a list can filter on: plain `columns`, and `maps` whose
    entries are named `<map>.<key>`."""

    columns: Collection[str]
    maps: Collection[str]

    def describe(self) -> str:
        return ", ".join([*self.columns, *(f"{name}.<key>" for name in self.maps)])


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # op, paren, string, number, word, end
    text: str
    position: int  # 1-based


def _error(problem: str) -> InvalidArgument:
    return InvalidArgument.field(FIELD, problem)


def _tokens(text: str) -> Iterator[_Token]:
    index = 0
    while index < len(text):
        match = _TOKEN.match(text, index)
        if match is None:
            if text[index] == '"':
                raise _error(f"has a string that never ends, from position {index + 1}")
            raise _error(f"has an unexpected character {text[index]!r} at position {index + 1}")
        kind = match.lastgroup or ""
        if kind != "space":
            yield _Token(kind, match.group(), index + 1)
        index = match.end()
    yield _Token("end", "", len(text) + 1)


def field_named(text: str, position: int, fields: Fields, subject: str) -> Field:
    """The field `text` names among `fields` (a column, or `<map>.<key>`);
    InvalidArgument naming `subject` (the request field: `filter`,
    `order_by`) and the position when it names none of them."""
    name, dot, key = text.partition(".")
    if dot and name in fields.maps and _KEY.fullmatch(key):
        return Field(name, key)
    if not dot and name in fields.columns:
        return Field(name)
    if dot and name in fields.maps:
        problem = (
            f"names {text!r} at position {position}: a key is 1 to 128 letters, digits or _ . : -"
        )
    elif not dot and name in fields.maps:
        problem = f"names {name!r} at position {position} without a key"
    else:
        problem = (
            f"names an unknown field {text!r} at position {position}; "
            f"known fields: {fields.describe()}"
        )
    raise InvalidArgument.field(subject, problem)


class _Parser:
    def __init__(self, text: str, fields: Fields) -> None:
        self.tokens = list(_tokens(text))
        self.index = 0
        self.fields = fields
        self.comparisons = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def _take(self) -> _Token:
        token = self.token
        self.index += 1
        return token

    def _unexpected(self, wanted: str) -> InvalidArgument:
        token = self.token
        found = "the end of the filter" if token.kind == "end" else repr(token.text)
        return _error(f"expects {wanted} at position {token.position}, found {found}")

    def parse(self) -> Node:
        node = self._expression(1)
        if self.token.kind != "end":
            raise self._unexpected("AND, OR or the end of the filter")
        return node

    def _expression(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise _error(f"nests deeper than {MAX_DEPTH} levels at position {self.token.position}")
        first = self._unary(depth)
        joiner = self.token.text if self.token.kind == "word" else ""
        if joiner not in ("AND", "OR"):
            return first
        items = [first]
        position = self.token.position
        while self.token.kind == "word" and self.token.text in ("AND", "OR"):
            if self.token.text != joiner:
                raise _error(
                    f"mixes AND and OR at position {self.token.position}: "
                    "add parentheses to say which comes first"
                )
            self._take()
            items.append(self._unary(depth))
        return And(tuple(items)) if joiner == "AND" else Or(tuple(items), position)

    def _unary(self, depth: int) -> Node:
        if self.token.kind == "word" and self.token.text == "NOT":
            position = self._take().position
            return Not(self._primary(depth + 1), position)
        return self._primary(depth)

    def _primary(self, depth: int) -> Node:
        if self.token.kind == "paren" and self.token.text == "(":
            self._take()
            node = self._expression(depth + 1)
            if not (self.token.kind == "paren" and self.token.text == ")"):
                raise self._unexpected("')'")
            self._take()
            return node
        return self._comparison()

    def _comparison(self) -> Comparison:
        token = self.token
        if token.kind != "word" or token.text in KEYWORDS:
            raise self._unexpected("a field name or '('")
        field = self._field(token)
        self._take()
        if self.token.kind != "op":
            raise self._unexpected(f"an operator ({' '.join(OPERATORS)}) after {field}")
        op = self._take().text
        value = self._value(op)
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise _error(f"has more than {MAX_COMPARISONS} comparisons")
        return Comparison(field, op, value, token.position)

    def _field(self, token: _Token) -> Field:
        return field_named(token.text, token.position, self.fields, FIELD)

    def _value(self, op: str) -> Value:
        token = self._take()
        if token.kind == "string":
            return _unescape(token)
        if token.kind == "number":
            number = float(token.text)
            if not math.isfinite(number):
                raise _error(f"has a number out of range at position {token.position}")
            return number
        if token.kind == "word" and token.text in ("true", "false"):
            return token.text == "true"
        if token.kind == "word" and token.text == "null":
            if op not in ("=", "!="):
                raise _error(f"compares null with {op} at position {token.position}; use = or !=")
            return None
        self.index -= 1
        raise self._unexpected("a value (a quoted string, a number, true, false or null)")


def _unescape(token: _Token) -> str:
    body = token.text[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1]
            if escaped not in '"\\':
                raise _error(
                    f"has an unknown escape \\{escaped} at position {token.position + index + 1}"
                    ' (only \\" and \\\\)'
                )
            out.append(escaped)
            index += 2
        else:
            out.append(char)
            index += 1
    text = "".join(out)
    if "\x00" in text:
        raise _error(f"has a NUL character in the string at position {token.position}")
    return text


def parse(text: str, fields: Fields) -> Node | None:
    """The tree of a filter, or None for an empty one; InvalidArgument
    naming `filter` (and the position) for anything else."""
    if len(text) > MAX_CHARS:
        raise _error(f"is {len(text)} characters; at most {MAX_CHARS}")
    if not text.strip():
        return None
    return _Parser(text, fields).parse()


def comparisons(node: Node) -> Iterator[Comparison]:
    """Every comparison of the tree, left to right."""
    if isinstance(node, Comparison):
        yield node
    elif isinstance(node, Not):
        yield from comparisons(node.item)
    else:
        for item in node.items:
            yield from comparisons(item)
