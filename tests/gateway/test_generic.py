"""The gateway routes a service it has never seen, from its annotations alone.

The test writes `demo/widgets/v1/widgets.proto` (see widgets_proto.py) into
a temporary directory, compiles it with grpc_tools.protoc, serves it from a
real grpc.aio server whose generic handlers record every request they get,
and puts the unchanged gateway (`gateway.server.create_server`) in front of
it. Each HTTP call is checked against the exact request message the service
received and the exact JSON the gateway answered.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
from google.protobuf import any_pb2, field_mask_pb2, struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2, status_pb2
from grpc import aio

from gateway.config import Settings as GatewaySettings
from gateway.server import create_server
from gateway.upstreams import Upstream
from tests.gateway.widgets_proto import SERVICE, widgets_module

# One event loop for the module: the servers start once, not once a test.
pytestmark = pytest.mark.asyncio(loop_scope="module")

Handler = Callable[[Any, aio.ServicerContext[Any, Any]], Awaitable[Any]]


@pytest.fixture(scope="module")
def widgets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    with widgets_module(tmp_path_factory.mktemp("widgets")) as module:
        yield module


@dataclass
class Demo:
    http: httpx.AsyncClient
    widgets: ModuleType
    calls: list[tuple[str, Message]] = field(default_factory=list)

    def only_call(self) -> tuple[str, Message]:
        """The one call the service got since the test began."""
        assert len(self.calls) == 1, self.calls
        return self.calls[0]


def stamp(text: str) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    message.FromJsonString(text)
    return message


def sample_widget(w: ModuleType, name: str) -> Any:
    attributes = struct_pb2.Struct()
    attributes.update({"n": 200, "ratio": 1.5, "list": [1, "a", None]})
    return w.Widget(
        name=name,
        color=w.RED,
        size=3,
        tags=["t1", "t2"],
        attributes=attributes,
        scores={"nan": math.nan, "ok": 0.5},
        serial=2**40,
        blob=b"\x00\xff",
        made_at=stamp("2024-01-02T03:04:05Z"),
    )


def widget_json(**fields: Any) -> dict[str, Any]:
    """A rendered Widget: every field present, these ones set."""
    return {
        "name": "",
        "color": "COLOR_UNSPECIFIED",
        "size": 0,
        "note": None,
        "tags": [],
        "attributes": None,
        "scores": {},
        "serial": 0,
        "blob": "",
        "made_at": None,
        "weight": None,
        "counts": {},
        "extra": None,
        "parent": None,
        **fields,
    }


def sample_json(name: str) -> dict[str, Any]:
    return widget_json(
        name=name,
        color="RED",
        size=3,
        tags=["t1", "t2"],
        attributes={"n": 200, "ratio": 1.5, "list": [1, "a", None]},
        scores={"nan": None, "ok": 0.5},
        serial=2**40,
        blob="AP8=",
        made_at="2024-01-02T03:04:05Z",
    )


def behaviours(w: ModuleType) -> dict[str, Handler]:
    """What each method answers, built from the request it got."""

    async def get_widget(request: Any, context: Any) -> Any:
        return w.GetWidgetResponse(widget=sample_widget(w, request.widget.name))

    async def update_widget(request: Any, context: Any) -> Any:
        return request.widget

    async def delete_widget(request: Any, context: Any) -> Any:
        return w.DeleteWidgetResponse()

    async def list_featured(request: Any, context: Any) -> Any:
        return w.ListWidgetsResponse(widgets=[w.Widget(name="star")], total=1)

    async def list_widgets(request: Any, context: Any) -> Any:
        names = [f"{request.shelf}-1", f"{request.shelf}-2"]
        return w.ListWidgetsResponse(widgets=[w.Widget(name=n) for n in names], total=2)

    async def create_widget(request: Any, context: Any) -> Any:
        return w.CreateWidgetResponse(shelf=request.shelf, widget=request.widget)

    async def tag_widgets(request: Any, context: Any) -> Any:
        return w.TagWidgetsResponse(tagged=list(request.names))

    async def cancel_widget(request: Any, context: Any) -> Any:
        return w.Widget(name=request.name, note=request.reason)

    async def search_widgets(request: Any, context: Any) -> Any:
        found = w.Widget(name=request.path, color=request.filter.color)
        return w.ListWidgetsResponse(widgets=[found], total=request.limit)

    async def import_widget(request: Any, context: Any) -> Any:
        return w.ImportWidgetResponse(
            widget=w.Widget(name=request.source), created=not request.exists
        )

    async def fail(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        code = grpc.StatusCode[request.code]
        if not request.bad_field:
            await context.abort(code, request.message)
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=request.bad_field, description=request.message
        )
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        status = status_pb2.Status(code=code.value[0], message=request.message, details=[detail])
        await context.abort(
            code,
            request.message,
            trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
        )

    async def get_versioned(request: Any, context: Any) -> Any:
        # "untagged" has no etag; "quoted" one no ETag header can carry.
        etag = {"untagged": "", "quoted": 'a"b'}.get(request.name, f"e-{request.name}")
        return w.GetVersionedResponse(versioned=w.Versioned(name=request.name, etag=etag))

    async def update_versioned(request: Any, context: Any) -> Any:
        return w.Versioned(name=request.versioned.name, etag="e2", note=request.versioned.note)

    async def restore_versioned(request: Any, context: Any) -> Any:
        return w.Versioned(name=request.name, etag="e3", note=request.reason)

    async def get_version(request: Any, context: Any) -> Any:
        return w.Versioned(name=request.name, version=request.version)

    return {
        "GetVersioned": get_versioned,
        "UpdateVersioned": update_versioned,
        "DeleteVersioned": delete_widget,
        "RestoreVersioned": restore_versioned,
        "GetVersion": get_version,
        "GetWidget": get_widget,
        "UpdateWidget": update_widget,
        "DeleteWidget": delete_widget,
        "ListFeatured": list_featured,
        "ListWidgets": list_widgets,
        "CreateWidget": create_widget,
        "TagWidgets": tag_widgets,
        "CancelWidget": cancel_widget,
        "SearchWidgets": search_widgets,
        "ImportWidget": import_widget,
        "Fail": fail,
        "Hidden": fail,
    }


def recording_handler(
    w: ModuleType, calls: list[tuple[str, Message]]
) -> grpc.GenericRpcHandler[Any, Any]:
    """Generic handlers for every method of WidgetService: each records
    (method name, request) and answers with its behaviour."""
    service = w.DESCRIPTOR.services_by_name["WidgetService"]
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for name, behaviour in behaviours(w).items():
        method = service.methods_by_name[name]

        def bind(name: str = name, behaviour: Handler = behaviour) -> Handler:
            async def handle(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
                calls.append((name, request))
                return await behaviour(request, context)

            return handle

        handlers[name] = grpc.unary_unary_rpc_method_handler(
            bind(),
            request_deserializer=GetMessageClass(method.input_type).FromString,
            response_serializer=lambda message: message.SerializeToString(),
        )
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(widgets: ModuleType) -> AsyncIterator[Demo]:
    """The recording WidgetService on a free port, the gateway in front of it
    (also on a free port), and an HTTP client of the gateway: once a module."""
    calls: list[tuple[str, Message]] = []
    upstream = aio.server()
    upstream.add_generic_rpc_handlers((recording_handler(widgets, calls),))
    upstream_port = upstream.add_insecure_port("127.0.0.1:0")
    await upstream.start()
    service = widgets.DESCRIPTOR.services_by_name["WidgetService"]
    gateway, port = create_server(
        GatewaySettings(),
        "127.0.0.1:0",
        upstreams=[Upstream("widgets", f"127.0.0.1:{upstream_port}", (service,))],
    )
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield Demo(http, widgets, calls)
    finally:
        await gateway.stop()
        await upstream.stop(None)


@pytest.fixture
def demo(served: Demo) -> Demo:
    """The served demo with no calls recorded yet."""
    served.calls.clear()
    return served


def error_body(code: int, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "detail": message, "details": details or []}


# --- each route reaches its method with the right fields ----------------------


async def test_path_variables_nested_variable_and_query(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.get(
        "/v1/shelves/main/widgets/w1", params={"view": "FULL", "widget.color": "BLUE"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    # response_body: "widget" — the widget itself, not {"widget": ...}
    assert response.json() == sample_json("w1")
    assert demo.only_call() == (
        "GetWidget",
        w.GetWidgetRequest(shelf="main", widget=w.Widget(name="w1", color=w.BLUE), view=w.FULL),
    )


async def test_additional_binding_is_a_route_of_its_own(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.get("/v1/widgets/w2")
    assert response.status_code == 200
    # The additional binding has no response_body: the whole response.
    assert response.json() == {"widget": sample_json("w2")}
    assert demo.only_call() == ("GetWidget", w.GetWidgetRequest(widget=w.Widget(name="w2")))


async def test_query_parameters_onto_the_remaining_fields(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.get(
        "/v1/shelves/s1/widgets?name_prefix=big%20one&page_size=25&labels=a&labels=b%26c"
        "&view=BASIC&filter.color=GREEN&filter.min_size=0&include_hidden=false&since=-1"
    )
    assert response.status_code == 200
    # response_body on a repeated field: a bare JSON array.
    assert response.json() == [widget_json(name="s1-1"), widget_json(name="s1-2")]
    name, request = demo.only_call()
    assert (name, request) == (
        "ListWidgets",
        w.ListWidgetsRequest(
            shelf="s1",
            name_prefix="big one",
            page_size=25,
            labels=["a", "b&c"],
            view=w.BASIC,
            filter=w.Filter(color=w.GREEN, min_size=0),
            include_hidden=False,
            since=-1,
        ),
    )
    assert request.HasField("include_hidden")


async def test_literal_segment_wins_over_variable(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.get("/v1/shelves/s1/widgets/featured")
    assert response.status_code == 200
    assert response.json() == {"widgets": [widget_json(name="star")], "total": 1}
    assert demo.only_call() == ("ListFeatured", w.ListWidgetsRequest(shelf="s1"))
    demo.calls.clear()
    response = await demo.http.get("/v1/shelves/s1/widgets/featured2")
    assert response.status_code == 200
    assert demo.only_call() == (
        "GetWidget",
        w.GetWidgetRequest(shelf="s1", widget=w.Widget(name="featured2")),
    )


async def test_trailing_slash(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.get("/v1/shelves/s1/widgets/")
    assert response.status_code == 200
    assert response.json() == [widget_json(name="s1-1"), widget_json(name="s1-2")]
    response = await demo.http.get("/v1/shelves/s1/widgets/w1/")
    assert response.status_code == 200
    assert response.json() == sample_json("w1")
    assert demo.calls == [
        ("ListWidgets", w.ListWidgetsRequest(shelf="s1")),
        ("GetWidget", w.GetWidgetRequest(shelf="s1", widget=w.Widget(name="w1"))),
    ]


async def test_path_variables_are_percent_decoded(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.get("/v1/shelves/caf%C3%A9/widgets/a%2Fb%20c%3Fd")
    assert response.status_code == 200
    assert response.json() == sample_json("a/b c?d")
    assert demo.only_call() == (
        "GetWidget",
        w.GetWidgetRequest(shelf="café", widget=w.Widget(name="a/b c?d")),
    )


async def test_body_star_with_201_and_location(demo: Demo) -> None:
    w = demo.widgets
    body = {
        "widget": {"name": "a/b", "size": 4, "attributes": {"n": 200}, "scores": {"x": 1}},
        "validate_only": True,
    }
    response = await demo.http.post("/v1/shelves/main%20shelf/widgets", json=body)
    assert response.status_code == 201
    assert response.headers["location"] == "/v1/shelves/main%20shelf/widgets/a%2Fb"
    assert response.json() == {
        "shelf": "main shelf",
        "widget": widget_json(name="a/b", size=4, attributes={"n": 200}, scores={"x": 1.0}),
    }
    attributes = struct_pb2.Struct()
    attributes.update({"n": 200})
    assert demo.only_call() == (
        "CreateWidget",
        w.CreateWidgetRequest(
            shelf="main shelf",
            widget=w.Widget(name="a/b", size=4, attributes=attributes, scores={"x": 1.0}),
            validate_only=True,
        ),
    )


async def test_location_routes_back_to_the_resource(demo: Demo) -> None:
    created = await demo.http.post("/v1/shelves/s%2F1/widgets", json={"widget": {"name": "é 1"}})
    assert created.headers["location"] == "/v1/shelves/s%2F1/widgets/%C3%A9%201"
    fetched = await demo.http.get(created.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == sample_json("é 1")
    assert demo.calls[1] == (
        "GetWidget",
        demo.widgets.GetWidgetRequest(shelf="s/1", widget=demo.widgets.Widget(name="é 1")),
    )


async def test_body_onto_a_message_field_derives_the_update_mask(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.patch(
        "/v1/shelves/s1/widgets/w1", json={"size": 5, "note": None, "tags": ["x"]}
    )
    assert response.status_code == 200
    assert response.json() == widget_json(name="w1", size=5, tags=["x"])
    assert demo.only_call() == (
        "UpdateWidget",
        w.UpdateWidgetRequest(
            shelf="s1",
            widget=w.Widget(name="w1", size=5, tags=["x"]),
            update_mask=field_mask_pb2.FieldMask(paths=["size", "note", "tags"]),
        ),
    )


async def test_an_explicit_update_mask_must_name_what_the_body_holds(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.patch(
        "/v1/shelves/s1/widgets/w1?update_mask=color", json={"color": "GREEN"}
    )
    assert response.status_code == 200
    assert demo.only_call() == (
        "UpdateWidget",
        w.UpdateWidgetRequest(
            shelf="s1",
            widget=w.Widget(name="w1", color=w.GREEN),
            update_mask=field_mask_pb2.FieldMask(paths=["color"]),
        ),
    )
    # A body key the mask leaves out was dropped silently before.
    response = await demo.http.patch(
        "/v1/shelves/s1/widgets/w1?update_mask=color", json={"size": 5, "color": "GREEN"}
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith(
        "size is in the body but update_mask (color) does not name it"
    )


async def test_body_onto_a_repeated_field_is_a_bare_array(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.post("/v1/shelves/s1/widgets:tag?color=BLUE", json=["a", "b"])
    assert response.status_code == 200
    assert response.json() == {"tagged": ["a", "b"]}
    assert demo.only_call() == (
        "TagWidgets",
        w.TagWidgetsRequest(shelf="s1", names=["a", "b"], color=w.BLUE),
    )


async def test_custom_verb_beside_a_variable_of_the_same_shape(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.post("/v1/shelves/s1/widgets/w1:cancel", json={"reason": "late"})
    assert response.status_code == 200
    assert response.json() == widget_json(name="w1", note="late")
    # Without the verb's method, the ':' belongs to the widget's name.
    response = await demo.http.get("/v1/shelves/s1/widgets/w1:cancel")
    assert response.status_code == 200
    assert response.json() == sample_json("w1:cancel")
    assert demo.calls == [
        ("CancelWidget", w.CancelWidgetRequest(shelf="s1", name="w1", reason="late")),
        ("GetWidget", w.GetWidgetRequest(shelf="s1", widget=w.Widget(name="w1:cancel"))),
    ]


async def test_custom_method_and_multi_segment_variable(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.request(
        "SEARCH", "/v1/shelves/a/b%20c/d", params={"limit": "3"}, json={"color": "RED"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "widgets": [widget_json(name="shelves/a/b c/d", color="RED")],
        "total": 3,
    }
    assert demo.only_call() == (
        "SearchWidgets",
        w.SearchWidgetsRequest(path="shelves/a/b c/d", filter=w.Filter(color=w.RED), limit=3),
    )


async def test_delete_is_204_with_an_empty_body(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.delete("/v1/shelves/s1/widgets/w1?force=true")
    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in response.headers
    assert response.headers["content-length"] == "0"
    # DeleteWidget's template names the variable {name}, GetWidget's {widget.name}.
    assert demo.only_call() == (
        "DeleteWidget",
        w.DeleteWidgetRequest(shelf="s1", name="w1", force=True),
    )


async def test_created_field_decides_201_or_200(demo: Demo) -> None:
    w = demo.widgets
    created = await demo.http.post("/v1/widgets:import", json={"source": "src 1"})
    assert created.status_code == 201
    assert created.headers["location"] == "/v1/widgets/src%201"
    assert created.json() == widget_json(name="src 1")
    found = await demo.http.post("/v1/widgets:import", json={"source": "src 1", "exists": True})
    assert found.status_code == 200
    assert "location" not in found.headers
    assert found.json() == widget_json(name="src 1")
    assert demo.calls == [
        ("ImportWidget", w.ImportWidgetRequest(source="src 1")),
        ("ImportWidget", w.ImportWidgetRequest(source="src 1", exists=True)),
    ]


# --- what the gateway answers itself ------------------------------------------


async def test_wrong_method_is_405_with_allow(demo: Demo) -> None:
    response = await demo.http.put("/v1/shelves/s1/widgets/w1", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH"
    assert response.json() == error_body(
        12, "PUT is not allowed on /v1/shelves/s1/widgets/w1; allowed: DELETE, GET, HEAD, PATCH"
    )
    response = await demo.http.get("/v1/widgets:import")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert demo.calls == []


async def test_unknown_path_is_404_with_the_error_body(demo: Demo) -> None:
    response = await demo.http.get("/v1/gadgets/g1")
    assert response.status_code == 404
    assert response.json() == error_body(5, "no route for GET /v1/gadgets/g1")
    # Empty segment: no route either.
    response = await demo.http.get("/v1/shelves//widgets")
    assert response.status_code == 404
    assert response.json() == error_body(5, "no route for GET /v1/shelves//widgets")
    assert demo.calls == []


async def test_invalid_utf8_in_the_path_is_400(demo: Demo) -> None:
    response = await demo.http.get("/v1/shelves/%FF/widgets")
    assert response.status_code == 400
    assert response.json() == error_body(3, "the path is not valid UTF-8 once percent-decoded")


async def test_strict_body_and_query_never_reach_the_service(demo: Demo) -> None:
    unknown = "sise is not a field of Widget (unknown field)"
    response = await demo.http.patch("/v1/shelves/s1/widgets/w1", json={"sise": 5})
    assert response.status_code == 400
    assert response.json() == error_body(
        3,
        unknown,
        [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "field_violations": [{"field": "sise", "description": unknown}],
            }
        ],
    )
    response = await demo.http.get("/v1/shelves/s1/widgets?page_sise=5")
    assert response.status_code == 400
    assert response.json()["message"] == (
        "page_sise is not a query parameter of this route (unknown parameter)"
    )
    response = await demo.http.get("/v1/shelves/s1/widgets?view=HUGE")
    assert response.status_code == 400
    assert response.json()["message"] == (
        "view must be one of VIEW_UNSPECIFIED, BASIC, FULL (demo.widgets.v1.View), got 'HUGE'"
    )
    assert demo.calls == []


# --- upstream errors by the contract's table ----------------------------------


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("INVALID_ARGUMENT", 400, "bad thing"),
        ("FAILED_PRECONDITION", 400, "bad thing"),
        ("OUT_OF_RANGE", 400, "bad thing"),
        ("UNAUTHENTICATED", 401, "bad thing"),
        ("PERMISSION_DENIED", 403, "bad thing"),
        ("NOT_FOUND", 404, "bad thing"),
        ("ALREADY_EXISTS", 409, "bad thing"),
        ("ABORTED", 409, "bad thing"),
        ("RESOURCE_EXHAUSTED", 429, "bad thing"),
        ("UNIMPLEMENTED", 501, "bad thing"),
        ("INTERNAL", 500, "bad thing"),
        ("UNKNOWN", 500, "bad thing"),
        ("DATA_LOSS", 500, "bad thing"),
        # Without a google.rpc.Status these read as transport failures.
        ("UNAVAILABLE", 503, "the widgets service is unavailable: bad thing"),
        ("DEADLINE_EXCEEDED", 504, "the widgets service did not answer within 5 s"),
        ("CANCELLED", 499, "the call to the widgets service was cancelled"),
    ],
)
async def test_upstream_status_maps_by_the_table(
    demo: Demo, code: str, status: int, message: str
) -> None:
    response = await demo.http.post("/v1/failures", json={"code": code, "message": "bad thing"})
    assert response.status_code == status
    assert response.json() == error_body(grpc.StatusCode[code].value[0], message)
    assert demo.only_call() == ("Fail", demo.widgets.FailRequest(code=code, message="bad thing"))


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("NOT_FOUND", 404),
        ("ALREADY_EXISTS", 409),
        ("RESOURCE_EXHAUSTED", 429),
        ("UNAVAILABLE", 503),
    ],
)
async def test_upstream_status_details_are_rendered(demo: Demo, code: str, status: int) -> None:
    response = await demo.http.post(
        "/v1/failures", json={"code": code, "message": "widget w9 is busy", "bad_field": "name"}
    )
    assert response.status_code == status
    assert response.json() == error_body(
        grpc.StatusCode[code].value[0],
        "widget w9 is busy",
        [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "field_violations": [{"field": "name", "description": "widget w9 is busy"}],
            }
        ],
    )


# --- entity tags and conditional requests (research.http.v1 options) ----------

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
IF_MATCH_FORM = (
    "If-Match must be * or one strong entity tag in double quotes, as the ETag header gives "
    'it (If-Match: "<etag>")'
)
IF_NONE_MATCH_FORM = (
    "If-None-Match must be * or entity tags in double quotes separated by commas, as the "
    'ETag header gives them (If-None-Match: "<etag>")'
)


def versioned_json(name: str, etag: str = "", version: int = 0, note: str = "") -> dict[str, Any]:
    return {"name": name, "etag": etag, "version": version, "note": note}


def assert_names_header(response: httpx.Response, header: str, message: str) -> None:
    """400 INVALID_ARGUMENT whose BadRequest names the header."""
    assert response.status_code == 400, response.text
    violation = {"field": header, "description": message}
    assert response.json() == error_body(
        3, message, [{"@type": BAD_REQUEST, "field_violations": [violation]}]
    )


async def test_etag_is_the_quoted_response_field(demo: Demo) -> None:
    response = await demo.http.get("/v1/versioned/a")
    assert response.status_code == 200
    assert response.headers["etag"] == '"e-a"'
    # response_body picks the message; the tag is read from the response.
    assert response.json() == versioned_json("a", "e-a")
    head = await demo.http.head("/v1/versioned/a")
    assert head.status_code == 200
    assert head.headers["etag"] == '"e-a"'
    assert head.headers["content-length"] == response.headers["content-length"]
    assert head.content == b""
    # An empty etag sends no header.
    untagged = await demo.http.get("/v1/versioned/untagged")
    assert untagged.status_code == 200
    assert "etag" not in untagged.headers
    # Nor does one that no header can carry: the answer itself is still right.
    quoted = await demo.http.get("/v1/versioned/quoted")
    assert quoted.status_code == 200
    assert "etag" not in quoted.headers
    assert quoted.json() == versioned_json("quoted", 'a"b')
    # A method without etag_field sends none.
    plain = await demo.http.get("/v1/versioned/a/versions/1")
    assert "etag" not in plain.headers


@pytest.mark.parametrize(
    "given",
    [
        '"e-a"',
        'W/"e-a"',  # If-None-Match compares weakly
        '"x", "e-a"',
        '"x" ,, W/"e-a"',  # empty list elements are allowed
        "*",
        ['"x"', '"e-a"'],  # a list sent on two lines
    ],
)
async def test_if_none_match_naming_the_etag_is_304_with_no_body(
    demo: Demo, given: str | list[str]
) -> None:
    lines = [given] if isinstance(given, str) else given
    headers = [("If-None-Match", line) for line in lines]
    for method in ("GET", "HEAD"):
        response = await demo.http.request(method, "/v1/versioned/a", headers=headers)
        assert response.status_code == 304, (method, given)
        assert response.content == b""
        assert response.headers["etag"] == '"e-a"'
        assert "content-type" not in response.headers
        # A 304's length could only be the 200's (RFC 9110 §8.6).
        assert "content-length" not in response.headers
        assert "x-request-id" in response.headers
    # The service answered both: the 304 is decided on its answer.
    assert [name for name, _ in demo.calls] == ["GetVersioned", "GetVersioned"]


@pytest.mark.parametrize("given", ['"x"', '"e-a2"', 'W/"e-"', "", ","])
async def test_if_none_match_naming_another_etag_is_answered(demo: Demo, given: str) -> None:
    response = await demo.http.get("/v1/versioned/a", headers={"If-None-Match": given})
    assert response.status_code == 200, given
    assert response.headers["etag"] == '"e-a"'
    assert response.json() == versioned_json("a", "e-a")


async def test_a_comma_inside_an_entity_tag_is_part_of_it(demo: Demo) -> None:
    response = await demo.http.get("/v1/versioned/a,b", headers={"If-None-Match": '"e-a,b"'})
    assert response.status_code == 304
    assert response.headers["etag"] == '"e-a,b"'


@pytest.mark.parametrize("given", ["e-a", '"e-a" "x"', '"e-a', "W/e-a", '"e a"', '*, "e-a"'])
async def test_a_malformed_if_none_match_is_400_naming_it(demo: Demo, given: str) -> None:
    response = await demo.http.get("/v1/versioned/a", headers={"If-None-Match": given})
    assert_names_header(response, "If-None-Match", f"{IF_NONE_MATCH_FORM}; got {given!r}")
    assert demo.calls == []


async def test_if_match_sets_the_request_field(demo: Demo) -> None:
    w = demo.widgets
    mask = field_mask_pb2.FieldMask(paths=["note"])
    updated = await demo.http.patch(
        "/v1/versioned/a", json={"note": "n"}, headers={"If-Match": '"e-a"'}
    )
    assert updated.status_code == 200
    assert updated.headers["etag"] == '"e2"'
    assert updated.json() == versioned_json("a", "e2", note="n")
    star = await demo.http.patch("/v1/versioned/a", json={"note": "n"}, headers={"If-Match": "*"})
    assert star.status_code == 200
    # Without If-Match the field stays empty: the service's "no condition".
    bare = await demo.http.patch("/v1/versioned/a", json={"note": "n"})
    assert bare.status_code == 200
    # Any etagc character, '!' and '#' to '~' and obs-text, is the tag's.
    odd = await demo.http.patch(
        "/v1/versioned/a", json={"note": "n"}, headers={"If-Match": '"!#~,W/"'}
    )
    assert odd.status_code == 200
    versioned = w.Versioned(name="a", note="n")
    assert demo.calls == [
        ("UpdateVersioned", w.UpdateVersionedRequest(versioned=versioned, etag=e, update_mask=mask))
        for e in ("e-a", "*", "", "!#~,W/")
    ]


async def test_if_match_on_a_delete(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.delete("/v1/versioned/a", headers={"If-Match": '"e-a"'})
    assert response.status_code == 204
    assert response.content == b""
    assert "etag" not in response.headers  # the rule names no etag_field
    assert demo.only_call() == ("DeleteVersioned", w.DeleteVersionedRequest(name="a", etag="e-a"))


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("e-a", None),
        ("W/e-a", None),
        ('"e-a', None),
        ('"e a"', None),
        ('"e-a" x', None),
        ('"e-a"; "b"', None),
        ("*, *", None),
        ('*, "e-a"', None),
        ("", "it is empty"),
        (",", "it is empty"),
        ('"e-a", "b"', "it lists 2 tags"),
        ('W/"e-a"', "a weak tag (W/) never matches: If-Match compares strongly"),
        ('""', 'the empty tag "" is no resource\'s'),
        ('"*"', 'the tag "*" would read as any: send * without quotes'),
    ],
)
async def test_a_malformed_if_match_is_400_naming_it(
    demo: Demo, given: str, problem: str | None
) -> None:
    response = await demo.http.patch(
        "/v1/versioned/a", json={"note": "n"}, headers={"If-Match": given}
    )
    reason = f": {problem}" if problem else ""
    assert_names_header(response, "If-Match", f"{IF_MATCH_FORM}{reason}; got {given!r}")
    assert demo.calls == []


async def test_two_if_match_lines_are_two_tags(demo: Demo) -> None:
    response = await demo.http.delete(
        "/v1/versioned/a", headers=[("If-Match", '"e-a"'), ("If-Match", '"e-b"')]
    )
    message = f"{IF_MATCH_FORM}: it lists 2 tags; got " + repr('"e-a", "e-b"')
    assert_names_header(response, "If-Match", message)
    assert demo.calls == []


async def test_the_if_match_field_is_set_by_the_header_only(demo: Demo) -> None:
    query = await demo.http.delete("/v1/versioned/a?etag=e-a")
    message = "etag is taken from the If-Match header, not the query string"
    assert_names_header(query, "etag", message)
    body = await demo.http.post("/v1/versioned/a:restore", json={"etag": "e-a"})
    assert_names_header(body, "etag", "etag is taken from the If-Match header, not from the body")
    assert demo.calls == []


async def test_if_match_is_ignored_where_no_rule_takes_it(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.get("/v1/versioned/a", headers={"If-Match": "not a tag"})
    assert response.status_code == 200
    assert demo.only_call() == ("GetVersioned", w.GetVersionedRequest(name="a"))


async def test_custom_verb_with_body_star_takes_no_body_or_an_empty_object(demo: Demo) -> None:
    w = demo.widgets
    for content in (b"", b"{}", b"  "):
        response = await demo.http.post(
            "/v1/versioned/a:restore",
            content=content,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200, (content, response.text)
        assert response.headers["etag"] == '"e3"'
        assert response.json() == versioned_json("a", "e3")
    reasoned = await demo.http.post(
        "/v1/versioned/a:restore", json={"reason": "back"}, headers={"If-Match": "*"}
    )
    assert reasoned.json() == versioned_json("a", "e3", note="back")
    assert demo.calls == [
        *[("RestoreVersioned", w.RestoreVersionedRequest(name="a"))] * 3,
        ("RestoreVersioned", w.RestoreVersionedRequest(name="a", etag="*", reason="back")),
    ]
    # The verb's route has POST only; the same path with another method is
    # the plain route, whose variable holds the ':'.
    demo.calls.clear()
    got = await demo.http.get("/v1/versioned/a:restore")
    assert got.status_code == 200
    assert demo.only_call() == ("GetVersioned", w.GetVersionedRequest(name="a:restore"))
    # And the verb is a literal: another one is no route of POST.
    other = await demo.http.post("/v1/versioned/a:remove")
    assert other.status_code == 405
    assert other.headers["allow"] == "DELETE, GET, HEAD, PATCH"


async def test_an_int64_path_variable(demo: Demo) -> None:
    w = demo.widgets
    response = await demo.http.get("/v1/versioned/a/versions/9007199254740993")
    assert response.status_code == 200
    assert response.json() == versioned_json("a", version=9007199254740993)
    # A negative number is a number: the service decides what it means.
    negative = await demo.http.get("/v1/versioned/a/versions/-1")
    assert negative.status_code == 200
    assert demo.calls == [
        ("GetVersion", w.GetVersionRequest(name="a", version=9007199254740993)),
        ("GetVersion", w.GetVersionRequest(name="a", version=-1)),
    ]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("abc", "version must be an integer, got 'abc'"),
        ("1.5", "version must be an integer, got '1.5'"),
        ("1e3", "version must be an integer, got '1e3'"),
        ("%2B1", "version must be an integer, got '+1'"),
        ("%20", "version must be an integer, got ' '"),
        (
            str(2**63),
            f"version must be between {-(2**63)} and {2**63 - 1}, got {2**63}",
        ),
    ],
)
async def test_an_int64_path_variable_that_is_no_integer_is_400(
    demo: Demo, given: str, message: str
) -> None:
    response = await demo.http.get(f"/v1/versioned/a/versions/{given}")
    assert_names_header(response, "version", message)
    assert demo.calls == []
