"""Texts for the fuzz tests of `filter` and `order_by` (CONTRACT §10), shared
by the parser, compiler and HTTP fuzz tests: arbitrary text, token soup of
the language's own pieces, well-formed texts of a list's fields, and those
with random mutations (inserted quotes, backslashes, backticks, parentheses,
keywords, unicode, NUL, runs of text near the bounds, edge-case numbers)."""

from __future__ import annotations

import re

from hypothesis import strategies as st

from research_common.filters import MAX_CHARS, Fields

Texts = st.SearchStrategy[str]

OPERATORS = ["=", "!=", "<", "<=", ">", ">="]
KEYWORDS = ["AND", "OR", "NOT", "and", "or", "not", "And", "IN", "LIKE", "IS", "ILIKE"]
WORDS = ["true", "false", "null", "TRUE", "Null", "None", "NaN", "inf", "Infinity"]
NUMBERS = [
    "0",
    "-0",
    "-0.0",
    "1",
    "-1",
    "0.5",
    "2.5E+3",
    "1E5",
    "1e999",
    "-1e999",
    "1e-999",
    "1e308",
    "1.7976931348623157e308",
    "1.8e308",
    "4.9e-324",
    "1e19",
    "-9223372036854775809",
    "9223372036854775808",
    "9007199254740993",
    "1e300",
    "9" * 400,
    "1" + "0" * 310,
    "0." + "0" * 400 + "1",
    "1e" + "9" * 30,
    "00",
    "1.",
    ".5",
    "1e",
    "--1",
    "+1",
    "0x10",
    "1_000",
]
TIMES = [
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00.001+00:00",
    "2004-03-15T07:55:47.472Z",
    "1969-12-31T23:59:59.9995Z",
    "1970-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999Z",
    "2026-01-01",
    "2026-01-01T00:00:00",
    "2026-13-01T00:00:00Z",
    "2026-01-01T00:00:00+99:00",
]
STRATEGY_IDS = ["a1b2c3d4-e5f6-7890-abcd-ef1234567890", "A1B2C3D4E5F67890ABCDEF1234567890"]
STATUSES = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED", "finished"]
# Pieces a hostile text is made of: the language's own syntax, SQL's and
# MLflow's, escapes, and characters that are easy to mishandle.
NASTY = [
    '"',
    "'",
    "`",
    "\\",
    '\\"',
    "\\\\",
    "\\n",
    "\\u0041",
    "(",
    ")",
    "((",
    "))",
    ",",
    ".",
    ";",
    "--",
    "/*",
    "*/",
    "%",
    "%s",
    "%(x)s",
    ":x",
    "?",
    "$1",
    "{",
    "}",
    "[",
    "]",
    "\x00",
    "\t",
    "\n",
    "\r\n",
    "\x0b",
    "\x85",
    "\xa0",
    "\u2028",
    "\u200b",
    "\ufeff",
    "\ud800",
    "é",
    "\u0130",
    "ß",
    "☃",
    "📈",
    "\U0001f600",
    "e",
    "E",
    "-",
    "+",
    " ",
    "' OR '1'='1",
    "'; DROP TABLE experiments; --",
    "` OR 1=1 --",
    '" OR metrics.a > 0 OR "',
]


def quote(text: str) -> str:
    """`text` as the language's double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def names(fields: Fields, *, well_formed: bool = False) -> Texts:
    """A field of `fields` as written: a column, or `<map>.<key>` with a
    well-formed key (unless `well_formed`, sometimes just over the
    128-character bound)."""
    bounds = ["k" * 128] if well_formed else ["k" * 128, "k" * 129]
    keys = st.one_of(
        st.from_regex(r"[A-Za-z0-9_.:-]{1,12}", fullmatch=True),
        st.sampled_from(["a", "oos.sharpe", "x:y", "-", ".", "1e5", *bounds]),
    )
    maps = st.tuples(st.sampled_from(sorted(fields.maps)), keys).map(".".join)
    columns = [st.sampled_from(sorted(fields.columns))] if fields.columns else []
    return st.one_of(*columns, maps)


def values(encodable: bool, *, well_formed: bool = False) -> Texts:
    """A value as written: of every kind, well-formed or (unless
    `well_formed`) not."""
    strings = st.text(_characters(encodable), max_size=12)
    good = st.one_of(
        st.sampled_from([n for n in NUMBERS if _is_number(n)]),
        st.sampled_from(["true", "false", "null"]),
        st.sampled_from([quote(t) for t in [*TIMES, *STRATEGY_IDS, *STATUSES]]),
        strings.map(quote),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.integers(-(10**25), 10**25).map(str),
    )
    if well_formed:
        return good
    return st.one_of(
        good,
        st.sampled_from(NUMBERS),
        st.sampled_from(WORDS),
        st.sampled_from(['"a\\n"', '"\\', '"a', "'a'", '"\\\\\\"', '""', '"x' + "y" * 600 + '"']),
    )


def _is_number(text: str) -> bool:
    """Whether `text` is a number of the language (in range or not)."""
    return re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", text) is not None


def _characters(encodable: bool) -> st.SearchStrategy[str]:
    """Any character; without lone surrogates when the text must be UTF-8
    (a query string)."""
    return st.characters(codec="utf-8") if encodable else st.characters(exclude_categories=())


def arbitrary(encodable: bool) -> Texts:
    return st.text(_characters(encodable), max_size=80)


def _join(parts: list[tuple[str, str]]) -> str:
    return "".join(piece + space for piece, space in parts)


SPACES = st.sampled_from(["", " ", " ", " ", "  ", "\t", "\n"])


def filters(fields: Fields, encodable: bool, *, well_formed: bool = False) -> Texts:
    """Filters of `fields` made of the language's tokens: comparisons of any
    value, joined by AND, OR, NOT and parentheses. Some are refused, for
    their values or for mixing AND with OR, unless `well_formed` (then each
    parses, though a service may still refuse a value)."""
    comparison = st.tuples(
        names(fields, well_formed=well_formed),
        st.sampled_from(OPERATORS),
        values(encodable, well_formed=well_formed),
    ).map(" ".join)
    # null takes = and != only.
    if well_formed:
        comparison = comparison.map(lambda text: re.sub(r" (<=?|>=?) null$", " = null", text))

    def joined(inner: Texts) -> Texts:
        item = inner.map(lambda text: f"({text})") if well_formed else inner
        return st.one_of(
            st.tuples(
                st.sampled_from([" AND ", " OR "]), st.lists(item, min_size=2, max_size=4)
            ).map(lambda pair: pair[0].join(pair[1])),
            inner.map(lambda text: f"({text})"),
            inner.map(lambda text: f"NOT ({text})"),
            *([] if well_formed else [inner.map(lambda text: f"NOT {text}")]),
        )

    return st.recursive(comparison, joined, max_leaves=8)


def orders(fields: Fields) -> Texts:
    """Well-formed orders of `fields`: 1 to 9 keys, each with or without a
    word, the words in any case."""
    word = st.sampled_from(["", " asc", " desc", " best", " ASC", " Desc", " BEST", "  desc "])
    key = st.tuples(names(fields), word).map("".join)
    return st.lists(key, min_size=1, max_size=9).map(", ".join)


def soup(fields: Fields, encodable: bool) -> Texts:
    """Up to 30 of the language's pieces (and hostile ones) in any order."""
    piece = st.one_of(
        names(fields),
        st.sampled_from([*OPERATORS, *KEYWORDS, *WORDS, "(", ")", ",", "asc", "desc", "best"]),
        values(encodable),
        st.sampled_from(NASTY if not encodable else [p for p in NASTY if p != "\ud800"]),
    )
    return st.lists(st.tuples(piece, SPACES), max_size=30).map(_join)


def long_texts(fields: Fields) -> Texts:
    """Texts at the bounds: around 4 KiB, 50 comparisons, 10 levels."""
    name = sorted(fields.columns)[0]
    comparison = f"{name} = 1"
    around = st.integers(-3, 3)
    return st.one_of(
        around.map(lambda d: f'{name} = "' + "x" * (MAX_CHARS - len(name) - 5 + d) + '"'),
        around.map(lambda d: " AND ".join([comparison] * (50 + d))),
        around.map(lambda d: "(" * (9 + d) + comparison + ")" * (9 + d)),
        around.map(lambda d: "NOT (" * (9 + d) + comparison + ")" * (9 + d)),
        st.sampled_from(["(" * 5000, ")" * 5000, '"' * 5000, "\\" * 5000, "a" * 4097, " " * 4096]),
        st.integers(1, 20_000).map(lambda n: "(" * n),
        st.integers(1, 600).map(lambda n: ", ".join([f"metrics.k{i}" for i in range(n)])),
    )


@st.composite
def mutated(draw: st.DrawFn, base: Texts, encodable: bool) -> str:
    """A text of `base` with one to four random edits: a hostile piece or
    random text inserted, a slice deleted, repeated or replaced."""
    text = draw(base)
    pieces = [p for p in NASTY if not (encodable and p == "\ud800")]
    insertion = st.one_of(
        st.sampled_from(pieces),
        st.sampled_from([*KEYWORDS, *WORDS, *OPERATORS, *NUMBERS]),
        st.text(_characters(encodable), min_size=1, max_size=4),
    )
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 8)))
        edit = draw(st.sampled_from(["insert", "delete", "repeat", "replace"]))
        if edit == "insert":
            text = text[:start] + draw(insertion) + text[start:]
        elif edit == "delete":
            text = text[:start] + text[end:]
        elif edit == "repeat":
            text = text[:end] + text[start:end] * draw(st.integers(1, 3)) + text[end:]
        else:
            text = text[:start] + draw(insertion) + text[end:]
    return text


def weighted(*choices: tuple[int, Texts]) -> Texts:
    """Each strategy drawn in proportion to its weight (st.one_of would
    flatten nested one_of strategies into equal branches)."""
    branches = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(branches) - 1).flatmap(lambda index: branches[index])


def filter_texts(fields: Fields, *, encodable: bool = False) -> Texts:
    """Every kind of filter text above, for a list of `fields`; `encodable`
    keeps them UTF-8 (for a query string)."""
    well_formed = filters(fields, encodable)
    return weighted(
        (2, arbitrary(encodable)),
        (2, soup(fields, encodable)),
        (2, well_formed),
        (2, mutated(well_formed, encodable)),
        (1, mutated(soup(fields, encodable), encodable)),
        (1, long_texts(fields)),
    )


def order_texts(fields: Fields, *, encodable: bool = False) -> Texts:
    """Every kind of order_by text, for a list's order `fields`."""
    well_formed = orders(fields)
    return weighted(
        (2, arbitrary(encodable)),
        (2, soup(fields, encodable)),
        (2, well_formed),
        (2, mutated(well_formed, encodable)),
        (1, long_texts(fields)),
    )
