"""Entity tags and conditional requests (RFC 9110 §8.8.3, §13.1.1, §13.1.2)
for the methods whose proto options ask for them: `ETag` from the response
field `research.http.v1.response` names (`etag_field`), and the two request
headers `research.http.v1.request` maps (AIP-154):

- `If-Match` is `*` or one strong entity tag; its tag without the quotes
  (or "*") goes into the request field `if_match_field` names, and the
  service decides whether it matches (ABORTED, 409, when it does not). The
  rest of what RFC 9110 allows cannot be put in one field and is refused
  with 400 rather than dropped: a list of tags, a weak tag (which never
  matches strongly), an empty header, and the tags `""` and `"*"`, which
  the field could not tell from "no condition" and from `*`;
- `If-None-Match` is `*` or a list of tags, compared weakly with the etag of
  the answer: a match is answered 304 with no body.

What the header says is parsed before the call, so a malformed one is 400
and never reaches the service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.bindings import RequestRule
from gateway.errors import HttpError
from gateway.http import Request
from research_common.errors import echo

IF_MATCH = "If-Match"
IF_NONE_MATCH = "If-None-Match"
ANY = "*"
# etagc = %x21 / %x23-7E / obs-text: any visible character but '"', and
# (as header values are read as latin-1) the bytes 0x80-0xFF.
_OPAQUE = re.compile(r"[\x21\x23-\x7e\x80-\xff]*")
_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
_OWS = " \t"
_IF_MATCH_FORM = (
    f"{IF_MATCH} must be * or one strong entity tag in double quotes, as the ETag header "
    f'gives it ({IF_MATCH}: "<etag>")'
)
_IF_NONE_MATCH_FORM = (
    f"{IF_NONE_MATCH} must be * or entity tags in double quotes separated by commas, as the "
    f'ETag header gives them ({IF_NONE_MATCH}: "<etag>")'
)


def entity_tag(opaque: str) -> str | None:
    """The strong entity tag `"<opaque>"` of an `ETag` header, or None when
    `opaque` holds a character an entity tag cannot (a quote, a space, a
    control or a non-latin-1 character)."""
    return f'"{opaque}"' if _OPAQUE.fullmatch(opaque) else None


@dataclass(frozen=True, slots=True)
class Conditions:
    """What the conditional headers of one request ask, as its binding
    takes them."""

    # For the request's `if_match_field`: the tag without quotes, or "*".
    if_match: str | None = None
    # `If-None-Match`: the opaque tags it lists (W/ dropped: the comparison
    # is weak); None when absent or not taken. `*` is a flag of its own: a
    # tag "*" is not the wildcard.
    if_none_match: frozenset[str] | None = None
    if_none_match_any: bool = False

    def not_modified(self, etag: str | None) -> bool:
        """True when a successful answer whose tag is `etag` is 304: `*`
        matches any current representation (the call succeeded), a list
        matches when it holds the tag."""
        if self.if_none_match_any:
            return True
        return bool(etag) and self.if_none_match is not None and etag in self.if_none_match


def read_conditions(rule: RequestRule, request: Request) -> Conditions:
    """The conditions of `request` that `rule` takes; 400 naming the header
    when one is malformed. Headers the rule does not take are ignored."""
    if_match = None
    if rule.if_match_field is not None:
        given = request.field_value("if-match")
        if given is not None:
            if_match = parse_if_match(given)
    if not rule.if_none_match:
        return Conditions(if_match)
    given = request.field_value("if-none-match")
    if given is None:
        return Conditions(if_match)
    tags = _entity_tags(given, IF_NONE_MATCH, _IF_NONE_MATCH_FORM)
    if tags is None:
        return Conditions(if_match, if_none_match_any=True)
    return Conditions(if_match, frozenset(opaque for _, opaque in tags))


def parse_if_match(value: str) -> str:
    """The tag of an `If-Match` value without its quotes, or "*"."""
    tags = _entity_tags(value, IF_MATCH, _IF_MATCH_FORM)
    if tags is None:
        return ANY
    problem = None
    if not tags:
        problem = "it is empty"
    elif len(tags) > 1:
        problem = f"it lists {len(tags)} tags"
    elif tags[0][0]:
        problem = "a weak tag (W/) never matches: If-Match compares strongly"
    elif tags[0][1] == "":
        problem = 'the empty tag "" is no resource\'s'
    elif tags[0][1] == ANY:
        problem = 'the tag "*" would read as any: send * without quotes'
    if problem is not None:
        raise _malformed(IF_MATCH, _IF_MATCH_FORM, value, problem)
    return tags[0][1]


def _entity_tags(value: str, header: str, form: str) -> list[tuple[bool, str]] | None:
    """(weak, opaque tag) of each entity tag of a comma-separated list (empty
    elements allowed, RFC 9110 §5.6.1), or None for `*`; 400 when `value`
    is neither. A comma may be inside a tag, so the list is scanned tag by
    tag rather than split."""
    text = value.strip(_OWS)
    if text == ANY:
        return None
    tags: list[tuple[bool, str]] = []
    at = 0
    while at < len(text):
        if text[at] in _OWS or text[at] == ",":
            at += 1
            continue
        found = _TAG.match(text, at)
        if found is None:
            raise _malformed(header, form, value)
        tags.append((found.group(1) is not None, found.group(2)))
        at = found.end()
        while at < len(text) and text[at] in _OWS:
            at += 1
        if at < len(text) and text[at] != ",":
            raise _malformed(header, form, value)
    return tags


def _malformed(header: str, form: str, value: str, problem: str | None = None) -> HttpError:
    reason = f": {problem}" if problem else ""
    return HttpError.bad_request(f"{form}{reason}; got {echo(value)}", header)
