"""Entity tags and conditional headers (gateway/preconditions.py), and the
checks bindings make at start-up on the `research.http.v1` options that ask
for them: a rule that cannot be served is refused before any request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from gateway.bindings import RequestRule, bindings_for
from gateway.errors import HttpError
from gateway.preconditions import Conditions, entity_tag, parse_if_match
from gateway.templates import TemplateError
from tests.gateway.widgets_proto import proto_module

BAD_RULES_PROTO = """\
syntax = "proto3";

package demo.badrules.v1;

import "google/api/annotations.proto";
import "research/http/v1/response.proto";

service NoneMatchOnPost {
  rpc Touch(ThingRequest) returns (Thing) {
    option (google.api.http) = {post: "/v1/things/{name}" body: "*"};
    option (research.http.v1.response) = {etag_field: "etag"};
    option (research.http.v1.request) = {if_none_match: true};
  }
}

service NoneMatchWithoutEtag {
  rpc Get(ThingRequest) returns (Thing) {
    option (google.api.http) = {get: "/v1/things/{name}"};
    option (research.http.v1.request) = {if_none_match: true};
  }
}

service EtagNotString {
  rpc Get(ThingRequest) returns (Thing) {
    option (google.api.http) = {get: "/v1/things/{name}"};
    option (research.http.v1.response) = {etag_field: "count"};
  }
}

service EtagUnknown {
  rpc Get(ThingRequest) returns (Thing) {
    option (google.api.http) = {get: "/v1/things/{name}"};
    option (research.http.v1.response) = {etag_field: "thing.etag"};
  }
}

service IfMatchPathVariable {
  rpc Delete(ThingRequest) returns (Thing) {
    option (google.api.http) = {delete: "/v1/things/{etag}"};
    option (research.http.v1.request) = {if_match_field: "etag"};
  }
}

service IfMatchInBody {
  rpc Update(ThingRequest) returns (Thing) {
    option (google.api.http) = {patch: "/v1/things/{name}" body: "thing"};
    option (research.http.v1.request) = {if_match_field: "thing.etag"};
  }
}

service IfMatchNotString {
  rpc Delete(ThingRequest) returns (Thing) {
    option (google.api.http) = {delete: "/v1/things/{name}"};
    option (research.http.v1.request) = {if_match_field: "count"};
  }
}

service Fine {
  rpc Get(ThingRequest) returns (Thing) {
    option (google.api.http) = {
      get: "/v1/things/{name}"
      additional_bindings {get: "/v1/named/{name}"}
    };
    option (research.http.v1.response) = {etag_field: "etag"};
    option (research.http.v1.request) = {if_none_match: true};
  }
  rpc Update(ThingRequest) returns (Thing) {
    option (google.api.http) = {patch: "/v1/things/{name}" body: "thing"};
    option (research.http.v1.request) = {if_match_field: "etag"};
  }
}

message Thing {
  string name = 1;
  string etag = 2;
  int32 count = 3;
}

message ThingRequest {
  string name = 1;
  string etag = 2;
  int32 count = 3;
  Thing thing = 4;
}
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    directory: Path = tmp_path_factory.mktemp("badrules")
    with proto_module(directory, "demo/badrules/v1/badrules.proto", BAD_RULES_PROTO) as module:
        yield module


@pytest.mark.parametrize(
    ("service", "message"),
    [
        (
            "NoneMatchOnPost",
            "demo.badrules.v1.NoneMatchOnPost.Touch request: if_none_match on POST; "
            "only GET answers 304",
        ),
        (
            "NoneMatchWithoutEtag",
            "demo.badrules.v1.NoneMatchWithoutEtag.Get request: if_none_match needs the "
            "response rule's etag_field (the tag it compares)",
        ),
        (
            "EtagNotString",
            "demo.badrules.v1.EtagNotString.Get etag_field: demo.badrules.v1.Thing.count "
            "must be a string field",
        ),
        (
            "EtagUnknown",
            "demo.badrules.v1.EtagUnknown.Get etag_field: demo.badrules.v1.Thing has no "
            "field 'thing.etag'",
        ),
        (
            "IfMatchPathVariable",
            "demo.badrules.v1.IfMatchPathVariable.Delete request: if_match_field 'etag' is a "
            "path variable",
        ),
        (
            "IfMatchInBody",
            "demo.badrules.v1.IfMatchInBody.Update request: if_match_field 'thing.etag' is in "
            "the body 'thing'",
        ),
        (
            "IfMatchNotString",
            "demo.badrules.v1.IfMatchNotString.Delete request if_match_field: "
            "demo.badrules.v1.ThingRequest.count must be a string field",
        ),
    ],
)
def test_a_rule_that_cannot_be_served_is_refused_at_start_up(
    rules: ModuleType, service: str, message: str
) -> None:
    with pytest.raises(TemplateError) as refused:
        bindings_for(rules.DESCRIPTOR.services_by_name[service], "things")
    assert str(refused.value) == message


def test_the_rules_are_read_into_every_binding_of_the_method(rules: ModuleType) -> None:
    bindings = bindings_for(rules.DESCRIPTOR.services_by_name["Fine"], "things")
    found = {(b.http_method, b.template.source): b for b in bindings}
    for path in ("/v1/things/{name}", "/v1/named/{name}"):
        get = found["GET", path]
        assert get.response.etag_field == "etag"
        assert get.request == RequestRule(if_none_match=True)
    update = found["PATCH", "/v1/things/{name}"]
    assert update.request == RequestRule(if_match_field="etag")
    assert update.response.etag_field is None


@pytest.mark.parametrize(
    ("opaque", "tag"),
    [
        ("abc", '"abc"'),
        ("3-5f1e", '"3-5f1e"'),
        ("", '""'),
        ("a,b;W/", '"a,b;W/"'),
        ("caf\u00e9", '"caf\u00e9"'),  # obs-text: sent as the latin-1 byte it is
        ('a"b', None),
        ("a b", None),
        ("a\tb", None),
        ("\x7f", None),
        ("\u20ac", None),  # no latin-1 byte: a header cannot carry it
    ],
)
def test_entity_tag(opaque: str, tag: str | None) -> None:
    assert entity_tag(opaque) == tag


@pytest.mark.parametrize(
    ("given", "tag"),
    [
        ("*", "*"),
        ('"abc"', "abc"),
        (' \t"abc"\t ', "abc"),
        ('"abc",', "abc"),
        ('"a,b"', "a,b"),
        ('"caf\u00e9"', "caf\u00e9"),
    ],
)
def test_if_match(given: str, tag: str) -> None:
    assert parse_if_match(given) == tag


def test_a_malformed_if_match_names_the_header() -> None:
    with pytest.raises(HttpError) as refused:
        parse_if_match("abc")
    assert refused.value.status == 400
    assert refused.value.details == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "field_violations": [{"field": "If-Match", "description": refused.value.message}],
        }
    ]


def test_not_modified() -> None:
    assert not Conditions().not_modified("e1")
    assert Conditions(if_none_match=frozenset({"e1", "e2"})).not_modified("e1")
    assert not Conditions(if_none_match=frozenset({"e2"})).not_modified("e1")
    assert not Conditions(if_none_match=frozenset({""})).not_modified(None)
    assert not Conditions(if_none_match=frozenset({"*"})).not_modified("e1")
    # `*`: any current representation, tagged or not.
    assert Conditions(if_none_match_any=True).not_modified("e1")
    assert Conditions(if_none_match_any=True).not_modified(None)
