"""Path templates of `google.api.http` rules: parsing, matching, expansion."""

from __future__ import annotations

import pytest

from gateway.templates import Capture, Kind, Segment, TemplateError, parse_template

LIT: Kind = "literal"


def test_literals_only() -> None:
    template = parse_template("/api/v1/experiments")
    assert template.source == "/api/v1/experiments"
    assert template.segments == (
        Segment(LIT, "api"),
        Segment(LIT, "v1"),
        Segment(LIT, "experiments"),
    )
    assert template.captures == ()
    assert template.verb is None


def test_simple_variable_is_one_segment() -> None:
    template = parse_template("/api/v1/experiments/{experiment_id}")
    assert template.segments == (
        Segment(LIT, "api"),
        Segment(LIT, "v1"),
        Segment(LIT, "experiments"),
        Segment("single"),
    )
    assert template.captures == (Capture("experiment_id", 3, 4),)


def test_dotted_field_path_variable() -> None:
    template = parse_template("/v1/shelves/{shelf}/widgets/{widget.name}")
    assert template.captures == (Capture("shelf", 2, 3), Capture("widget.name", 4, 5))
    assert [s.kind for s in template.segments] == [LIT, LIT, "single", LIT, "single"]


def test_variable_with_sub_pattern_covers_several_segments() -> None:
    template = parse_template("/v1/{name=things/*}/parts/{part}")
    assert template.segments == (
        Segment(LIT, "v1"),
        Segment(LIT, "things"),
        Segment("single"),
        Segment(LIT, "parts"),
        Segment("single"),
    )
    assert template.captures == (Capture("name", 1, 3), Capture("part", 4, 5))


def test_double_wildcard() -> None:
    template = parse_template("/v1/{path=files/**}")
    assert template.segments == (Segment(LIT, "v1"), Segment(LIT, "files"), Segment("multi"))
    assert template.captures == (Capture("path", 1, 3),)
    bare = parse_template("/v1/**")
    assert bare.segments == (Segment(LIT, "v1"), Segment("multi"))
    assert bare.captures == ()


def test_custom_verb() -> None:
    template = parse_template("/v1/{name=operations/*}:cancel")
    assert template.verb == "cancel"
    assert template.segments == (Segment(LIT, "v1"), Segment(LIT, "operations"), Segment("single"))
    assert template.captures == (Capture("name", 1, 3),)
    assert parse_template("/v1/widgets:import").verb == "import"
    assert parse_template("/v1/widgets:import").segments == (
        Segment(LIT, "v1"),
        Segment(LIT, "widgets"),
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("v1/things", "path template must start with '/': 'v1/things'"),
        ("", "path template must start with '/': ''"),
        ("/", "bad segment '' in path template '/'"),
        ("/v1//things", "bad segment '' in path template '/v1//things'"),
        ("/v1/things/", "bad segment '' in path template '/v1/things/'"),
        ("/v1/{name", "unbalanced '{' in path template '/v1/{name'"),
        ("/v1/name}", "unbalanced '}' in path template '/v1/name}'"),
        ("/v1/{}", "bad variable '{}' in path template '/v1/{}'"),
        ("/v1/{1name}", "bad variable '{1name}' in path template '/v1/{1name}'"),
        ("/v1/{a..b}", "bad variable '{a..b}' in path template '/v1/{a..b}'"),
        ("/v1/{a={b}}", "nested variable in path template '/v1/{a={b}}'"),
        ("/v1/**/x/**", "more than one '**' in path template '/v1/**/x/**'"),
        ("/v1/things:", "bad verb in path template '/v1/things:'"),
        ("/v1/a:b/c", "bad segment 'a:b' in path template '/v1/a:b/c'"),
        ("/v1/{a}/{a}", "variable 'a' twice in path template '/v1/{a}/{a}'"),
        ("/v1/{a=x=y}", "bad segment 'x=y' in path template '/v1/{a=x=y}'"),
    ],
)
def test_malformed_templates_are_rejected(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(source)
    assert str(caught.value) == message


def test_template_error_is_a_value_error() -> None:
    assert issubclass(TemplateError, ValueError)


def test_match_literals_and_variables() -> None:
    template = parse_template("/v1/shelves/{shelf}/widgets/{widget.name}")
    assert template.match(["v1", "shelves", "s1", "widgets", "w1"], None) == {
        "shelf": "s1",
        "widget.name": "w1",
    }
    assert template.match(["v1", "shelves", "s1", "gadgets", "w1"], None) is None
    assert template.match(["v1", "shelves", "s1", "widgets"], None) is None
    assert template.match(["v1", "shelves", "s1", "widgets", "w1", "x"], None) is None
    assert template.match(["v1", "shelves", "s1", "widgets", "w1"], "cancel") is None


def test_match_multi_segment_variable_joins_its_segments() -> None:
    template = parse_template("/v1/{name=things/*}/parts")
    assert template.match(["v1", "things", "t1", "parts"], None) == {"name": "things/t1"}
    assert template.match(["v1", "others", "t1", "parts"], None) is None


def test_match_double_wildcard_covers_zero_or_more_segments() -> None:
    template = parse_template("/v1/{path=files/**}/meta")
    assert template.match(["v1", "files", "a", "b", "c", "meta"], None) == {"path": "files/a/b/c"}
    assert template.match(["v1", "files", "meta"], None) == {"path": "files"}
    assert template.match(["v1", "files", "a", "b"], None) is None
    assert template.match(["v1"], None) is None


def test_match_verb() -> None:
    template = parse_template("/v1/{name=operations/*}:cancel")
    assert template.match(["v1", "operations", "op1"], "cancel") == {"name": "operations/op1"}
    assert template.match(["v1", "operations", "op1"], None) is None
    assert template.match(["v1", "operations", "op1"], "delete") is None


def test_expand_percent_encodes_a_single_segment_value() -> None:
    template = parse_template("/api/v1/experiments/{experiment.id}")
    assert (
        template.expand({"experiment.id": "abc-123_x.y~z"}) == "/api/v1/experiments/abc-123_x.y~z"
    )
    assert template.expand({"experiment.id": "a/b c?d#e%f"}) == (
        "/api/v1/experiments/a%2Fb%20c%3Fd%23e%25f"
    )
    assert template.expand({"experiment.id": "café"}) == "/api/v1/experiments/caf%C3%A9"


def test_expand_keeps_the_slashes_of_a_multi_segment_value() -> None:
    template = parse_template("/v1/{name=things/*}/parts/{part}")
    assert template.expand({"name": "things/a b", "part": "p/1"}) == (
        "/v1/things/a%20b/parts/p%2F1"
    )
    assert parse_template("/v1/{path=files/**}").expand({"path": "files/x/y"}) == "/v1/files/x/y"


def test_expand_with_verb() -> None:
    template = parse_template("/v1/{name}:cancel")
    assert template.expand({"name": "op:1"}) == "/v1/op%3A1:cancel"


def test_shape_ignores_variable_names() -> None:
    first = parse_template("/v1/things/{thing_id}")
    second = parse_template("/v1/things/{name}")
    assert first.shape == second.shape
    assert first.shape == (
        (LIT, "v1"),
        (LIT, "things"),
        ("single", ""),
        (LIT, ":"),
    )
    assert parse_template("/v1/things/{name}:cancel").shape != first.shape


def test_specificity_prefers_literals_then_variables_then_double_wildcard() -> None:
    literal = parse_template("/v1/things/compare")
    variable = parse_template("/v1/things/{id}")
    wildcard = parse_template("/v1/{path=things/**}")
    assert literal.specificity == (0, 0, 0, 1)
    assert variable.specificity == (0, 0, 1, 1)
    assert wildcard.specificity == (0, 0, 2, 1)
    ordered = sorted([wildcard, variable, literal], key=lambda t: t.specificity)
    assert ordered == [literal, variable, wildcard]
